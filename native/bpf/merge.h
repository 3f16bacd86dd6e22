// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The merge's common case, decided in the kernel (paper §3.4): P's segment and
// S's copy of the same bytes meet in `merge`; whichever arrives second goes to
// the client, carrying the smaller ACK and window of the two, in the client's
// spaces. The first arrival waits: P's is stolen (TC_ACT_STOLEN: its TCP
// counts it sent, its bytes stay in P's retransmit queue, P's RTO the
// backstop), S's dropped (its bytes stay in S's send queue, which a takeover
// sends again). Only exactly matching ranges merge here, each compared by a
// digest of its bytes; anything else hands the connection to the bridge's
// queue for good (merge_val.handover says why). A FIN is one more sequence
// number, a range of its own after its packet's bytes with a digest of its
// own: the servers' FINs merge like their bytes, whether each came with the
// last bytes or after them, and so the close passes here too.
//
// The decisions are pure: merge_decide() changes the state under the
// connection's lock and says what to do with the segment; the programs
// (xlate.bpf.c) read the packet before and rewrite it after.
//
// A GSO packet (P's burst, or S's copy that came GRO'd or across a veth as
// one) is a run of the segments it leaves the node as, each gso_size bytes
// but the last: each is a range of its own, with its own digest, so that
// either side's packets match the other's whichever way each was cut into
// packets, as long as the segments line up.
#ifndef TCPFO_BPF_MERGE_H
#define TCPFO_BPF_MERGE_H

#include "digest.h"
#include "maps.h"
#include "tcp.h"

#define MERGE_MAX_WINDOW_FIELD 0xffff

// What to do with the segment.
enum merge_verdict {
  MV_RELEASE,    // send it to the client, rewritten as merge_out says
  MV_HOLD,       // a first arrival: P's stolen, S's dropped
  MV_DROP_ACK,   // a pure ACK that moved nothing the client needs
  MV_HANDOVER,   // the connection went to the bridge just now: P's stolen, S's up to the queue
  MV_NOT_KERNEL, // it had gone to the bridge before
  MV_AGAIN,      // this side's range sent again: it waits already (P's stolen, S's dropped), or S's of bytes released
};

// One packet, in the client's spaces (too large for the stack: a per-CPU scratch entry).
struct merge_seg {
  __u32 start;  // sequence numbers of its payload
  __u32 end;
  __u32 chunks;  // its ranges: the segments of bytes it leaves as (1 but for a GSO packet), and its FIN's (0 for a pure ACK)
  __u32 again_at;  // merge_decide's: where a range sent again starts among the waiting ones
  __u32 idx;       // chunk_idx()'s
  __u32 now_ms;    // when it came (bpf_ktime_get_ns, ms): read before the lock
  __u32 chunk_end[MERGE_SEG_CHUNKS];      // each one's end (the last's is `end`)
  __u64 chunk_digest[MERGE_SEG_CHUNKS];   // and the digest of its bytes (merge_digest), or the FIN's word
  __u32 ack;
  __u32 win;    // bytes
  __u32 tsval;  // S's clock (P's moved by dts)
  __u32 tsecr;
  __u32 has_ts;
  __u32 fin;    // its FIN (counted in `end`)
};

// How the released segment leaves.
struct merge_out {
  __u32 seq;
  __u32 ack;
  __u32 win_field;  // in the client's scale
  __u32 tsval;
  __u32 slot;       // a first arrival: its first segment's index in the ring of waiting ranges (the stash's idx)
  __u32 bytes;      // released: the payload bytes the client gets for the first time
  __u16 ended;      // the connection's close completed just now: tell the bridge (EV_ENDED)
  __u16 dsack_at;   // a pure ACK's lone D-SACK option, from the first option byte: overwritten as it leaves (0: none)
};

_Static_assert(STASH_MAX_PACKET >= 20 + 60 + MERGE_MAX_PAYLOAD, "a stashed segment fits");
_Static_assert((MERGE_MAX_PAYLOAD & (MERGE_MAX_PAYLOAD - 1)) == 0, "a segment's length bounds by mask");

static __always_inline int seq_lt(__u32 a, __u32 b) { return (__s32)(a - b) < 0; }
static __always_inline int seq_gt(__u32 a, __u32 b) { return (__s32)(a - b) > 0; }

