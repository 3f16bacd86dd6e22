// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The primary's programs in the kernel. The map layouts are in bpf/maps.h
// (shared with the loader, native/xlate.cc); TCP on the wire in bpf/tcp.h.
//
// tcpfo_xlate (tc ingress): the paper's "demultiplexer" (§3.2). A client
// segment to P's TCP carries numbers in the secondary's spaces; P's TCP needs
// them in its own. For every merged connection the bridge puts Δseq and the
// timestamp offset in `conns`; the program moves the ACK, each SACK block
// (+Δseq) and the timestamp echo (+ts offset) on the way in, fixes the
// checksum incrementally, and marks the packet so the bridge's NFQUEUE rule
// lets it pass. A client's SYN to the service passes as it is. Only the
// common case is handled: an ACK (or the SYN-ACK of a server-initiated
// connection), a FIN or RST only of a connection merged here, no IP
// options, the usual option layouts; the rest goes to the bridge's queue. What the bridge still needs of the
// segments handled here (the client's highest ACK and sequence number, when
// it was last seen) is kept in the map value, and only from segments inside
// the windows (RFC 5961 §5): a blind ACK beyond what was released, or data
// outside the receive window, is still translated and handed to P's TCP
// (which applies its own checks) but never recorded.
//
// tcpfo_sent (tc egress): P's segments of a primary-only connection (the
// secondary failed, the replicas diverged, or the connection began while
// the primary was alone) leave here, moved into the client's spaces, without
// a trip through the bridge: the netfilter match tcpfo_primary_only lets them
// past the bridge's output queue. Then, for every listed connection, what
// leaves towards the client records how far the pair released and what it
// acknowledged and offered: the windows tcpfo_xlate checks against.
//
// tcpfo_primary_only (socket filter, for iptables' xt_bpf match): which of
// P's segments skip the queue.
#include <linux/pkt_cls.h>

#include "bpf/handshake.h"
#include "bpf/maps.h"
#include "bpf/merge.h"
#include "bpf/tcp.h"

// The largest window TCP can announce (65535 << 14): RFC 5961's MAX.SND.WND
// when the client's own is unknown. Below the highest ACK by more than this,
// an ACK is old or forged.
#define MAX_WINDOW (65535u << 14)
#define MIN_WINDOW 65535u
#define MAX_WSCALE 14

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, struct conn_key);
  __type(value, struct conn_val);
} conns SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __uint(map_flags, BPF_F_NO_PREALLOC);  // entries made by the bridge only: memory as connections come
  __type(key, struct conn_key);
  __type(value, struct out_val);
} primary_only SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __uint(map_flags, BPF_F_NO_PREALLOC);  // entries made by the bridge only: memory as connections come
  __type(key, struct conn_key);
  __type(value, struct merge_val);
} merge SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __uint(map_flags, BPF_F_NO_PREALLOC);  // entries made by the bridge only: memory as connections come
  __type(key, struct conn_key);
  __type(value, struct merge_hint);
} merge_hints SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct peer_cfg);
} peer SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, struct svc_key);
  __type(value, __u8);
} services SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct dup_cfg);
} dup SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, STASH_ENTRIES);
  __type(key, struct stash_key);
  __type(value, struct stash_val);
} stash SEC(".maps");

// Room to build a stash entry (too large for the stack).
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct stash_val);
} stash_scratch SEC(".maps");

// A packet being merged (merge_job: its segments' ends and digests), the
// control program's answer, and a new connection's merge state (as bytes: a
// per-CPU map cannot hold a lock): room for what is too large for the stack.
struct merge_job {
  struct conn_key key;
  struct merge_out out;
  struct merge_seg seg;
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct merge_job);
} seg_scratch SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct merge_ctl);
} ctl_scratch SEC(".maps");

struct merge_val_bytes {
  __u8 b[sizeof(struct merge_val)];
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct merge_val_bytes);
} merge_val_scratch SEC(".maps");

// Mapped into the bridge's memory (BPF_F_MMAPABLE): it writes ORDER_DONE as
// it gives each verdict, with a store, not a system call.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, ORDER_ENTRIES);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, struct order_slots);
} order SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, COUNT_MAX);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

// When the secondary's last segment reached us (bpf_ktime_get_ns, per CPU):
// the bridge reads it when the secondary's heartbeats fall silent, to tell
// heartbeats lost on the way from a dead node (detector/activity.ts).
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} secondary_seen SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, HS_ENTRIES);
  __type(key, struct conn_key);
  __type(value, struct hs_val);
} handshakes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, EVENTS_BYTES);
} events SEC(".maps");

static __always_inline void count_n(__u32 what, __u64 n) {
  __u64 *c = bpf_map_lookup_elem(&counters, &what);
  if (c) *c += n;
}

static __always_inline void count(__u32 what) { count_n(what, 1); }

/*
 * RFC 5961 §5 and RFC 9293 §3.10.7.4, for what the bridge records: an ACK
 * only for bytes sent (at most snd_nxt, and not more than a window below
 * it), the segment inside the servers' receive window around what they
 * acknowledged. Before anything was sent, or before an ACK was (no
 * CONN_F_SENT, no CONN_F_RCV), nothing is recorded.
 */
static __always_inline int acceptable(const struct conn_val *v, __u32 ack, __u32 seq, __u32 nxt) {
  if ((v->flags & (CONN_F_SENT | CONN_F_RCV)) != (CONN_F_SENT | CONN_F_RCV)) return 0;
  if ((__s32)(ack - v->snd_nxt) > 0 || v->snd_nxt - ack > MAX_WINDOW) return 0;
  __u32 win = v->rcv_wnd > MIN_WINDOW ? v->rcv_wnd : MIN_WINDOW;
  // The segment's end not before the window's left edge, its start not past the right edge.
  if ((__s32)(nxt - (v->rcv_nxt - win)) < 0) return 0;
  if ((__s32)(seq - (v->rcv_nxt + win)) > 0) return 0;
  return 1;
}

/*
 * Whether the frame is unfragmented IPv4 TCP without IP options on
 * Ethernet, its TCP header's fixed part in the linear data (pulled if need
 * be); if so, `*ipp` and `*thp` point at the headers. (A returned pointer
 * could not be tested against NULL: without CAP_PERFMON the verifier
 * prohibits comparing packet pointers, and a promoted secondary runs with
 * CAP_BPF and CAP_NET_ADMIN only.)
 */
static __always_inline int ipv4_tcp(struct __sk_buff *skb, struct iphdr **ipp, struct tcphdr **thp) {
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  if (data + L4_ON_ETH + TCP_HDR_LEN > end) {
    if (bpf_skb_pull_data(skb, L4_ON_ETH + TCP_HDR_LEN) < 0) return 0;
    data = (void *)(long)skb->data;
    end = (void *)(long)skb->data_end;
    if (data + L4_ON_ETH + TCP_HDR_LEN > end) return 0;
  }
  struct ethhdr *eth = data;
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return 0;
  struct iphdr *ip = data + L3_ON_ETH;
  if (ip->version != 4 || ip->ihl * 4 != IP_HDR_LEN || ip->protocol != IPPROTO_TCP) return 0;
  if (ip->frag_off & bpf_htons(IP_MF_OFFSET)) return 0;
  *ipp = ip;
  *thp = data + L4_ON_ETH;
  return 1;
}

// The flags byte of the TCP header.
static __always_inline __u8 tcp_flags(const struct tcphdr *th) { return ((const __u8 *)th)[TH_FLAGS_BYTE]; }

// The kernel's monotonic clock in ms, modulo 2^32 (compared as differences).
static __always_inline __u32 now_ms(void) { return (__u32)(bpf_ktime_get_ns() / 1000000); }

#define TCP_CSUM_ON_ETH (L4_ON_ETH + TCP_CHECK)
#define IP_CHECK_ON_ETH (L3_ON_ETH + offsetof(struct iphdr, check))
#define IP_TTL_ON_ETH (L3_ON_ETH + offsetof(struct iphdr, ttl))
#define RELEASED_TTL 64  // a released copy of S's (sent with TTL 1 so that nothing routes it on)

// --- the merge (bpf/merge.h) --------------------------------------------------

// The size of a packet's segments: gso_size each but the last (GSO), else its whole payload.
static __always_inline __u32 seg_size(__u32 payload, __u32 gso_size) { return gso_size && gso_size < payload ? gso_size : payload; }

/*
 * The segments a packet of `payload` bytes leaves as, 0 for none, or
 * MERGE_SEG_CHUNKS + 1 where the kernel does not merge it: more segments,
 * or larger, than it keeps.
 */
#define CHUNKS_TOO_MANY (MERGE_SEG_CHUNKS + 1)
static __always_inline __u32 seg_chunks(__u32 payload, __u32 gso_size) {
  if (!payload) return 0;
  __u32 size = seg_size(payload, gso_size);
  if (size > MERGE_MAX_PAYLOAD || payload > MERGE_SEG_CHUNKS * size) return CHUNKS_TOO_MANY;
  return (payload + size - 1) / size;
}

// A packet whose segments are larger than the kernel merges (a jumbo-frame LAN's MSS).
static __always_inline int seg_large(__u32 payload, __u32 gso_size) { return seg_size(payload, gso_size) > MERGE_MAX_PAYLOAD; }

