// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The handshake of a client's connection, merged in the kernel (paper §7;
// the bridge's merge/handshake.ts does the same in user space): the offsets
// between P's and S's spaces from both SYN-ACKs, and the SYN-ACK the client
// gets — S's, with the smaller MSS and the smaller window of the two. S's
// window scale, SACK-permitted and timestamps stay as S wrote them: the
// client keeps S's spaces after a failover, and both servers offered the
// same options (the layouts must be equal, or the bridge merges it).
//
// Pure reading and arithmetic: the programs (xlate.bpf.c) find the packets,
// keep `handshakes` and write the connection's entries.
#ifndef TCPFO_BPF_HANDSHAKE_H
#define TCPFO_BPF_HANDSHAKE_H

#include "maps.h"
#include "merge.h"
#include "tcp.h"

#define TCPOPT_MSS 2
#define TCPOLEN_MSS 4
#define TCPOPT_WINDOW 3
#define TCPOLEN_WINDOW 3
#define TCPOPT_SACK_PERM 4
#define TCPOLEN_SACK_PERM 2
#define TCP_SYN_OPTS_MAX 20  // MSS, SACK-permitted and timestamps, NOP and window scale
#define TCPOPT_MSS_AT 2      // the MSS value within its option (the first one here)
#define SYN_TSVAL_AT 8       // the TSval in a layout with timestamps (after MSS, and SACK-permitted or NOP NOP, kind, length)
#define SYN_TS_AT 6          // the timestamps option itself in such a layout (as tcp_layout's ts_at)

// Where the window scale option's length byte is (its value follows), by layout: last.
static __always_inline __u32 syn_wscale_at(__u8 layout) {
  if (layout & SYNL_TS) return 18;
  if (layout & SYNL_SACK) return 10;
  return 6;
}

// What a SYN-ACK offered, read from its options.
struct syn_opts {
  __u32 tsval;
  __u32 tsecr;
  __u16 mss;
  __u8 wscale;
  __u8 layout;  // syn_layout
};

// The flag combinations handled here: SYN and ACK, or SYN alone (a connection
// the servers open); no ECN (ECE, CWR), no URG, PSH, FIN or RST.
static __always_inline int plain_syn_ack(__u8 fl) { return fl == (TH_SYN | TH_ACK); }
static __always_inline int plain_syn(__u8 fl) { return fl == TH_SYN; }

/*
 * Reads the `optlen` option bytes at `opts` of a SYN-ACK as one of Linux's
 * layouts (enum syn_layout); 0 if it is another one. Each step's offset is a
 * constant on its path: the verifier checks each read of `b`.
 */
