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

// `cc_cfg` (one entry): which connections are the service's.
struct cc_cfg {
  __u32 service;                 // the service address
  __u32 pad;
  __u64 ports[CC_PORT_WORDS];    // bit p: local port p is a failover port
};

// What the iterator writes for each connection it reset (or tried to).
struct cc_record {
  __u32 client;  // the peer's address
  __u16 cport;   // the peer's port
  __u16 sport;   // the local port (host order)
  __s32 err;     // 0, or the negative errno of the get/setsockopt that failed
};

#endif