/*
 * A segment the kernel merges: ACK, maybe PSH or FIN, no other flag; the
 * usual option layout without SACK, but for a pure ACK's lone D-SACK block
 * where `dsack_ok` (S's copy: a client segment that came twice to S, its
 * option overwritten with NOPs as the ACK leaves; P's such ACKs go to the
 * bridge, for the egress program has no stack left for it); timestamps
 * where the connection has them; up to MERGE_SEG_CHUNKS segments of one MSS
 * (seg_chunks). Anything else goes to the bridge with its connection.
 */
static __always_inline int mergeable(struct __sk_buff *skb, __u32 l4, __u8 fl, __u32 doff, __u32 chunks, __u32 ack, int dsack_ok, int ts_on,
                                     struct tcp_layout *l) {
  if ((fl & ~(TH_ACK | TH_PSH | TH_FIN)) || !(fl & TH_ACK) || doff < TCP_HDR_LEN || chunks > MERGE_SEG_CHUNKS) return 0;
  if (!tcp_layout(skb, l4 + TCP_HDR_LEN, doff - TCP_HDR_LEN, l)) return 0;
  if (l->sack_at >= 0 && !(dsack_ok && !chunks && fl == TH_ACK && lone_dsack(skb, l4 + TCP_HDR_LEN, l, ack))) return 0;
  return !ts_on || l->ts_at >= 0;
}

/*
 * The connection's hint (looked up before its lock is taken), written from
 * its state under the lock: every writer of one connection's hint then
 * writes in the order of its decisions. Written after the unlock, the older
 * of two decisions taken on two CPUs at once (S's copy held on one, P's
 * releasing it on the other) could land last and stay: P's next in-order
 * segment, judged by it, went to the queue and took its connection to the
 * bridge. Plain stores: the match, which takes no lock, may see a mix, which
 * only sends a segment the slower way.
 */
static __always_inline void publish_hint(struct merge_val *m, struct merge_hint *cur) {
  if (cur) merge_hint_of(m, cur);
}

/*
 * The digests of the `data` segments of bytes of the packet in seg_scratch
 * (merge_job), each of gso_size bytes at `off` on but the last. A global
 * function: the verifier checks it once.
 */
__noinline int seg_digests(struct __sk_buff *skb, __u32 off, __u32 payload, __u32 gso_size, __u32 data) {
  __u32 zero = 0;
  struct merge_job *j = bpf_map_lookup_elem(&seg_scratch, &zero);
  if (!j) return -1;
  struct merge_seg *g = &j->seg;
  __u32 size = data > 1 ? gso_size : payload;
  for (__u32 c = 0; c < MERGE_SEG_CHUNKS; c++) {
    if (c >= data) break;
    __u32 n = c + 1 == data ? payload - c * size : size;
    *chunk_end_at(g, c) = g->start + c * size + n;
    *chunk_digest_at(g, c) = merge_digest(skb, off + c * size, n);
  }
  return 0;
}

/*
 * The decision for the packet in seg_scratch (merge_job) under its
 * connection's lock, and the hint after it. In global functions, one per
 * side: the verifier checks the decision once, not once for each path the
 * programs take to it.
 */
static __always_inline int merge_job_decide(__u32 side) {
  __u32 zero = 0;
  struct merge_job *j = bpf_map_lookup_elem(&seg_scratch, &zero);
  if (!j) return MV_NOT_KERNEL;
  struct conn_key k = j->key;
  struct merge_val *m = bpf_map_lookup_elem(&merge, &k);
  if (!m) return MV_NOT_KERNEL;
  struct merge_hint *hint = bpf_map_lookup_elem(&merge_hints, &k);
  bpf_spin_lock(&m->lock);
  __u32 v = merge_decide(m, &j->seg, side, &j->out);
  publish_hint(m, hint);
  bpf_spin_unlock(&m->lock);
  return v;
}

// (`skb` read only so that it is passed: a global function takes its program's context.)
__noinline int merge_decide_p(struct __sk_buff *skb) { return skb->len ? merge_job_decide(SIDE_P) : MV_NOT_KERNEL; }

__noinline int merge_decide_s(struct __sk_buff *skb) { return skb->len ? merge_job_decide(SIDE_S) : MV_NOT_KERNEL; }

/*
 * Reads a packet of side `side` from a frame (TCP at L4_ON_ETH), decides
 * under the connection's lock, and publishes the hint. `o` says how a
 * released packet leaves, or where a held one's segments wait; `ts_at` where
 * its timestamp is (-1: none).
 */
static __always_inline __u32 merge_segment(struct __sk_buff *skb, const struct conn_key *k, struct merge_val *m, __u32 side, struct iphdr *ip, struct tcphdr *th,
                                           struct merge_out *o, int *ts_at) {
  __u8 fl = tcp_flags(th);
  __u32 doff = th->doff * 4;
  __u32 tot = bpf_ntohs(ip->tot_len);
  __u32 len = tot ? tot : skb->len - L3_ON_ETH;
  __u32 seq = bpf_ntohl(th->seq);
  __u32 ack = bpf_ntohl(th->ack_seq);
  __u32 window = bpf_ntohs(th->window);
  // Fixed for the connection's life (set before it was listed): read without the lock.
  int ts_on = (m->flags & MERGE_F_TS) != 0;
  __u32 dseq = side == SIDE_P ? m->dseq : 0;
  __u32 dts = side == SIDE_P ? m->dts : 0;
  __u32 shift = (side == SIDE_P ? m->wscale_p : m->wscale_s) & 15;
  struct tcp_layout l;
  __u32 zero = 0;
  struct merge_job *j = bpf_map_lookup_elem(&seg_scratch, &zero);
  __u32 payload = len >= IP_HDR_LEN + doff ? len - IP_HDR_LEN - doff : 0;
  __u32 gso_size = skb->gso_size;
  __u32 chunks = len >= IP_HDR_LEN + doff && tot ? seg_chunks(payload, gso_size) : CHUNKS_TOO_MANY;
  __u32 fin = (fl & TH_FIN) ? 1 : 0;
  __u32 v;
  *ts_at = -1;
  if (!j) return MV_NOT_KERNEL;
  if (!mergeable(skb, L4_ON_ETH, fl, doff, chunks + fin, ack, side == SIDE_S, ts_on, &l)) {
    struct merge_hint *hint = bpf_map_lookup_elem(&merge_hints, k);
    bpf_spin_lock(&m->lock);
    v = m->mode == MERGE_KERNEL ? handover(m, seg_large(payload, gso_size) ? HANDOVER_LARGE : HANDOVER_SEGMENT) : MV_NOT_KERNEL;
    publish_hint(m, hint);
    bpf_spin_unlock(&m->lock);
    return v;
  }
  struct merge_seg *g = &j->seg;
  j->key = *k;
  __builtin_memset(&j->out, 0, sizeof(j->out));
  g->has_ts = 0;
  g->tsval = 0;
  g->tsecr = 0;
  if (ts_on) {
    __u32 ts[2];
    if (bpf_skb_load_bytes(skb, L4_ON_ETH + TCP_HDR_LEN + l.ts_at + TCPOPT_TSVAL_AT, ts, sizeof(ts)) < 0) return MV_NOT_KERNEL;
    g->tsval = bpf_ntohl(ts[0]) - dts;
    g->tsecr = bpf_ntohl(ts[1]);
    g->has_ts = 1;
    *ts_at = l.ts_at;
  }
  g->fin = fin;
  g->start = seq - dseq;
  g->end = g->start + payload + fin;
  // The FIN is a range of its own after the bytes' (one sequence number, the
  // FIN's word for its digest): a side that sends it with its last bytes and
  // one that sends it after them merge all the same.
  g->chunks = chunks + fin;
  if (chunks) seg_digests(skb, L4_ON_ETH + doff, payload, gso_size, chunks);
  if (fin) {
    *chunk_end_at(g, chunks) = g->end;
    *chunk_digest_at(g, chunks) = digest_step(DIGEST_SEED, DIGEST_FIN);
  }
  g->ack = ack;
  g->win = window << shift;
  g->now_ms = now_ms();
  v = side == SIDE_P ? merge_decide_p(skb) : merge_decide_s(skb);
  if (chunks > 1 && (v == MV_RELEASE || v == MV_HOLD)) count(COUNT_MERGE_GSO);
  *o = j->out;
  if (v == MV_RELEASE && o->bytes) count_n(COUNT_MERGED_BYTES, o->bytes);
  if (side == SIDE_S && l.sack_at > 0) o->dsack_at = l.sack_at;  // mergeable: a lone D-SACK
  return v;
}

// Writes the merged numbers into the released segment (TCP at L4_ON_ETH).
static __always_inline int merge_rewrite(struct __sk_buff *skb, const struct merge_out *o, int ts_at) {
  if (set32(skb, TCP_CSUM_ON_ETH, L4_ON_ETH + TCP_SEQ, o->seq) < 0) return -1;
  if (set32(skb, TCP_CSUM_ON_ETH, L4_ON_ETH + TCP_ACK, o->ack) < 0) return -1;
  if (store16(skb, TCP_CSUM_ON_ETH, L4_ON_ETH + TCP_WINDOW, bpf_htons((__u16)o->win_field)) < 0) return -1;
  if (ts_at >= 0 && set32(skb, TCP_CSUM_ON_ETH, L4_ON_ETH + TCP_HDR_LEN + ts_at + TCPOPT_TSVAL_AT, o->tsval) < 0) return -1;
  return 0;
}

