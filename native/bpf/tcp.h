// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// IPv4/TCP on the wire for the primary's BPF programs: where the fields are,
// the option layouts handled in the kernel, and in-place rewrites that keep
// the TCP checksum right (incremental; for CHECKSUM_PARTIAL packets — a GSO
// segment, an offloaded sum — the kernel's helper leaves the sum to the NIC
// or to software segmentation, as it must).
#ifndef TCPFO_BPF_TCP_H
#define TCPFO_BPF_TCP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <stddef.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// TCP header flags (the 14th byte of the header).
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10
#define TH_FLAGS_BYTE 13
#define TH_CONTROL (TH_FIN | TH_SYN | TH_RST)

// TCP option kinds and lengths (RFC 9293, RFC 7323, RFC 2018).
#define TCPOPT_NOP 1
#define TCPOPT_SACK 5
#define TCPOPT_TIMESTAMP 8
#define TCPOLEN_TIMESTAMP 10
#define TCPOLEN_SACK_BASE 2
#define TCPOLEN_SACK_PERBLOCK 8
#define TCP_MAX_SACK_BLOCKS 4
#define TCP_MAX_OPTIONS 40
#define TCPOPT_TSVAL_AT 2  // within the timestamp option: kind, length, TSval, TSecr
#define TCPOPT_TSECR_AT 6

#define TCP_HDR_LEN sizeof(struct tcphdr)
#define IP_HDR_LEN sizeof(struct iphdr)
#define IP_MF_OFFSET 0x3fff  // the "more fragments" flag and the fragment offset

// Offsets in a frame on Ethernet (tc) and in a bare IP packet (netfilter).
#define L3_ON_ETH sizeof(struct ethhdr)
#define L4_ON_ETH (L3_ON_ETH + IP_HDR_LEN)
#define L4_ON_IP IP_HDR_LEN
#define TCP_SEQ offsetof(struct tcphdr, seq)
#define TCP_ACK offsetof(struct tcphdr, ack_seq)
#define TCP_WINDOW offsetof(struct tcphdr, window)
#define TCP_CHECK offsetof(struct tcphdr, check)

// Where the timestamp and SACK options sit, in the layouts Linux (and most
// stacks) send on an established connection: none; NOP NOP TS;
// NOP NOP SACK; NOP NOP TS NOP NOP SACK. Offsets from the first option byte;
// -1 when absent.
struct tcp_layout {
  int ts_at;
  int sack_at;
  int sack_blocks;
};

// Reads the layout of the `optlen` option bytes at `opts`; 0 if it is none of
// the usual ones (no loop over options: the verifier keeps it small).
static __always_inline int tcp_layout(struct __sk_buff *skb, __u32 opts, __u32 optlen, struct tcp_layout *l) {
  l->ts_at = -1;
  l->sack_at = -1;
  l->sack_blocks = 0;
  if (optlen == 0) return 1;
  if (optlen > TCP_MAX_OPTIONS) return 0;
  __u8 o[4];
  if (bpf_skb_load_bytes(skb, opts, o, 4) < 0) return 0;
  if (o[0] != TCPOPT_NOP || o[1] != TCPOPT_NOP) return 0;
  __u32 at = 2;
  if (o[2] == TCPOPT_TIMESTAMP && o[3] == TCPOLEN_TIMESTAMP) {
    l->ts_at = 2;
    at = 2 + TCPOLEN_TIMESTAMP;
    if (optlen > at) {
      if (bpf_skb_load_bytes(skb, opts + at, o, 2) < 0) return 0;
      if (o[0] != TCPOPT_NOP || o[1] != TCPOPT_NOP) return 0;
      at += 2;
    }
  }
  if (at < optlen) {
    // A SACK option at `at`: whole blocks, nothing after it.
    __u8 sk[2];
    if (bpf_skb_load_bytes(skb, opts + at, sk, 2) < 0) return 0;
    if (sk[0] != TCPOPT_SACK || sk[1] < TCPOLEN_SACK_BASE + TCPOLEN_SACK_PERBLOCK) return 0;
    if ((sk[1] - TCPOLEN_SACK_BASE) % TCPOLEN_SACK_PERBLOCK != 0 || at + sk[1] != optlen) return 0;
    l->sack_at = at;
    l->sack_blocks = (sk[1] - TCPOLEN_SACK_BASE) / TCPOLEN_SACK_PERBLOCK;
    return 1;
  }
  return at == optlen;
}

