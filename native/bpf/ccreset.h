// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The layouts the congestion reset (native/ccreset.bpf.c) shares with its
// loader (native/ccreset.cc): one definition, included by both. Addresses
// and ports in network byte order, except the local port (host order, as
// the kernel keeps it).
#ifndef TCPFO_BPF_CCRESET_H
#define TCPFO_BPF_CCRESET_H

#include <linux/types.h>

#define CC_PORT_WORDS (65536 / 64)

// Which connections a pass resets (cc_cfg.mode).
enum cc_mode {
  CC_ALL = 0,       // every connection of the service (this node starts serving alone)
  CC_REOPENED = 1,  // those whose client's window reopened after a wait (both nodes up)
};

// How long a connection must have waited for its client's window (seen so
// by one pass, open again at a later one) before its congestion state is
// reset: longer than the probe timer's first interval (200 ms), whose
// probes are what the merge holds.
#define CC_REOPEN_MIN_NS (200ull * 1000 * 1000)

// `cc_cfg` (one entry): which connections are the service's, and which a pass resets.
struct cc_cfg {
  __u32 service;                 // the IPv4 service address
  __u32 mode;                    // enum cc_mode
  __u32 service6[4];             // the IPv6 service address, or all 0: none
  __u64 ports[CC_PORT_WORDS];    // bit p: local port p is a failover port
};

// `cc_waits` (LRU): a connection whose client offered a window of less than
// a segment at some pass, with data to send: since when (bpf_ktime_get_ns).
struct cc_key {
  __u32 family;     // AF_INET or AF_INET6: the service address the connection is on
  __u32 client[4];  // IPv4: client[0], the rest 0
  __u16 cport;
  __u16 sport;
};

// What the iterator writes for each connection it reset (or tried to).
struct cc_record {
  __u32 client;      // the peer's IPv4 address (family AF_INET)
  __u16 cport;       // the peer's port
  __u16 sport;       // the local port (host order)
  __s32 err;         // 0, or the negative errno of the get/setsockopt that failed
  __u32 family;      // AF_INET, or AF_INET6: the peer's address is client6
  __u32 client6[4];  // the peer's IPv6 address (family AF_INET6)
};

#endif