static __always_inline void count_verdict(__u32 v) {
  if (v == MV_HOLD) count(COUNT_MERGE_HELD);
  else if (v == MV_AGAIN) count(COUNT_MERGE_AGAIN);
  else if (v == MV_DROP_ACK) count(COUNT_MERGE_ACK_DROPPED);
  else if (v == MV_HANDOVER) count(COUNT_HANDOVER);
}

/*
 * Sends S's copy, rewritten, to the client: out of the interface it came in
 * by, with an ordinary TTL (S sent it with TTL 1, so that nothing routes it
 * on), marked as released for the egress program.
 */
static __always_inline int send_released(struct __sk_buff *skb) {
  __u16 old;
  if (bpf_skb_load_bytes(skb, IP_TTL_ON_ETH, &old, 2) < 0) return TC_ACT_SHOT;
  __u16 ttl = bpf_htons((RELEASED_TTL << 8) | IPPROTO_TCP);
  if (bpf_l3_csum_replace(skb, IP_CHECK_ON_ETH, old, ttl, 2) < 0) return TC_ACT_SHOT;
  if (bpf_skb_store_bytes(skb, IP_TTL_ON_ETH, &ttl, 2, 0) < 0) return TC_ACT_SHOT;
  skb->mark |= TCPFO_SKIP_MARK;  // the egress program's: released already
  return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
}

// Whether the frame's source MAC is the secondary's (peer_cfg), whose copies alone are merged.
static __always_inline int from_secondary(struct __sk_buff *skb, const struct peer_cfg *pc) {
  __u8 src[ETH_ALEN];
  if (!pc || !pc->set || bpf_skb_load_bytes(skb, ETH_ALEN, src, ETH_ALEN) < 0) return 0;
  return mac_eq(src, pc->mac);
}

/*
 * Tells the bridge that the close of `k` (Δseq `dseq`) passed here: it
 * lingers the connection's entries and then removes them. Should the ring
 * buffer be full, the bridge forgets the connection when it goes idle.
 */
static __always_inline void tell_ended(const struct conn_key *k, __u32 dseq, __u32 how) {
  struct kernel_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count(COUNT_EVENTS_LOST);
    return;
  }
  __builtin_memset(e, 0, sizeof(*e));
  e->key = *k;
  e->kind = EV_ENDED;
  e->end.dseq = dseq;
  e->end.how = how;
  bpf_ringbuf_submit(e, 0);
  count(how == ENDED_RESET ? COUNT_CLIENT_RST : COUNT_ENDED);
}

/*
 * S's copy (source the service address, destination the client, from the
 * secondary's MAC) of a connection merged here: released to the client at
 * once (redirected out of the interface it came in by), dropped while it
 * waits, or passed up to the bridge's queue with its connection. Returns the
 * tc verdict, or -1 if the connection is not merged here.
 */
static __always_inline int merge_secondary(struct __sk_buff *skb, struct iphdr *ip, struct tcphdr *th) {
  struct conn_key k = {.client = ip->daddr, .service = ip->saddr, .cport = th->dest, .sport = th->source};
  struct merge_val *m = bpf_map_lookup_elem(&merge, &k);
  if (!m) return -1;
  __u32 zero = 0;
  // Not the secondary's: the queue, where the bridge drops and counts it.
  if (!from_secondary(skb, bpf_map_lookup_elem(&peer, &zero))) return TC_ACT_OK;
  struct merge_out o = {};
  int ts_at;
  __u32 v = merge_segment(skb, &k, m, SIDE_S, ip, th, &o, &ts_at);
  count_verdict(v);
  if (v == MV_HOLD || v == MV_DROP_ACK || v == MV_AGAIN) return TC_ACT_SHOT;
  if (v != MV_RELEASE) return TC_ACT_OK;
  if (o.ended) tell_ended(&k, m->dseq, ENDED_CLOSE);
  if (merge_rewrite(skb, &o, ts_at) < 0) return TC_ACT_SHOT;
  if (o.dsack_at >= 2 && o.dsack_at <= TCP_MAX_OPTIONS - TCPOLEN_ONE_SACK) {
    if (nop_sack(skb, TCP_CSUM_ON_ETH, L4_ON_ETH + TCP_HDR_LEN + o.dsack_at) < 0) return TC_ACT_SHOT;
    count(COUNT_DSACK_CLEARED);
  }
  count(COUNT_MERGED_S);
  return send_released(skb);
}

/*
 * The client's FIN (inside the windows) of a connection the kernel merges:
 * noted under the lock, so that the bridge, taking the connection, knows
 * it; should the servers' FIN have passed already, the close is complete.
 * -1 if the kernel does not merge the connection (the bridge does, or
 * is taking it): the FIN goes to the bridge's queue.
 */
static __always_inline int client_fin(const struct conn_key *k) {
  struct merge_val *m = bpf_map_lookup_elem(&merge, k);
  if (!m) return -1;
  __u32 ended = 0;
  bpf_spin_lock(&m->lock);
  __u32 merged = m->mode == MERGE_KERNEL;
  __u32 dseq = m->dseq;
  if (merged) {
    m->flags |= MERGE_F_FIN_CLIENT;
    ended = merge_end_now(m);
  }
  bpf_spin_unlock(&m->lock);
  if (!merged) return -1;
  count(COUNT_CLIENT_FIN);
  if (ended) tell_ended(k, dseq, ENDED_CLOSE);
  return 0;
}

/*
 * The client's RST of a connection the kernel merges. It ends the
 * connection only at the sequence number one of the servers expects (RFC
 * 5961 §3: P's TCP answers any other with a challenge ACK, and so does S's);
 * then the bridge is told. Either way it goes on to P's TCP, translated.
 * -1 if the kernel does not merge the connection: the RST goes to the queue.
 */
static __always_inline int client_rst(const struct conn_key *k, __u32 seq) {
  struct merge_val *m = bpf_map_lookup_elem(&merge, k);
  if (!m) return -1;
  const __u32 acks = MERGE_F_ACK_P | MERGE_F_ACK_S;
  __u32 ended = 0;
  bpf_spin_lock(&m->lock);
  __u32 merged = m->mode == MERGE_KERNEL;
  __u32 dseq = m->dseq;
  if (merged && (m->flags & acks) == acks && (seq == m->ack_p || seq == m->ack_s) && !(m->flags & MERGE_F_ENDED)) {
    m->flags |= MERGE_F_RESET | MERGE_F_ENDED;
    ended = 1;
  }
  bpf_spin_unlock(&m->lock);
  if (!merged) return -1;
  if (ended) tell_ended(k, dseq, ENDED_RESET);
  return 0;
}

// --- the handshake (bpf/handshake.h) ------------------------------------------

// The peer's settings, and whether handshakes are merged here now.
static __always_inline struct peer_cfg *peer_cfg(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&peer, &zero);
}

// Leaves the handshake of `k` (answering the SYN acknowledged by `ack`, or of a SYN) to the bridge's queues.
static __always_inline void hs_to_bridge(const struct conn_key *k, __u32 ack, __u8 syn) {
  struct hs_val b = {.state = HS_BRIDGE, .ack = ack, .syn = syn, .held_ns = bpf_ktime_get_ns()};
  bpf_map_update_elem(&handshakes, k, &b, BPF_ANY);
  count(COUNT_HS_BRIDGE);
}

// What names the handshake of a SYN-ACK: the ACK of the client's SYN; a SYN has none (0).
static __always_inline __u32 hs_ack(const struct tcphdr *th) { return (tcp_flags(th) & TH_ACK) ? bpf_ntohl(th->ack_seq) : 0; }

// Whether entry `v` still stands for its handshake: a SYN-ACK's for as long as it is kept, a SYN's for HS_SYN_TTL_NS.
static __always_inline int hs_live(const struct hs_val *v) { return !v->syn || bpf_ktime_get_ns() - v->held_ns < HS_SYN_TTL_NS; }

// Whether entry `v` is of the same handshake as a SYN-ACK acknowledging `ack`, or (`syn`) a SYN.
static __always_inline int hs_same(const struct hs_val *v, __u32 ack, __u8 syn) { return v->syn == syn && v->ack == ack && hs_live(v); }

// A SYN-ACK or SYN as `handshakes` keeps it (state `state`), from its header and options.
static __always_inline void hs_record(struct hs_val *v, __u32 state, const struct tcphdr *th, const struct syn_opts *o) {
  v->state = state;
  v->isn = bpf_ntohl(th->seq);
  v->ack = hs_ack(th);
  v->syn = !(tcp_flags(th) & TH_ACK);
  v->tsval = o->tsval;
  v->tsecr = o->tsecr;
  v->mss = o->mss;
  v->win = bpf_ntohs(th->window);
  v->wscale = o->wscale;
  v->layout = o->layout;
  v->pad = 0;
  v->pad2 = 0;
  v->held_ns = bpf_ktime_get_ns();
}