// The waiting ranges by ring index. The array's address is taken first
// (barrier_var), so the variable index moves a pointer already past the
// lock: the verifier, without CAP_PERFMON, refuses arithmetic that could
// reach it.
static __always_inline __u32 *pend_end_at(struct merge_val *m, __u32 i) {
  __u32 *a = m->pend_end;
  barrier_var(a);
  return &a[i & (MERGE_PENDING - 1)];
}

static __always_inline __u64 *pend_digest_at(struct merge_val *m, __u32 i) {
  __u64 *a = m->pend_digest;
  barrier_var(a);
  return &a[i & (MERGE_PENDING - 1)];
}

/*
 * A packet's segment `c` by index, the index read back from memory (the
 * scratch entry's `idx`): the verifier then sees any index in the range at
 * each access, not a constant per segment, which it refuses without
 * CAP_PERFMON where the compiler shares one access between segments.
 */
static __always_inline __u32 chunk_idx(struct merge_seg *g, __u32 c) {
  *(volatile __u32 *)&g->idx = c;
  return *(volatile __u32 *)&g->idx & (MERGE_SEG_CHUNKS - 1);
}

static __always_inline __u32 *chunk_end_at(struct merge_seg *g, __u32 c) {
  __u32 *a = g->chunk_end;
  barrier_var(a);
  return &a[chunk_idx(g, c)];
}

static __always_inline __u64 *chunk_digest_at(struct merge_seg *g, __u32 c) {
  __u64 *a = g->chunk_digest;
  barrier_var(a);
  return &a[chunk_idx(g, c)];
}

_Static_assert((MERGE_PENDING & (MERGE_PENDING - 1)) == 0 && (MERGE_SEG_CHUNKS & (MERGE_SEG_CHUNKS - 1)) == 0, "rings index by mask");
_Static_assert(MERGE_SEG_CHUNKS <= MERGE_PENDING, "a packet's segments fit the ring");

enum chunks_match {
  CHUNKS_SAME,      // each of the packet's segments is the waiting range there, with the same digest
  CHUNKS_DIFFER,    // the same ranges, another digest: other bytes
  CHUNKS_UNALIGNED, // not the waiting ranges from there (cut otherwise, or past the last)
};

// Whether segment `g`'s segments are the waiting ranges from the k-th oldest on.
static __always_inline __u32 chunks_match(struct merge_val *m, struct merge_seg *g, __u32 k) {
  __u32 differ = 0;
#pragma unroll
  for (__u32 c = 0; c < MERGE_SEG_CHUNKS; c++) {
    if (c >= g->chunks) break;
    if (k + c >= m->npend || *chunk_end_at(g, c) != *pend_end_at(m, m->head + k + c)) return CHUNKS_UNALIGNED;
    if (*chunk_digest_at(g, c) != *pend_digest_at(m, m->head + k + c)) differ = 1;
  }
  return differ ? CHUNKS_DIFFER : CHUNKS_SAME;
}

/*
 * Whether the connection's close just completed here: the client's FIN and
 * the servers' both passed, and the bridge was not told yet. Once only.
 */
static __always_inline __u32 merge_end_now(struct merge_val *m) {
  const __u32 both = MERGE_F_FIN | MERGE_F_FIN_CLIENT;
  if ((m->flags & both) != both || (m->flags & MERGE_F_ENDED)) return 0;
  m->flags |= MERGE_F_ENDED;
  return 1;
}

static __always_inline __u32 handover(struct merge_val *m, __u32 why) {
  m->mode = MERGE_QUEUE;
  m->handover = why;
  return MV_HANDOVER;
}

// The ACK and window the client gets now: the smaller of the servers'.
static __always_inline __u32 merged_ack(const struct merge_val *m) { return seq_lt(m->ack_p, m->ack_s) ? m->ack_p : m->ack_s; }

static __always_inline __u32 merged_field(const struct merge_val *m) {
  __u32 win = m->win_p < m->win_s ? m->win_p : m->win_s;
  __u32 field = win >> (m->wscale_s & 15);
  return field > MERGE_MAX_WINDOW_FIELD ? MERGE_MAX_WINDOW_FIELD : field;
}