static __always_inline int syn_options(struct __sk_buff *skb, __u32 opts, __u32 optlen, struct syn_opts *s) {
  __u8 b[TCP_SYN_OPTS_MAX] = {};
  if (optlen < TCPOLEN_MSS || optlen > TCP_SYN_OPTS_MAX || (optlen & 3)) return 0;
  // The length as MSS's plus the rest, the rest bounded on its own: older
  // verifiers (Debian 12's 6.1) learn no lower bound from "not zero", and
  // the barrier keeps the compiler from folding the sum back into optlen.
  __u64 rest = (__u64)optlen - TCPOLEN_MSS;  // 64 bits: checked in the register it is used from
  barrier_var(rest);
  if (rest > TCP_SYN_OPTS_MAX - TCPOLEN_MSS) return 0;
  if (bpf_skb_load_bytes(skb, opts, b, rest + TCPOLEN_MSS) < 0) return 0;
  if (b[0] != TCPOPT_MSS || b[1] != TCPOLEN_MSS) return 0;
  s->mss = ((__u16)b[2] << 8) | b[3];
  s->layout = 0;
  s->wscale = 0;
  s->tsval = 0;
  s->tsecr = 0;
  __u32 at = TCPOLEN_MSS;
  if (optlen >= 8) {
    // Both: SACK-permitted takes the timestamps' padding. One: NOP NOP before it.
    if (b[4] == TCPOPT_SACK_PERM && b[5] == TCPOLEN_SACK_PERM && b[6] == TCPOPT_TIMESTAMP && b[7] == TCPOLEN_TIMESTAMP && optlen >= 16) {
      s->layout = SYNL_SACK | SYNL_TS;
      at = 16;
    } else if (b[4] == TCPOPT_NOP && b[5] == TCPOPT_NOP && b[6] == TCPOPT_TIMESTAMP && b[7] == TCPOLEN_TIMESTAMP && optlen >= 16) {
      s->layout = SYNL_TS;
      at = 16;
    } else if (b[4] == TCPOPT_NOP && b[5] == TCPOPT_NOP && b[6] == TCPOPT_SACK_PERM && b[7] == TCPOLEN_SACK_PERM) {
      s->layout = SYNL_SACK;
      at = 8;
    }
  }
  if (s->layout & SYNL_TS) {
    s->tsval = ((__u32)b[8] << 24) | ((__u32)b[9] << 16) | ((__u32)b[10] << 8) | b[11];
    s->tsecr = ((__u32)b[12] << 24) | ((__u32)b[13] << 16) | ((__u32)b[14] << 8) | b[15];
  }
  // The window scale: NOP, then its option, last.
  if (at == 4 && optlen == 8 && b[4] == TCPOPT_NOP && b[5] == TCPOPT_WINDOW && b[6] == TCPOLEN_WINDOW) {
    s->layout |= SYNL_WS;
    s->wscale = b[7];
    at = 8;
  } else if (at == 8 && optlen == 12 && b[8] == TCPOPT_NOP && b[9] == TCPOPT_WINDOW && b[10] == TCPOLEN_WINDOW) {
    s->layout |= SYNL_WS;
    s->wscale = b[11];
    at = 12;
  } else if (at == 16 && optlen == 20 && b[16] == TCPOPT_NOP && b[17] == TCPOPT_WINDOW && b[18] == TCPOLEN_WINDOW) {
    s->layout |= SYNL_WS;
    s->wscale = b[19];
    at = 20;
  }
  if (s->wscale > 14) return 0;  // RFC 7323 §2.3: at most 14 (a larger one is taken as 14; the bridge does that)
  return at == optlen;
}

static __always_inline __u16 min16(__u16 a, __u16 b) { return a < b ? a : b; }

/*
 * The connection's entries from P's SYN-ACK (`p`) and S's (`s`, `isn_s`),
 * as the bridge's merge of the handshake would make them (merge/handshake.ts,
 * merge/kernel.ts kernelInit): Δseq and the timestamp offset, S's window
 * scale for the client, both servers' ACK of the client's SYN, the merged
 * ACK and window the client is about to get. From two SYNs (`p->syn`) no
 * server acknowledged the client yet: their ACKs and windows are taken as
 * they come (kernelInit's acksKnown false).
 */
static __always_inline void hs_entries(const struct hs_val *p, const struct syn_opts *s, __u32 isn_s, __u16 win_s, struct conn_val *cv,
                                       struct merge_val *mv, struct merge_hint *h) {
  int ts = (p->layout & SYNL_TS) != 0;
  __u32 dseq = p->isn - isn_s;
  __u32 dts = ts ? p->tsval - s->tsval : 0;
  __u16 win = min16(p->win, win_s);
  cv->dseq = dseq;
  cv->dts = dts;
  cv->flags = ts ? CONN_F_TS : 0;
  cv->wscale = s->wscale;
  mv->mode = MERGE_KERNEL;
  mv->flags = (ts ? MERGE_F_TS : 0) | (p->syn ? 0 : MERGE_F_ACK_P | MERGE_F_ACK_S | MERGE_F_SENT);
  mv->dseq = dseq;
  mv->dts = dts;
  mv->wscale_p = p->wscale;
  mv->wscale_s = s->wscale;
  mv->ahead = SIDE_NONE;
  mv->rel_nxt = isn_s + 1;
  mv->ack_p = p->ack;
  mv->ack_s = p->ack;
  mv->win_p = p->syn ? 0 : p->win;
  mv->win_s = p->syn ? 0 : win_s;
  mv->ack_sent = p->ack;
  mv->edge_sent = p->syn ? 0 : p->ack + win;
  mv->tsval_max = s->tsval;
  mv->tsecr = s->tsecr;
  h->mode = MERGE_KERNEL;
  h->p_next = mv->rel_nxt + dseq;
  h->s_ahead = 0;
  h->s_head_end = 0;
  h->p_room = MERGE_PENDING;
  h->s_tail_end = 0;
  h->ts_on = ts;
}

#endif