// The options of a SYN-ACK kept in `handshakes`.
static __always_inline void hs_opts(const struct hs_val *v, struct syn_opts *o) {
  o->tsval = v->tsval;
  o->tsecr = v->tsecr;
  o->mss = v->mss;
  o->wscale = v->wscale;
  o->layout = v->layout;
}

/*
 * Whether two SYN-ACKs (or SYNs) were sent for the same cause: recorded
 * within HS_PAIR_NS of each other, or without timestamps. The offset is
 * taken from the two as they are, and the merged one carries S's TSval: the
 * client's echo is then a TSval each server sent, which a Linux server in
 * SYN-RECV (6.15 on) requires. Two further apart (one server's copy of the
 * client's first SYN lost, a full accept queue drops a SYN) would set an
 * offset a second off: they go to the bridge, which pairs the newest
 * answers of both (merge/conn.ts synsPaired, the same bound).
 */
static __always_inline int hs_paired(const struct hs_val *p, const struct hs_val *s) {
  if (!(s->layout & SYNL_TS)) return 1;
  __u64 d = s->held_ns > p->held_ns ? s->held_ns - p->held_ns : p->held_ns - s->held_ns;
  return d <= HS_PAIR_NS;
}

/*
 * Both SYN-ACKs are in (P's `p`, S's `s`): the connection's entries are
 * made and the bridge is told. 0 if done; -1 if not (the ring buffer or a map
 * is full), with nothing left behind.
 */
static __always_inline int hs_merge(const struct conn_key *k, const struct hs_val *p, const struct hs_val *s) {
  struct syn_opts so;
  hs_opts(s, &so);
  struct conn_val cv = {};
  struct merge_hint h = {};
  __u32 zero = 0;
  struct merge_val_bytes *raw = bpf_map_lookup_elem(&merge_val_scratch, &zero);
  if (!raw) return -1;
  __builtin_memset(raw, 0, sizeof(*raw));
  // Written as merge_val but for its lock, which the map's update leaves alone.
  struct merge_val *mv = (struct merge_val *)raw;
  hs_entries(p, &so, s->isn, s->win, &cv, mv, &h);
  struct kernel_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count(COUNT_EVENTS_LOST);
    return -1;  // the bridge is behind: it could not hear of this one
  }
  // The hint first: a P segment that finds the state finds its hint too.
  if (bpf_map_update_elem(&merge_hints, k, &h, BPF_ANY) || bpf_map_update_elem(&merge, k, raw, BPF_ANY) ||
      bpf_map_update_elem(&conns, k, &cv, BPF_ANY)) {
    bpf_map_delete_elem(&conns, k);
    bpf_map_delete_elem(&merge, k);
    bpf_map_delete_elem(&merge_hints, k);
    bpf_ringbuf_discard(e, 0);
    return -1;
  }
  e->key = *k;
  e->kind = EV_HANDSHAKE;
  e->hs.isn_p = p->isn;
  e->hs.isn_s = s->isn;
  e->hs.ack = p->ack;
  e->hs.tsval_p = p->tsval;
  e->hs.tsval_s = s->tsval;
  e->hs.tsecr = s->tsecr;
  e->hs.mss_p = p->mss;
  e->hs.mss_s = s->mss;
  e->hs.win_p = p->win;
  e->hs.win_s = s->win;
  e->hs.wscale_p = p->wscale;
  e->hs.wscale_s = s->wscale;
  e->hs.layout = s->layout;
  e->hs.syn = p->syn;
  bpf_ringbuf_submit(e, 0);
  count(COUNT_HS_MERGED);
  return 0;
}

// The SYN-ACK at L4_ON_ETH gets the merged MSS and window (the smaller of the two).
static __always_inline int hs_rewrite_common(struct __sk_buff *skb, const struct hs_val *p, const struct hs_val *s) {
  if (store16(skb, TCP_CSUM_ON_ETH, L4_ON_ETH + TCP_HDR_LEN + TCPOPT_MSS_AT, bpf_htons(min16(p->mss, s->mss))) < 0) return -1;
  return store16(skb, TCP_CSUM_ON_ETH, L4_ON_ETH + TCP_WINDOW, bpf_htons(min16(p->win, s->win)));
}

/*
 * S's SYN-ACK (or SYN), diverted to us: if P's waits in `handshakes` for the
 * same SYN with the same layout, the handshake is merged (hs_merge) and S's
 * leaves for the client as the merged one. Else it goes up to the bridge's
 * queue; if none of P's is recorded, it is recorded itself (HS_S_FIRST), so
 * that P's, which then skips the queue, merges at the egress program.
 */
static __always_inline int hs_secondary(struct __sk_buff *skb, struct iphdr *ip, struct tcphdr *th) {
  struct peer_cfg *pc = peer_cfg();
  // Not the secondary's: the queue, where the bridge drops and counts it.
  if (!pc || !pc->handshake || !from_secondary(skb, pc)) return TC_ACT_OK;
  struct conn_key k = {.client = ip->daddr, .service = ip->saddr, .cport = th->dest, .sport = th->source};
  __u32 ack = hs_ack(th);
  __u8 syn = !(tcp_flags(th) & TH_ACK);
  __u32 doff = th->doff * 4;
  struct syn_opts o;
  int ok = doff >= TCP_HDR_LEN && bpf_ntohs(ip->tot_len) == IP_HDR_LEN + doff &&
           syn_options(skb, L4_ON_ETH + TCP_HDR_LEN, doff - TCP_HDR_LEN, &o);
  struct hs_val s = {};
  if (ok) hs_record(&s, HS_S_FIRST, th, &o);
  struct hs_val *pv = bpf_map_lookup_elem(&handshakes, &k);
  if (!pv || !hs_same(pv, ack, syn)) {
    // S's came first (or P's waits for another SYN: then that one stays, and this goes up).
    if (pv && pv->state == HS_P_HELD && hs_live(pv)) {
      count(COUNT_HS_BRIDGE);
      return TC_ACT_OK;
    }
    if (!ok) {
      hs_to_bridge(&k, ack, syn);
      return TC_ACT_OK;
    }
    // Recorded where none of this handshake's is: atomically (hs_primary does
    // the same), for P's may be arriving at once on another CPU — both would
    // find no entry, and the second write would wipe the first, P's stolen
    // with nothing left to merge it (it came again at P's timer, 1 s).
    if (pv) bpf_map_delete_elem(&handshakes, &k);
    if (bpf_map_update_elem(&handshakes, &k, &s, BPF_NOEXIST) == 0) {
      count(COUNT_HS_BRIDGE);
      return TC_ACT_OK;
    }
    pv = bpf_map_lookup_elem(&handshakes, &k);  // P's came meanwhile: merged with it here
    if (!pv || !hs_same(pv, ack, syn)) return TC_ACT_OK;
  }
  if (pv->state != HS_P_HELD) return TC_ACT_OK;  // merged already (S's sent again), or the bridge's
  struct hs_val p = *pv;
  // Another layout, answers sent apart (hs_paired), or no room: P's stolen SYN-ACK comes again, to the queue.
  if (!ok || s.layout != p.layout || !hs_paired(&p, &s) || hs_merge(&k, &p, &s) < 0) {
    hs_to_bridge(&k, ack, syn);
    return TC_ACT_OK;
  }
  pv->state = HS_DONE;
  if (hs_rewrite_common(skb, &p, &s) < 0) return TC_ACT_SHOT;
  return send_released(skb);
}

/*
 * Whether P's SYN-ACK (or SYN) skips the queue (for the match): handshakes
 * merged here, one of the layouts handled, and for its SYN no entry yet or
 * S's alone, recorded lately enough to be paired (the egress program merges
 * it). Any other entry — P's sent again, a handshake the bridge merges —
 * sends it to the queue. A socket filter sees the packet from its IP header.
 */
static __always_inline int hs_skips_queue(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *th) {
  struct peer_cfg *pc = peer_cfg();
  if (!pc || !pc->handshake) return 0;
  struct svc_key from = {.addr = ip->saddr, .port = th->source};
  if (!bpf_map_lookup_elem(&services, &from)) return 0;
  __u32 doff = th->doff * 4;
  struct syn_opts s;
  if (doff < TCP_HDR_LEN || bpf_ntohs(ip->tot_len) != IP_HDR_LEN + doff) return 0;
  if (!syn_options(skb, L4_ON_IP + TCP_HDR_LEN, doff - TCP_HDR_LEN, &s)) return 0;
  struct conn_key k = {.client = ip->daddr, .service = ip->saddr, .cport = th->dest, .sport = th->source};
  struct hs_val *v = bpf_map_lookup_elem(&handshakes, &k);
  if (!v || !hs_same(v, hs_ack(th), !(tcp_flags(th) & TH_ACK))) return 1;
  // S's, recorded too long ago to be paired with this one (hs_paired): the bridge's, which has S's newer answers.
  return v->state == HS_S_FIRST && (!(v->layout & SYNL_TS) || bpf_ktime_get_ns() - v->held_ns <= HS_PAIR_NS);
}

// What the egress program does with P's SYN-ACK or SYN (hs_primary).
enum hs_verdict {
  HS_NOT_ONE,   // not P's SYN-ACK that skipped the queue
  HS_STOLEN,    // waits for S's, or comes again from P's TCP (to the queue)
  HS_RELEASED,  // merged: it leaves as the client's SYN-ACK
};