// Fills `o` for a segment released at `seq` and notes what the client was told.
static __always_inline void release_as(struct merge_val *m, const struct merge_seg *g, struct merge_out *o, __u32 seq) {
  o->seq = seq;
  o->ack = merged_ack(m);
  o->win_field = merged_field(m);
  if (!(m->flags & MERGE_F_SENT) || seq_gt(o->ack, m->ack_sent)) m->ack_sent = o->ack;
  m->flags |= MERGE_F_SENT;
  m->edge_sent = o->ack + (o->win_field << (m->wscale_s & 15));
  // TSval never goes back for the client (PAWS), whichever server's copy leaves.
  o->tsval = g->has_ts && seq_gt(g->tsval, m->tsval_max) ? g->tsval : m->tsval_max;
  if (g->has_ts) m->tsval_max = o->tsval;
  m->standing_p = 0;
  m->standing_s = 0;
  m->released++;
}

/*
 * The decision for segment `g` of side `side` (a constant where inlined: the
 * verifier walks one side's paths only) of a connection in state `m` (its lock held):
 * each side's ACK and window are noted first; a pure ACK goes out when the
 * merged ACK or window edge moved, or both servers answered the same client
 * segment with one (a keepalive, a window probe); data goes out when its
 * segments are exactly the other side's oldest waiting ranges with the same
 * digests, waits when it continues this side's own, and hands the connection
 * over otherwise.
 */
