// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The layouts of the maps the primary's BPF programs share with their loader
// (native/xlate.cc): one definition, included by both. Every field is the
// kernel's fixed-width type; addresses and ports are in network byte order,
// sequence arithmetic in host order.
#ifndef TCPFO_BPF_MAPS_H
#define TCPFO_BPF_MAPS_H

#include <linux/types.h>

// A connection as the client sees it: client address and port, service address and port.
struct conn_key {
  __u32 client;
  __u32 service;
  __u16 cport;
  __u16 sport;
};

// `conns`: the inbound translation of one merged connection, and what the
// programs saw of it (written by the kernel, read back by the merger).
struct conn_val {
  __u32 dseq;     // added to the client's ACK and SACK blocks
  __u32 dts;      // added to the client's timestamp echo
  __u32 flags;    // CONN_F_*
  __u32 ack_max;  // the highest acceptable ACK from the client, once CONN_F_ACK_SEEN
  __u32 nxt_max;  // the highest acceptable sequence number + length from the client
  __u32 wscale;   // the window scale the client was told (S's): the servers' windows are in its units
  __u64 seen_ns;  // bpf_ktime_get_ns() of the client's last acceptable segment
  __u64 packets;  // the client's acceptable segments translated in the kernel
  // Written on egress, from what leaves towards the client (once CONN_F_SENT):
  __u32 snd_nxt;  // the highest sequence number sent + length (SYN and FIN count)
  __u32 rcv_nxt;  // the highest ACK sent: what both servers acknowledged of the client
  __u32 rcv_wnd;  // the window sent with it, in bytes
  __u32 pad;
};

enum conn_flags {
  CONN_F_TS = 1 << 0,        // the connection uses timestamps: translate the echo
  CONN_F_ACK_SEEN = 1 << 1,  // ack_max and nxt_max hold values
  CONN_F_SENT = 1 << 2,      // snd_nxt, rcv_nxt and rcv_wnd hold values
};

// `primary_only`: a connection the primary serves without the secondary
// (it failed, the replicas diverged, or the connection began while the
// primary was alone). P's own segments of it leave in the kernel, moved into
// the client's spaces: seq − dseq, TSval − dts, the window from P's scale to
// the one the client was told. The netfilter match (tcpfo_primary_only) lets
// them past the bridge's queue; the egress program rewrites them.
struct out_val {
  __u32 dseq;
  __u32 dts;
  __u32 flags;  // OUT_F_*
  __u8 wscale_p;  // P's window scale (its window field's unit)
  __u8 wscale_s;  // the client's view (S's, or P's own for a connection begun alone)
  __u16 pad;
  __u64 segments;  // P's segments released in the kernel
  __u64 bytes;     // their payload
};

enum out_flags {
  OUT_F_TS = 1 << 0,  // rewrite TSval
};

// `services`: the service address and each failover port. A client's SYN to
// one of them needs no translation, so it reaches P's TCP directly.
struct svc_key {
  __u32 addr;
  __u16 port;
  __u16 pad;
};

// `dup`: on a learning switch (lan.mode: switch), where the client's frames
// are copied: out of `ifindex`, to the secondary's MAC from ours.
struct dup_cfg {
  __u32 enabled;
  __u32 ifindex;
  __u8 macs[12];  // destination: the secondary's; source: ours
};

// `counters` (per CPU): what the programs did.
enum counter {
  COUNT_TRANSLATED,     // client segments translated
  COUNT_SYN_PASSED,     // client SYNs to the service passed
  COUNT_DUPLICATED,     // client frames copied to the secondary
  COUNT_OUT_OF_WINDOW,  // client segments translated but not recorded (outside the windows)
  COUNT_RELEASED,       // P's segments of primary-only connections released in the kernel
  COUNT_RELEASE_REFUSED,  // such segments the egress program could not rewrite (dropped)
  COUNT_MAX,
};

// The bridge's skip mark (bridge/io/inject.ts BRIDGE_MARK): its queue rules
// return at once for a packet that carries it, and its egress program
// rewrites nothing the bridge itself released.
#define TCPFO_SKIP_MARK 0x7466

#endif