/*
 * P's SYN-ACK (or SYN) that skipped the queue (hs_skips_queue). S's came
 * first (HS_S_FIRST, same SYN, same layout): merged here, and P's leaves in
 * S's numbers — S's ISN, TSval and window scale, the smaller MSS and window.
 * Else it is recorded for S's and stolen: P's TCP keeps its request and
 * sends it again at its timer, which then goes to the queue.
 */
static __always_inline __u32 hs_primary(struct __sk_buff *skb, struct iphdr *ip, struct tcphdr *th) {
  struct svc_key from = {.addr = ip->saddr, .port = th->source};
  __u8 fl = tcp_flags(th);
  if (!(plain_syn_ack(fl) || plain_syn(fl)) || !bpf_map_lookup_elem(&services, &from)) return HS_NOT_ONE;
  struct conn_key k = {.client = ip->daddr, .service = ip->saddr, .cport = th->dest, .sport = th->source};
  __u32 ack = hs_ack(th);
  __u8 syn = plain_syn(fl);
  __u32 doff = th->doff * 4;
  struct syn_opts o;
  if (doff < TCP_HDR_LEN || bpf_ntohs(ip->tot_len) != IP_HDR_LEN + doff ||
      !syn_options(skb, L4_ON_ETH + TCP_HDR_LEN, doff - TCP_HDR_LEN, &o)) {
    hs_to_bridge(&k, ack, syn);
    return HS_STOLEN;
  }
  struct hs_val p = {};
  hs_record(&p, HS_P_HELD, th, &o);
  struct hs_val *cur = bpf_map_lookup_elem(&handshakes, &k);
  if (!cur || !hs_same(cur, ack, syn)) {
    // Recorded where none of this handshake's is: atomically, for S's may be
    // arriving at once on another CPU (hs_secondary).
    if (cur) bpf_map_delete_elem(&handshakes, &k);
    if (bpf_map_update_elem(&handshakes, &k, &p, BPF_NOEXIST) == 0) {
      count(COUNT_HS_HELD);
      return HS_STOLEN;
    }
    cur = bpf_map_lookup_elem(&handshakes, &k);  // S's came meanwhile: merged with it here
    if (!cur || !hs_same(cur, ack, syn)) return HS_STOLEN;
  }
  if (cur->state != HS_S_FIRST) return HS_STOLEN;  // the bridge's (it comes again from P's TCP, to the queue)
  struct hs_val s = *cur;
  if (s.layout != p.layout || !hs_paired(&p, &s) || hs_merge(&k, &p, &s) < 0) {
    hs_to_bridge(&k, ack, syn);
    return HS_STOLEN;
  }
  cur->state = HS_DONE;
  // P's SYN-ACK in S's numbers: what S's said.
  if (set32(skb, TCP_CSUM_ON_ETH, L4_ON_ETH + TCP_SEQ, s.isn) < 0) return HS_STOLEN;
  if ((s.layout & SYNL_TS) && set32(skb, TCP_CSUM_ON_ETH, L4_ON_ETH + TCP_HDR_LEN + SYN_TSVAL_AT, s.tsval) < 0) return HS_STOLEN;
  if (s.layout & SYNL_WS) {
    __u32 at = syn_wscale_at(s.layout);
    if (store16(skb, TCP_CSUM_ON_ETH, L4_ON_ETH + TCP_HDR_LEN + at, bpf_htons((TCPOLEN_WINDOW << 8) | s.wscale)) < 0) return HS_STOLEN;
  }
  if (hs_rewrite_common(skb, &p, &s) < 0) return HS_STOLEN;
  count(COUNT_HS_MERGED_P);
  return HS_RELEASED;
}

/*
 * The bridge's requests (BPF_PROG_TEST_RUN with a merge_ctl after an
 * Ethernet header), under the connection's lock, the answer written over the
 * request: MERGE_OP_TAKE — the bridge takes the connection: from now on the
 * programs leave it alone; the answer is its state. MERGE_OP_HINT — the
 * bridge rewrote the state (a connection returning to the kernel): its hint
 * from it, written as every decision writes it (publish_hint), never by a
 * system call that could land after a newer decision's.
 */
SEC("tc")
int tcpfo_merge_ctl(struct __sk_buff *skb) {
  __u32 zero = 0;
  struct merge_ctl *c = bpf_map_lookup_elem(&ctl_scratch, &zero);
  if (!c || bpf_skb_load_bytes(skb, L3_ON_ETH, c, sizeof(*c)) < 0) return TC_ACT_SHOT;
  if (c->op != MERGE_OP_TAKE && c->op != MERGE_OP_HINT) return TC_ACT_SHOT;
  c->found = 0;
  struct conn_key key = c->key;
  struct merge_val *m = bpf_map_lookup_elem(&merge, &key);
  if (m) {
    struct merge_hint *hint = bpf_map_lookup_elem(&merge_hints, &key);
    int take = c->op == MERGE_OP_TAKE;
    __u32 now = now_ms();
    bpf_spin_lock(&m->lock);
    int was = take && m->mode == MERGE_KERNEL;
    if (was) {
      m->mode = MERGE_QUEUE;
      m->handover = HANDOVER_BRIDGE;
    }
    if (take) merge_snapshot(m, &c->snap, now);
    publish_hint(m, hint);
    bpf_spin_unlock(&m->lock);
    if (was) count(COUNT_HANDOVER);
    c->found = hint != NULL || take;
  }
  if (bpf_skb_store_bytes(skb, L3_ON_ETH, c, sizeof(*c), 0) < 0) return TC_ACT_SHOT;
  return TC_ACT_OK;
}