static __always_inline __u32 merge_decide(struct merge_val *m, struct merge_seg *g, __u32 side, struct merge_out *o) {
  if (m->mode != MERGE_KERNEL) return MV_NOT_KERNEL;
  // Each side's ACK and window; its first ACK of a server-initiated
  // connection (the last step of that handshake) is taken as it is.
  if (side == SIDE_P) {
    if (!(m->flags & MERGE_F_ACK_P) || !seq_lt(g->ack, m->ack_p)) {
      m->ack_p = g->ack;
      m->win_p = g->win;
      m->flags |= MERGE_F_ACK_P;
    }
  } else if (!(m->flags & MERGE_F_ACK_S) || !seq_lt(g->ack, m->ack_s)) {
    m->ack_s = g->ack;
    m->win_s = g->win;
    m->flags |= MERGE_F_ACK_S;
  }
  if (g->has_ts && seq_gt(g->tsecr, m->tsecr)) m->tsecr = g->tsecr;
  // Until both servers acknowledged the client, nothing can carry the smaller ACK.
  int acks = (m->flags & (MERGE_F_ACK_P | MERGE_F_ACK_S)) == (MERGE_F_ACK_P | MERGE_F_ACK_S);
  // S's ACK behind P's: since when S has not reached what P had acknowledged
  // then. A segment of P's that finds it so for MERGE_MAX_ACK_LAG_MS takes the
  // connection to the bridge, which bounds S's silence; S reaching that ACK
  // starts the count again from P's ACK of the moment.
  if (acks && seq_gt(m->ack_p, m->ack_s)) {
    if (!(m->flags & MERGE_F_ACK_LAG) || !seq_lt(m->ack_s, m->ack_lag_to)) {
      m->flags |= MERGE_F_ACK_LAG;
      m->ack_lag_to = m->ack_p;
      m->ack_lag_since = g->now_ms;
    } else if (side == SIDE_P && g->now_ms - m->ack_lag_since >= MERGE_MAX_ACK_LAG_MS) {
      return handover(m, HANDOVER_ACK_LAG);
    }
  } else {
    m->flags &= ~MERGE_F_ACK_LAG;
  }

  if (g->start == g->end) {
    if (!acks) return MV_DROP_ACK;
    __u32 ack = merged_ack(m);
    __u32 edge = ack + (merged_field(m) << (m->wscale_s & 15));
    __u8 other_standing = side == SIDE_P ? m->standing_s : m->standing_p;
    if (!(m->flags & MERGE_F_SENT) || seq_gt(ack, m->ack_sent) || seq_gt(edge, m->edge_sent) || other_standing) {
      release_as(m, g, o, m->rel_nxt);
      return MV_RELEASE;
    }
    if (side == SIDE_P) {
      if (m->standing_p < 255) m->standing_p++;
    } else if (m->standing_s < 255) {
      m->standing_s++;
    }
    return MV_DROP_ACK;
  }

  // Sent again (its TCP's timer fired before the client's ACK came, or the
  // other's copy): bytes the client was sent already pass again — P's,
  // translated, as the bridge passes retransmissions (§4); S's are dropped,
  // P's TCP sends them again should the client need them.
  if (!seq_gt(g->end, m->rel_nxt)) {
    if (side == SIDE_S) return MV_AGAIN;
    release_as(m, g, o, g->start);
    return MV_RELEASE;
  }
  __u32 other = side == SIDE_P ? SIDE_S : SIDE_P;
  // Ranges of this side's that wait already, sent again: they wait on (the
  // first arrivals are there). Anything else of this side's before its last
  // waiting range (two ranges in one, a part) hands the connection over below.
  if (m->ahead == side && seq_lt(g->start, *pend_end_at(m, m->head + m->npend - 1))) {
    // Unrolled, with no early exit, the index kept in memory: the verifier
    // then walks each step once, and goes on once with any index, not once
    // for each it could have been.
    __u32 from = m->rel_nxt;
    volatile __u32 *at = &g->again_at;
    *at = MERGE_PENDING;
#pragma unroll
    for (__u32 i = 0; i < MERGE_PENDING; i++) {
      if (i < m->npend && g->start == from && *at == MERGE_PENDING) *at = i;
      from = *pend_end_at(m, m->head + i);
    }
    __u32 k = *at;
    if (k < MERGE_PENDING) {
      __u32 r = chunks_match(m, g, k);
      // Waited too long for the other's copy: the bridge bounds what a lagging server holds up.
      if (r == CHUNKS_SAME && g->now_ms - m->waiting_since >= MERGE_MAX_WAIT_MS) return handover(m, HANDOVER_SLOW);
      if (r == CHUNKS_SAME) return MV_AGAIN;
      if (r == CHUNKS_DIFFER) {
        m->flags |= MERGE_F_DIVERGED;  // its own bytes changed: never TCP's
        return handover(m, HANDOVER_DIVERGED);
      }
    }
  }
  if (m->ahead == other) {
    if (g->start != m->rel_nxt) return handover(m, HANDOVER_UNALIGNED);
    __u32 r = chunks_match(m, g, 0);
    if (r == CHUNKS_UNALIGNED) return handover(m, HANDOVER_UNALIGNED);
    if (r == CHUNKS_DIFFER) {
      m->flags |= MERGE_F_DIVERGED;
      return handover(m, HANDOVER_DIVERGED);
    }
    if (!acks) return handover(m, HANDOVER_SEGMENT);  // data before a server's ACK: not a stream TCP sends
    m->head = (m->head + g->chunks) & (MERGE_PENDING - 1);
    m->npend -= g->chunks;
    if (!m->npend) m->ahead = SIDE_NONE;
    m->waiting_since = g->now_ms;  // what still waits is measured from here
    release_as(m, g, o, g->start);
    m->rel_nxt = g->end;
    o->bytes = g->end - g->start - g->fin;
    m->bytes += o->bytes;
    if (g->fin) {
      // The same digest: the waiting range ended with the FIN too.
      m->flags = (m->flags | MERGE_F_FIN) & ~MERGE_F_FIN_PEND;
      o->ended = merge_end_now(m);
    }
    return MV_RELEASE;
  }
  // Nothing follows a FIN (this side's waiting, or both released).
  if ((m->flags & MERGE_F_FIN) || ((m->flags & MERGE_F_FIN_PEND) && m->ahead == side)) return handover(m, HANDOVER_UNALIGNED);
  __u32 last = m->npend ? *pend_end_at(m, m->head + m->npend - 1) : m->rel_nxt;
  if (g->start != last) return handover(m, HANDOVER_UNALIGNED);
  if (m->npend + g->chunks > MERGE_PENDING) return handover(m, HANDOVER_FULL);
  __u32 j = m->head + m->npend;
  o->slot = j & (MERGE_PENDING - 1);
  if (!m->npend) m->waiting_since = g->now_ms;
#pragma unroll
  for (__u32 c = 0; c < MERGE_SEG_CHUNKS; c++) {
    if (c >= g->chunks) break;
    *pend_end_at(m, j + c) = *chunk_end_at(g, c);
    *pend_digest_at(m, j + c) = *chunk_digest_at(g, c);
  }
  m->npend += g->chunks;
  m->ahead = side;
  if (g->fin) m->flags |= MERGE_F_FIN_PEND;
  return MV_HOLD;
}

// What netfilter's match may know after a decision (struct merge_hint).
static __always_inline void merge_hint_of(struct merge_val *m, struct merge_hint *h) {
  h->mode = m->mode;
  __u32 p_end = m->ahead == SIDE_P && m->npend ? *pend_end_at(m, m->head + m->npend - 1) : m->rel_nxt;
  h->p_next = p_end + m->dseq;
  h->s_ahead = m->ahead == SIDE_S;
  h->s_head_end = h->s_ahead ? *pend_end_at(m, m->head) + m->dseq : 0;
  h->s_tail_end = h->s_ahead ? *pend_end_at(m, m->head + m->npend - 1) + m->dseq : 0;
  h->p_room = m->ahead == SIDE_P ? MERGE_PENDING - m->npend : MERGE_PENDING;
  h->ts_on = (m->flags & MERGE_F_TS) != 0;
}