// Whether the SACK option of layout `l` (options at `opts`) is one D-SACK
// block below the cumulative ACK `ack` (RFC 2883): a server's report that a
// client segment came twice, which tells the client nothing it needs. (In
// every layout tcp_layout() takes, two NOPs come before it: nop_sack.)
static __always_inline int lone_dsack(struct __sk_buff *skb, __u32 opts, const struct tcp_layout *l, __u32 ack) {
  if (l->sack_at < 2 || l->sack_blocks != 1) return 0;
  __u32 end;  // the block's right edge
  if (bpf_skb_load_bytes(skb, opts + l->sack_at + TCPOLEN_SACK_BASE + 4, &end, sizeof(end)) < 0) return 0;
  return (__s32)(bpf_ntohl(end) - ack) <= 0;
}

#define TCPOLEN_ONE_SACK (TCPOLEN_SACK_BASE + TCPOLEN_SACK_PERBLOCK)
#define NOP_SACK_LEN (2 + TCPOLEN_ONE_SACK)  // the two NOPs before it, the option: three words

// Overwrites a one-block SACK option at `at` (the two NOPs every layout
// tcp_layout() takes puts before it included: 12 bytes, word-aligned in the
// header) with NOPs, fixing the TCP checksum at `csum` by the words' difference.
static __always_inline int nop_sack(struct __sk_buff *skb, __u32 csum, __u32 at) {
  __u32 old[NOP_SACK_LEN / 4];
  __u32 nops[NOP_SACK_LEN / 4];
  __builtin_memset(nops, TCPOPT_NOP, sizeof(nops));
  if (bpf_skb_load_bytes(skb, at - 2, old, sizeof(old)) < 0) return -1;
  __s64 diff = bpf_csum_diff(old, sizeof(old), nops, sizeof(nops), 0);
  if (diff < 0 || bpf_l4_csum_replace(skb, csum, 0, diff, 0) < 0) return -1;
  return bpf_skb_store_bytes(skb, at - 2, nops, sizeof(nops), 0);
}

// Adds `delta` to the 32-bit field at `off` (host-order arithmetic), fixing
// the TCP checksum at `csum`.
static __always_inline int add32(struct __sk_buff *skb, __u32 csum, __u32 off, __u32 delta) {
  __u32 old;
  if (bpf_skb_load_bytes(skb, off, &old, 4) < 0) return -1;
  __u32 val = bpf_htonl(bpf_ntohl(old) + delta);
  if (bpf_l4_csum_replace(skb, csum, old, val, 4) < 0) return -1;
  return bpf_skb_store_bytes(skb, off, &val, 4, 0);
}

// Writes `val` (host order) into the 32-bit field at `off`, fixing the TCP checksum at `csum`.
static __always_inline int set32(struct __sk_buff *skb, __u32 csum, __u32 off, __u32 val) {
  __u32 old;
  if (bpf_skb_load_bytes(skb, off, &old, 4) < 0) return -1;
  __u32 v = bpf_htonl(val);
  if (old == v) return 0;
  if (bpf_l4_csum_replace(skb, csum, old, v, 4) < 0) return -1;
  return bpf_skb_store_bytes(skb, off, &v, 4, 0);
}

// Writes the 16-bit field at `off` (network order `val`), fixing the TCP checksum at `csum`.
static __always_inline int store16(struct __sk_buff *skb, __u32 csum, __u32 off, __u16 val) {
  __u16 old;
  if (bpf_skb_load_bytes(skb, off, &old, 2) < 0) return -1;
  if (old == val) return 0;
  if (bpf_l4_csum_replace(skb, csum, old, val, 2) < 0) return -1;
  return bpf_skb_store_bytes(skb, off, &val, 2, 0);
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b) {
  int same = 1;
#pragma unroll
  for (int i = 0; i < ETH_ALEN; i++) same &= a[i] == b[i];
  return same;
}

#endif