SEC("tc")
int tcpfo_xlate(struct __sk_buff *skb) {
  struct iphdr *ip;
  struct tcphdr *th;
  if (!ipv4_tcp(skb, &ip, &th)) return TC_ACT_OK;
  void *data;
  void *end;
  __u8 fl = tcp_flags(th);
  struct svc_key from = {.addr = ip->saddr, .port = th->source};
  if (bpf_map_lookup_elem(&services, &from)) {
    // From the service address: S's copy, diverted to us (or a forgery).
    // Counted, and timed (secondary_seen), when from S's MAC: the bridge
    // tells a silent heartbeat path from a dead secondary by it.
    __u32 zero = 0;
    if (from_secondary(skb, bpf_map_lookup_elem(&peer, &zero))) {
      count(COUNT_FROM_SECONDARY);
      __u64 *seen = bpf_map_lookup_elem(&secondary_seen, &zero);
      if (seen) *seen = bpf_ktime_get_ns();
    }
    if (plain_syn_ack(fl) || plain_syn(fl)) return hs_secondary(skb, ip, th);
    int r = merge_secondary(skb, ip, th);
    return r < 0 ? TC_ACT_OK : r;
  }
  struct svc_key sk = {.addr = ip->daddr, .port = th->dest};
  if (!bpf_map_lookup_elem(&services, &sk)) return TC_ACT_OK;
  __u32 zero = 0;
  struct dup_cfg *d = bpf_map_lookup_elem(&dup, &zero);
  if (d && d->enabled) {
    // The copy: to the secondary's MAC and from ours (a learning switch must
    // not learn the client's MAC on our port), cloned out; the frame's own
    // addresses put back. Only a frame addressed to us, and never one that
    // came from the secondary: a copy must not go back where it came from
    // (two nodes that both copy — one a stale program — would bounce it).
    __u8 orig[2 * ETH_ALEN];
    if (bpf_skb_load_bytes(skb, 0, orig, sizeof(orig)) < 0) return TC_ACT_OK;
    if (!mac_eq(orig, &d->macs[ETH_ALEN]) || mac_eq(&orig[ETH_ALEN], d->macs)) goto copied;
    if (bpf_skb_store_bytes(skb, 0, d->macs, sizeof(d->macs), 0) < 0) return TC_ACT_OK;
    if (bpf_clone_redirect(skb, d->ifindex, 0) == 0) count(COUNT_DUPLICATED);
    if (bpf_skb_store_bytes(skb, 0, orig, sizeof(orig), 0) < 0) return TC_ACT_SHOT;
    // The helpers above invalidate the packet pointers: read the headers again.
    data = (void *)(long)skb->data;
    end = (void *)(long)skb->data_end;
    if (data + L4_ON_ETH + TCP_HDR_LEN > end) return TC_ACT_OK;
    ip = data + L3_ON_ETH;
    th = data + L4_ON_ETH;
  }
copied:
  if ((fl & (TH_CONTROL | TH_ACK)) == TH_SYN) {
    // A SYN alone (no ACK, FIN or RST) to the service: as it is.
    skb->mark |= TCPFO_SKIP_MARK;
    count(COUNT_SYN_PASSED);
    return TC_ACT_OK;
  }
  // ACK, and no RST; a SYN-ACK (the client's answer to a server-initiated
  // connection, §7.2) only once it is merged (in the map); a FIN only of a
  // connection the kernel merges (client_fin).
  __u8 kind = fl & (TH_CONTROL | TH_ACK);
  __u32 fin = kind == (TH_ACK | TH_FIN);
  __u32 rst = kind == TH_RST || kind == (TH_RST | TH_ACK);
  if (kind != TH_ACK && kind != (TH_SYN | TH_ACK) && !fin && !rst) return TC_ACT_OK;
  struct conn_key k = {.client = ip->saddr, .service = ip->daddr, .cport = th->source, .sport = th->dest};
  struct conn_val *v = bpf_map_lookup_elem(&conns, &k);
  if (!v) return TC_ACT_OK;
  __u32 doff = th->doff * 4;
  __u32 seq = bpf_ntohl(th->seq);
  __u32 ack = bpf_ntohl(th->ack_seq);
  __u32 payload = bpf_ntohs(ip->tot_len) - IP_HDR_LEN - doff;
  if (doff < TCP_HDR_LEN) return TC_ACT_OK;
  __u32 opts = L4_ON_ETH + TCP_HDR_LEN;
  struct tcp_layout l;
  if (kind == (TH_SYN | TH_ACK)) {
    // The client's SYN-ACK carries a SYN's options (MSS first): one of
    // Linux's layouts, its timestamp echo moved like any other's. Another
    // layout is the bridge's, which moved every one of them before (a hop
    // through the queue that the servers' last ACK, and the transfer, waited for).
    struct syn_opts so;
    if (!syn_options(skb, opts, doff - TCP_HDR_LEN, &so)) return TC_ACT_OK;
    l.ts_at = (so.layout & SYNL_TS) ? SYN_TS_AT : -1;
    l.sack_at = -1;
    l.sack_blocks = 0;
  } else if (!tcp_layout(skb, opts, doff - TCP_HDR_LEN, &l)) {
    return TC_ACT_OK;
  }
  __u32 nxt = seq + payload + ((fl & TH_SYN) ? 1 : 0) + fin;
  int ok = acceptable(v, ack, seq, nxt);
  // A FIN outside the windows, or a FIN or RST of a connection the bridge merges: the bridge's.
  if (fin && (!ok || client_fin(&k) < 0)) return TC_ACT_OK;
  if (rst) {
    if (client_rst(&k, seq) < 0) return TC_ACT_OK;
    ok = 0;  // a RST tells nothing of what the client acknowledged or sent
  }

  __u32 dseq = v->dseq;
  if ((fl & TH_ACK) && add32(skb, TCP_CSUM_ON_ETH, L4_ON_ETH + TCP_ACK, dseq) < 0) return TC_ACT_SHOT;
  if (l.sack_at >= 0) {
    for (int b = 0; b < TCP_MAX_SACK_BLOCKS; b++) {
      if (b >= l.sack_blocks) break;
      __u32 at = opts + l.sack_at + TCPOLEN_SACK_BASE + b * TCPOLEN_SACK_PERBLOCK;
      if (add32(skb, TCP_CSUM_ON_ETH, at, dseq) < 0 || add32(skb, TCP_CSUM_ON_ETH, at + 4, dseq) < 0) return TC_ACT_SHOT;
    }
  }
  if (l.ts_at >= 0 && (v->flags & CONN_F_TS)) {
    if (add32(skb, TCP_CSUM_ON_ETH, opts + l.ts_at + TCPOPT_TSECR_AT, v->dts) < 0) return TC_ACT_SHOT;
  }
  // What the bridge still needs to know of the client, from an acceptable segment only.
  if (ok) {
    if (!(v->flags & CONN_F_ACK_SEEN)) {
      v->ack_max = ack;
      v->nxt_max = nxt;
      v->flags |= CONN_F_ACK_SEEN;  // races with another CPU are benign: both write the same bit
    } else {
      if ((__s32)(ack - v->ack_max) > 0) v->ack_max = ack;
      if ((__s32)(nxt - v->nxt_max) > 0) v->nxt_max = nxt;
    }
    v->seen_ns = bpf_ktime_get_ns();
    __sync_fetch_and_add(&v->packets, 1);
  } else if (kind != (TH_SYN | TH_ACK)) {
    // (A SYN-ACK comes before the pair acknowledged anything: nothing to judge it by.)
    count(COUNT_OUT_OF_WINDOW);
  }
  skb->mark |= TCPFO_SKIP_MARK;
  count(COUNT_TRANSLATED);
  return TC_ACT_OK;
}

/*
 * Whether P's segment (TCP header at `l4`, `doff` bytes) of a primary-only
 * connection `o` can be rewritten here: no SYN, FIN or RST (those go to the
 * queue, where the merger sees a connection start and end), an ACK, and an
 * option layout whose timestamp can be found when it must be moved.
 */
static __always_inline int releasable(struct __sk_buff *skb, const struct out_val *o, __u32 l4, __u8 fl, __u32 doff, struct tcp_layout *l) {
  if ((fl & TH_CONTROL) || !(fl & TH_ACK) || doff < TCP_HDR_LEN) return 0;
  if (!tcp_layout(skb, l4 + TCP_HDR_LEN, doff - TCP_HDR_LEN, l)) return 0;
  return !(o->flags & OUT_F_TS) || l->ts_at >= 0;
}

/*
 * Whether P's segment may skip the queue on its own account: a primary-only
 * connection's that the egress program will release, or one the kernel
 * merges (in order, where one may wait, or exactly S's oldest waiting copy,
 * or bytes sent before; a stale hint errs either way, and the egress program
 * decides under the lock) while the secondary lives (peer_cfg.alone).
 */
static __always_inline int skips_queue(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *th) {
  if (ip->version != 4 || ip->ihl * 4 != IP_HDR_LEN || ip->protocol != IPPROTO_TCP) return 0;
  if (ip->frag_off & bpf_htons(IP_MF_OFFSET)) return 0;
  if (plain_syn_ack(tcp_flags(th)) || plain_syn(tcp_flags(th))) return hs_skips_queue(skb, ip, th);
  struct conn_key k = {.client = ip->daddr, .service = ip->saddr, .cport = th->dest, .sport = th->source};
  struct tcp_layout l;
  struct out_val *o = bpf_map_lookup_elem(&primary_only, &k);
  if (o) return releasable(skb, o, L4_ON_IP, tcp_flags(th), th->doff * 4, &l);
  struct merge_hint *h = bpf_map_lookup_elem(&merge_hints, &k);
  if (!h || h->mode != MERGE_KERNEL) return 0;
  // The secondary failed: the bridge turns this connection primary-only as its segment arrives.
  struct peer_cfg *pc = peer_cfg();
  if (pc && pc->alone) return 0;
  __u32 doff = th->doff * 4;
  __u32 tot = bpf_ntohs(ip->tot_len);
  if (tot < IP_HDR_LEN + doff) return 0;
  __u32 payload = tot - IP_HDR_LEN - doff;
  __u8 fl = tcp_flags(th);
  // Its ranges: one per segment of bytes, and one for a FIN (bpf/merge.h).
  __u32 chunks = seg_chunks(payload, skb->gso_size) + ((fl & TH_FIN) ? 1 : 0);
  if (!mergeable(skb, L4_ON_IP, fl, doff, chunks, 0, 0, h->ts_on, &l)) return 0;
  payload += (fl & TH_FIN) ? 1 : 0;  // from here, its length in sequence numbers
  if (!payload) return 1;
  __u32 seq = bpf_ntohl(th->seq);
  // Bytes P sent before, sent again (released, or waiting for S's copy): the
  // egress program passes them again or keeps them waiting (bpf/merge.h).
  __s32 past = (__s32)(seq + payload - h->p_next);
  if (past <= 0 && past > -(__s32)MAX_WINDOW) return 1;
  if (seq != h->p_next) return 0;
  // S ahead: its oldest copy, or (a GSO packet) as many of its copies as the packet has segments.
  if (h->s_ahead) return chunks == 1 ? seq + payload == h->s_head_end : (__s32)(seq + payload - h->s_tail_end) <= 0;
  return chunks <= h->p_room;
}

/*
 * The two matches of the bridge's netfilter rules before its output queue
 * (xt_bpf, `-m bpf --object-pinned`). A socket filter sees the packet from
 * its IP header.
 *
 * The order (maps.h `order`) counts, by client slot, only the segments the
 * queue takes on their own account (a handshake, a close, a connection the
 * bridge merges): those the kernel cannot release. A segment that goes there
 * only to wait its turn behind one of them is not counted, so the queue's
 * own lag never holds a client's later answers: with a steady stream of
 * answers, counting those too kept every slot's counts apart and sent every
 * answer through the queue.
 */

/* A pure ACK: no bytes, no SYN, FIN or RST. */
static __always_inline int pure_ack(const struct iphdr *ip, const struct tcphdr *th) {
  return !(tcp_flags(th) & TH_CONTROL) && bpf_ntohs(ip->tot_len) == ip->ihl * 4 + th->doff * 4;
}

/*
 * The first (-j RETURN): 1 for P's segment that skips the queue — it may
 * (skips_queue), and no segment of its client that the queue took on its
 * own account is without a verdict, or the slot has held its answers
 * long enough already (ORDER_HOLD). A SYN-ACK, a SYN and a pure ACK pass
 * whatever the order: the bridge releases a SYN(-ACK) as soon as both servers
 * sent it, in whatever order, and a client orders nothing by a pure ACK but
 * the last of a handshake the servers opened (its accept() returns with it),
 * and what the client must not see before that one are the servers' later
 * answers, which still wait their turn. Counts nothing.
 */