// How long the connection has waited for S at `now` (ms): P's ranges since
// the last release, or S's ACK behind P's; 0 if nothing waits for S.
static __always_inline __u32 merge_wait_for_s(const struct merge_val *m, __u32 now) {
  __u32 wait = m->ahead == SIDE_P && m->npend ? now - m->waiting_since : 0;
  __u32 lag = (m->flags & MERGE_F_ACK_LAG) ? now - m->ack_lag_since : 0;
  return wait > lag ? wait : lag;
}

// The bridge's copy of the state (merge_snap), taken under the lock at `now` (ms).
static __always_inline void merge_snapshot(const struct merge_val *m, struct merge_snap *s, __u32 now) {
  s->mode = m->mode;
  s->flags = m->flags;
  s->handover = m->handover;
  s->dseq = m->dseq;
  s->dts = m->dts;
  s->wscale_p = m->wscale_p;
  s->wscale_s = m->wscale_s;
  s->ahead = m->ahead;
  s->npend = m->npend;
  s->head = m->head;
  s->standing_p = m->standing_p;
  s->standing_s = m->standing_s;
  s->rel_nxt = m->rel_nxt;
  s->ack_p = m->ack_p;
  s->ack_s = m->ack_s;
  s->win_p = m->win_p;
  s->win_s = m->win_s;
  s->ack_sent = m->ack_sent;
  s->edge_sent = m->edge_sent;
  s->tsval_max = m->tsval_max;
  s->tsecr = m->tsecr;
  s->wait_ms = merge_wait_for_s(m, now);
#pragma unroll
  for (int i = 0; i < MERGE_PENDING; i++) {
    s->pend_end[i] = m->pend_end[i];
    s->pend_digest[i] = m->pend_digest[i];
  }
  s->released = m->released;
  s->bytes = m->bytes;
}

// The digest of `n` payload bytes at `off` (n ≤ MERGE_MAX_PAYLOAD); 0 if
// unreadable. Whole chunks first (few steps: the verifier walks each), then
// whole words, then the last bytes in one word. A global function: the
// verifier checks it once, not at each of a GSO packet's segments.
__noinline __u64 merge_digest(struct __sk_buff *skb, __u32 off, __u32 n) {
  if (n > MERGE_MAX_PAYLOAD) return 0;
  __u64 h = DIGEST_SEED ^ n;
  // Offsets from the loop counters, not carried from one loop to the next:
  // wherever a loop ends, the verifier finds the same state after it.
  __u32 chunks = n / DIGEST_CHUNK;
  for (__u32 i = 0; i < MERGE_MAX_PAYLOAD / DIGEST_CHUNK; i++) {
    if (i >= chunks) break;
    __u64 w[DIGEST_CHUNK / 8];
    if (bpf_skb_load_bytes(skb, off + i * DIGEST_CHUNK, w, sizeof(w)) < 0) return 0;
#pragma unroll
    for (int j = 0; j < DIGEST_CHUNK / 8; j++) h = digest_step(h, w[j]);
  }
  __u32 at = off + chunks * DIGEST_CHUNK;
  __u32 words = (n % DIGEST_CHUNK) / 8;
  // Unrolled, with no early exit: rolled, the compiler drops the bound it
  // knows `words` keeps to, and the verifier, which walks mispredicted
  // branches too, never meets one.
#pragma unroll
  for (__u32 i = 0; i < DIGEST_CHUNK / 8; i++) {
    if (i < words) {
      __u64 w;
      if (bpf_skb_load_bytes(skb, at + i * 8, &w, 8) < 0) return 0;
      h = digest_step(h, w);
    }
  }
  __u32 rest = n & 7;
  if (rest) {
    // The last 1–7 bytes: read the 8 that end the payload (the headers are
    // before it when it is shorter) and keep the last `rest` of them.
    __u64 w;
    if (bpf_skb_load_bytes(skb, off + n - 8, &w, 8) < 0) return 0;
    h = digest_step(h, w >> ((8 - rest) * 8));
  }
  return h;
}

#endif