SEC("socket")
int tcpfo_primary_only(struct __sk_buff *skb) {
  struct iphdr ip;
  struct tcphdr th;
  // Read on its own: the helper leaves it unknown to the verifier on every
  // path, so the slot's address below is computed one way (a known slot on
  // one path and an unknown on another is refused without CAP_PERFMON).
  __be32 daddr = 0;
  bpf_skb_load_bytes(skb, offsetof(struct iphdr, daddr), &daddr, sizeof(daddr));
  if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0 || bpf_skb_load_bytes(skb, L4_ON_IP, &th, sizeof(th)) < 0) return 0;
  if (!skips_queue(skb, &ip, &th)) return 0;
  if (plain_syn_ack(tcp_flags(&th)) || plain_syn(tcp_flags(&th)) || pure_ack(&ip, &th)) return 1;
  __u32 queued = ORDER_QUEUED;
  __u32 done = ORDER_DONE;
  __u32 since = ORDER_SINCE;
  __u32 hold = ORDER_HOLD;
  struct order_slots *q = bpf_map_lookup_elem(&order, &queued);
  struct order_slots *d = bpf_map_lookup_elem(&order, &done);
  struct order_slots *t = bpf_map_lookup_elem(&order, &since);
  struct order_slots *h = bpf_map_lookup_elem(&order, &hold);
  if (!q || !d || !t || !h) return 1;
  __u32 slot = order_slot(bpf_ntohl(daddr)) & (ORDER_SLOTS - 1);
  if (q->n[slot] == d->n[slot]) return 1;
  return h->n[0] && (__s32)(now_ms() - t->n[slot]) >= (__s32)h->n[0];
}

/*
 * Whether P's segment is a pure ACK of a connection whose segments the
 * kernel releases (primary-only, or merged in the kernel), which the queue
 * takes all the same (a D-SACK after the client sent a request again, an
 * option the egress program does not read): nothing a client orders its
 * connections by. A connection the bridge merges is in neither map: its
 * pure ACKs are counted.
 */
static __always_inline int in_kernel_pure_ack(const struct iphdr *ip, const struct tcphdr *th) {
  if (!pure_ack(ip, th)) return 0;
  struct conn_key k = {.client = ip->daddr, .service = ip->saddr, .cport = th->dest, .sport = th->source};
  if (bpf_map_lookup_elem(&primary_only, &k)) return 1;
  struct merge_hint *h = bpf_map_lookup_elem(&merge_hints, &k);
  return h && h->mode == MERGE_KERNEL;
}

/*
 * The second, for what the first did not let past (-j MARK with
 * ORDER_WAIT_MARK, then the queue): 1 — marked, not counted — for P's
 * segment the kernel would release, which goes to the queue only to wait its
 * turn, and for a pure ACK of a connection the kernel releases
 * (in_kernel_pure_ack); 0 for one the queue takes on its own account,
 * counted for its client. Judged again here, not taken from the first: the
 * bridge then knows by the mark exactly which segments were counted.
 */
SEC("socket")
int tcpfo_order_only(struct __sk_buff *skb) {
  struct iphdr ip;
  struct tcphdr th;
  __be32 daddr = 0;
  bpf_skb_load_bytes(skb, offsetof(struct iphdr, daddr), &daddr, sizeof(daddr));
  int skip = 0;
  if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) == 0 && bpf_skb_load_bytes(skb, L4_ON_IP, &th, sizeof(th)) == 0) {
    skip = skips_queue(skb, &ip, &th);
    if (!skip && in_kernel_pure_ack(&ip, &th)) skip = 1;
  }
  if (skip) return 1;
  __u32 queued = ORDER_QUEUED;
  __u32 done = ORDER_DONE;
  __u32 since = ORDER_SINCE;
  struct order_slots *q = bpf_map_lookup_elem(&order, &queued);
  struct order_slots *d = bpf_map_lookup_elem(&order, &done);
  struct order_slots *t = bpf_map_lookup_elem(&order, &since);
  if (!q || !d || !t) return 0;
  __u32 slot = order_slot(bpf_ntohl(daddr)) & (ORDER_SLOTS - 1);
  // The count that sets the slot's counts apart starts its hold.
  if (q->n[slot] == d->n[slot]) t->n[slot] = now_ms();
  __sync_fetch_and_add(&q->n[slot], 1);
  return 0;
}

/*
 * What the match would say of P's segment but for the order (1: the kernel
 * releases it). The bridge asks (BPF_PROG_TEST_RUN) of a segment that reached
 * its queue only to wait its turn whether to hand it back to the kernel.
 */
SEC("socket")
int tcpfo_skips_queue(struct __sk_buff *skb) {
  struct iphdr ip;
  struct tcphdr th;
  if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0 || bpf_skb_load_bytes(skb, L4_ON_IP, &th, sizeof(th)) < 0) return 0;
  return skips_queue(skb, &ip, &th);
}

/*
 * P's segment of a primary-only connection, into the client's spaces: seq −
 * Δseq, TSval − the timestamp offset, the window from P's scale to the
 * client's. The ACK and SACK blocks are the client's numbers already. What
 * the merger does for a degraded connection (merge/release.ts), here.
 * Returns 1 if rewritten, 0 if not one, -1 if it failed (drop it: its raw
 * numbers must never reach the client).
 */
static __always_inline int release_primary_only(struct __sk_buff *skb, struct iphdr *ip, struct tcphdr *th) {
  struct conn_key k = {.client = ip->daddr, .service = ip->saddr, .cport = th->dest, .sport = th->source};
  struct out_val *o = bpf_map_lookup_elem(&primary_only, &k);
  if (!o) return 0;
  __u32 doff = th->doff * 4;
  __u32 tot = bpf_ntohs(ip->tot_len);
  __u32 len = tot ? tot : skb->len - L3_ON_ETH;
  __u16 win = bpf_ntohs(th->window);
  struct tcp_layout l;
  if (!releasable(skb, o, L4_ON_ETH, tcp_flags(th), doff, &l)) {
    // It passed the match, so the entry came meanwhile: a segment the queue
    // never saw must still not leave with P's numbers.
    count(COUNT_RELEASE_REFUSED);
    return -1;
  }
  if (add32(skb, TCP_CSUM_ON_ETH, L4_ON_ETH + TCP_SEQ, -o->dseq) < 0) return -1;
  if ((o->flags & OUT_F_TS) && add32(skb, TCP_CSUM_ON_ETH, L4_ON_ETH + TCP_HDR_LEN + l.ts_at + TCPOPT_TSVAL_AT, -o->dts) < 0) return -1;
  if (o->wscale_p != o->wscale_s && o->wscale_p <= MAX_WSCALE && o->wscale_s <= MAX_WSCALE) {
    __u32 bytes = (__u32)win << o->wscale_p;
    __u32 field = bytes >> o->wscale_s;
    if (field > 0xffff) field = 0xffff;
    if (store16(skb, TCP_CSUM_ON_ETH, L4_ON_ETH + TCP_WINDOW, bpf_htons((__u16)field)) < 0) return -1;
  }
  __sync_fetch_and_add(&o->segments, 1);
  if (len > IP_HDR_LEN + doff) __sync_fetch_and_add(&o->bytes, len - IP_HDR_LEN - doff);
  count(COUNT_RELEASED);
  return 1;
}

#define MERGE_STOLEN -2

// What stash_segments() keeps: the connection's key and Δseq, the packet's
// headers' length, payload and segments (how many, the size of each but the
// last), and where they go (the first waiting range's index, or a handover).
struct stash_req {
  struct stash_key key;
  __u32 hdr;
  __u32 payload;
  __u32 chunks;
  __u32 chunk_size;
  __u32 slot;
  __u32 handover;
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct stash_req);
} stash_req_scratch SEC(".maps");

/*
 * Keeps a copy of segment `c` of P's packet (stash_req), stolen just now,
 * in the stash for the bridge (it takes it with the connection): the
 * packet's headers, then the segment's bytes, sequence number and length set
 * to the segment's; a FIN and PSH only on the last (as GSO cuts it). Best
 * effort: a segment that cannot be kept comes again from P's TCP, as before.
 * A global function: the verifier checks it once.
 */
__noinline int stash_chunk(struct __sk_buff *skb, __u32 c) {
  __u32 zero = 0;
  struct stash_val *v = bpf_map_lookup_elem(&stash_scratch, &zero);
  struct stash_req *r = bpf_map_lookup_elem(&stash_req_scratch, &zero);
  if (!v || !r || c >= r->chunks || c >= MERGE_SEG_CHUNKS) return -1;
  __u32 last = c + 1 == r->chunks;
  __u32 at = c * r->chunk_size;
  __u64 len = last ? r->payload - at : r->chunk_size;
  __u64 hdr = r->hdr & 127;  // an IP header and TCP with options: 80 bytes at most
  if (hdr < STASH_MIN_PACKET || len > MERGE_MAX_PAYLOAD) return -1;
  if (bpf_skb_load_bytes(skb, L3_ON_ETH, v->pkt, hdr) < 0) return -1;
  if (len) {
    // 1 to MERGE_MAX_PAYLOAD, in a form older verifiers (6.1) bound from below too.
    __u32 n = ((len - 1) & (MERGE_MAX_PAYLOAD - 1)) + 1;
    if (bpf_skb_load_bytes(skb, L3_ON_ETH + hdr + at, v->pkt + hdr, n) < 0) return -1;
  }
  struct iphdr *ip = (struct iphdr *)v->pkt;
  struct tcphdr *th = (struct tcphdr *)(v->pkt + IP_HDR_LEN);
  ip->tot_len = bpf_htons(hdr + len);
  th->seq = bpf_htonl(bpf_ntohl(th->seq) + at);
  if (!last) v->pkt[IP_HDR_LEN + TH_FLAGS_BYTE] &= ~(TH_FIN | TH_PSH);
  // The IP header's sum, anew (20 bytes: no options here); the bridge fills TCP's.
  ip->check = 0;
  __u32 sum = 0;
  const __u16 *w = (const __u16 *)v->pkt;
#pragma unroll
  for (int i = 0; i < IP_HDR_LEN / 2; i++) sum += w[i];
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  ip->check = (__u16)~sum;
  v->len = hdr + len;
  struct stash_key sk = r->key;
  sk.idx = r->handover ? STASH_HANDOVER + c : (r->slot + c) & (MERGE_PENDING - 1);
  if (bpf_map_update_elem(&stash, &sk, v, BPF_ANY)) return -1;
  count(COUNT_STASHED);
  return 0;
}

// Each segment of the packet that stash_req describes (stash_chunk).
__noinline int stash_chunks(struct __sk_buff *skb) {
  __u32 zero = 0;
  struct stash_req *r = bpf_map_lookup_elem(&stash_req_scratch, &zero);
  if (!r) return -1;
  // Unrolled, with no early exit (as merge_digest's words).
#pragma unroll
  for (__u32 c = 0; c < MERGE_SEG_CHUNKS; c++) {
    if (c < r->chunks) stash_chunk(skb, c);
  }
  return 0;
}

/*
 * Keeps P's stolen packet for the bridge, one segment at a time (`o`: how
 * many and their size): a first arrival's at their places in the ring of
 * waiting ranges from `o->slot`, or (`handover`) at STASH_HANDOVER and after.
 */
static __always_inline void stash_segments(struct __sk_buff *skb, const struct conn_key *k, __u32 dseq, const struct merge_out *o, __u32 hdr,
                                           __u32 payload, int handover) {
  __u32 zero = 0;
  struct stash_req *r = bpf_map_lookup_elem(&stash_req_scratch, &zero);
  if (!r) return;
  r->key.conn = *k;
  r->key.dseq = dseq;
  r->key.idx = 0;
  r->hdr = hdr;
  r->payload = payload;
  // Counted again rather than kept from before the decision: a value live
  // across it multiplies the states the verifier walks.
  __u32 chunks = seg_chunks(payload, skb->gso_size);
  if (chunks > MERGE_SEG_CHUNKS) chunks = 1;  // not read as segments (kept whole, if it fits)
  r->chunks = chunks ? chunks : 1;
  r->chunk_size = chunks > 1 ? skb->gso_size : payload;
  r->slot = o->slot;
  r->handover = handover;
  stash_chunks(skb);
}

/*
 * P's segment of a connection merged here: 1 released (rewritten into the
 * client's spaces, the merged ACK and window), MERGE_STOLEN (waits for S's
 * copy, or the connection went to the bridge), 0 not merged here.
 */
static __always_inline int merge_primary(struct __sk_buff *skb, struct iphdr *ip, struct tcphdr *th) {
  struct conn_key k = {.client = ip->daddr, .service = ip->saddr, .cport = th->dest, .sport = th->source};
  struct merge_val *m = bpf_map_lookup_elem(&merge, &k);
  if (!m) return 0;
  struct merge_out o = {};
  int ts_at;
  __u32 tot = bpf_ntohs(ip->tot_len);
  __u32 hdr = IP_HDR_LEN + th->doff * 4;
  // Bytes or a FIN: what P's TCP would otherwise send again only at its timer.
  int data = tot > hdr || (tcp_flags(th) & TH_FIN);
  __u32 payload = tot > hdr ? tot - hdr : 0;
  __u32 v = merge_segment(skb, &k, m, SIDE_P, ip, th, &o, &ts_at);
  count_verdict(v);
  if (v != MV_RELEASE) {
    int handover = v == MV_HANDOVER || v == MV_NOT_KERNEL;
    if (handover) count(COUNT_HANDOVER_STOLEN);
    // Its bytes, for the bridge: at once when it takes the connection.
    if (data && (v == MV_HOLD || handover)) stash_segments(skb, &k, m->dseq, &o, hdr, payload, handover);
    return MERGE_STOLEN;
  }
  if (o.ended) tell_ended(&k, m->dseq, ENDED_CLOSE);
  // Released as far as the state goes: if the rewrite fails, P sends it again (to the bridge).
  if (merge_rewrite(skb, &o, ts_at) < 0) return MERGE_STOLEN;
  count(COUNT_MERGED_P);
  return 1;
}

// On egress: P's segments of primary-only connections are released here
// (release_primary_only); then whatever leaves towards a client of a listed
// connection — the bridge's releases, the segments it builds, and those —
// moves snd_nxt (how far the client may acknowledge) and rcv_nxt, rcv_wnd
// (where the client's data may fall). Every other segment of P's was held or
// dropped in the bridge's queue before routing, so no client can move them.
SEC("tc")
int tcpfo_sent(struct __sk_buff *skb) {
  struct iphdr *ip;
  struct tcphdr *th;
  if (!ipv4_tcp(skb, &ip, &th)) return TC_ACT_OK;
  // Released by the bridge (every verdict of its output queue carries the
  // mark) or by the ingress program: as it is. Else P's own segment, which
  // skipped the queue: a primary-only connection's, or one merged here.
  if ((skb->mark & TCPFO_SKIP_MARK) != TCPFO_SKIP_MARK) {
    // P's SYN-ACK that skipped the queue: merged with S's, or it waits for S's (stolen).
    __u32 hv = hs_primary(skb, ip, th);
    if (hv == HS_STOLEN) return TC_ACT_STOLEN;
    int r = hv == HS_RELEASED ? 1 : release_primary_only(skb, ip, th);
    if (r < 0) return TC_ACT_SHOT;
    if (r == 0) {
      r = merge_primary(skb, ip, th);
      // Held for S's copy, or its connection just went to the bridge: stolen,
      // so that P's TCP counts it sent and keeps its bytes for a retransmission.
      if (r == MERGE_STOLEN) return TC_ACT_STOLEN;
    }
    if (r == 0) {
      // Listed, and neither: it passed the match as its connection was removed
      // or handed over. Its raw numbers must not leave.
      struct conn_key k = {.client = ip->daddr, .service = ip->saddr, .cport = th->dest, .sport = th->source};
      if (bpf_map_lookup_elem(&conns, &k)) {
        count(COUNT_RELEASE_REFUSED);
        return TC_ACT_SHOT;
      }
    }
    // The rewrite invalidates the packet pointers: read the headers again.
    if (r > 0 && !ipv4_tcp(skb, &ip, &th)) return TC_ACT_OK;
  }
  __u8 fl = tcp_flags(th);
  if (fl & TH_RST) return TC_ACT_OK;  // a RST moves nothing
  struct conn_key k = {.client = ip->daddr, .service = ip->saddr, .cport = th->dest, .sport = th->source};
  struct conn_val *v = bpf_map_lookup_elem(&conns, &k);
  if (!v) return TC_ACT_OK;
  __u32 doff = th->doff * 4;
  __u32 tot = bpf_ntohs(ip->tot_len);
  // A GSO packet larger than 64 KB (BIG TCP) has tot_len 0: its length is the skb's.
  __u32 len = tot ? tot : skb->len - L3_ON_ETH;
  if (len < IP_HDR_LEN + doff) return TC_ACT_OK;
  __u32 nxt = bpf_ntohl(th->seq) + (len - IP_HDR_LEN - doff) + ((fl & TH_SYN) ? 1 : 0) + ((fl & TH_FIN) ? 1 : 0);
  if (!(v->flags & CONN_F_SENT) || (__s32)(nxt - v->snd_nxt) > 0) v->snd_nxt = nxt;
  // What the pair acknowledged: from the first ACK that left, not from the
  // first segment. The SYN of a connection the servers open carries none;
  // taken as a start at 0, a client whose numbers lie in the upper half of
  // the space (half of them) was never "after" it, and its FIN went to the bridge.
  __u32 flags = CONN_F_SENT;
  if (fl & TH_ACK) {
    __u32 ack = bpf_ntohl(th->ack_seq);
    if (!(v->flags & CONN_F_RCV) || (__s32)(ack - v->rcv_nxt) >= 0) {
      v->rcv_nxt = ack;
      __u32 shift = (fl & TH_SYN) ? 0 : (v->wscale & 15);
      v->rcv_wnd = (__u32)bpf_ntohs(th->window) << shift;
    }
    flags |= CONN_F_RCV;
  }
  v->flags |= flags;
  return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
