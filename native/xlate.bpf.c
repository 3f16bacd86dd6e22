// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The primary's inbound translation in the kernel (the paper's
// "demultiplexer", §3.2): a client segment to P's TCP carries numbers in the
// secondary's spaces; P's TCP needs them in its own. For every merged
// connection the bridge puts Δseq and the timestamp offset in `conns`; this
// tc ingress program then moves the ACK, each SACK block (+Δseq) and the
// timestamp echo (+ts offset) on the way in, fixes the checksum
// incrementally, and marks the packet so the bridge's NFQUEUE rule lets it
// pass: the client's segment reaches P's TCP without a trip to user space.
//
// A client's SYN to the service passes as it is. Otherwise only the common
// case is handled here: an ACK (or the SYN-ACK of a server-initiated
// connection) without FIN or RST, no
// IP options, the usual option layouts. Everything else (handshakes, closes,
// resets, unknown connections, other layouts) is left unmarked and goes to
// the bridge's queue, which translates it and keeps the connection's state. What
// the bridge still needs of the segments handled here (the client's highest
// ACK and sequence number, when it was last seen) is kept in the map value,
// and only from segments inside the windows (RFC 5961 §5): a second program,
// on egress, records how far the bridge has released (the highest sequence
// number sent to the client) and what the servers acknowledged and offered.
// A blind ACK beyond what was released, or data outside the receive window,
// is still translated and handed to P's TCP (which applies its own checks)
// but never recorded: a forged segment cannot move what the bridge believes
// the client acknowledged or sent.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct conn_key {
  __u32 client;   // network byte order, as on the wire
  __u32 service;
  __u16 cport;
  __u16 sport;
};

struct conn_val {
  __u32 dseq;     // added to the ACK and to SACK blocks (host order arithmetic)
  __u32 dts;      // added to the timestamp echo
  __u32 flags;
  __u32 ack_max;  // the highest acceptable ACK seen here (host order), once F_ACK_SEEN
  __u32 nxt_max;  // the highest acceptable sequence number + length seen here
  __u32 wscale;   // the window scale the client was told (S's): the servers' windows are in its units
  __u64 seen_ns;  // bpf_ktime_get_ns() of the last acceptable segment handled here
  __u64 packets;  // acceptable segments handled here
  // Written on egress, from what leaves towards the client (once F_SENT):
  __u32 snd_nxt;  // the highest sequence number sent + length (SYN and FIN count)
  __u32 rcv_nxt;  // the highest ACK sent: what both servers acknowledged of the client
  __u32 rcv_wnd;  // the window sent with it, in bytes
  __u32 pad;
};

#define F_TS 1         // the connection uses timestamps: translate the echo
#define F_ACK_SEEN 2   // ack_max and nxt_max hold values
#define F_SENT 4       // snd_nxt, rcv_nxt and rcv_wnd hold values

// The largest window TCP can announce (65535 << 14): RFC 5961's MAX.SND.WND
// when the client's own is unknown. Below the highest ACK by more than this,
// an ACK is old or forged.
#define MAX_WINDOW (65535u << 14)

// The bridge's skip mark (bridge/io/inject.ts BRIDGE_MARK): its queue rules return at once for it.
#define SKIP_MARK 0x7466

#define ETH_LEN 14
#define IP_LEN 20
#define TCP_OFF (ETH_LEN + IP_LEN)
#define TCP_CSUM (TCP_OFF + 16)
#define MAX_OPTS 40

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, struct conn_key);
  __type(value, struct conn_val);
} conns SEC(".maps");

// The service address and each failover port (network byte order): a client's
// SYN to one of them needs no translation (nothing in it is in a server's
// space), so it too reaches P's TCP directly.
struct svc_key {
  __u32 addr;
  __u16 port;
  __u16 pad;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, struct svc_key);
  __type(value, __u8);
} services SEC(".maps");

// On an ordinary learning switch (lan.mode: switch) the secondary never sees
// the client's frames to the primary: each is copied to it here, before any
// translation — the copy leaves by the same interface with the secondary's
// MAC as destination and ours as source (the IP packet exactly as the client
// sent it).
struct dup_cfg {
  __u32 enabled;
  __u32 ifindex;
  __u8 macs[12];  // destination: the secondary's; source: ours
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct dup_cfg);
} dup SEC(".maps");

// Counters, per CPU (COUNT_*): segments translated, SYNs passed, frames copied
// to the secondary, segments translated but not recorded (outside the windows).
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 what) {
  __u64 *c = bpf_map_lookup_elem(&counters, &what);
  if (c) *c += 1;
}

// Counter indexes.
#define COUNT_TRANSLATED 0
#define COUNT_SYN_PASSED 1
#define COUNT_DUPLICATED 2
#define COUNT_OUT_OF_WINDOW 3

/*
 * RFC 5961 §5 and RFC 9293 §3.10.7.4, for what the bridge records: an ACK
 * only for bytes sent (at most snd_nxt, and not more than a window below
 * it), the segment inside the servers' receive window around what they
 * acknowledged. Before anything was sent (no F_SENT), nothing is recorded.
 */
static __always_inline int acceptable(const struct conn_val *v, __u32 ack, __u32 seq, __u32 nxt) {
  if (!(v->flags & F_SENT)) return 0;
  if ((__s32)(ack - v->snd_nxt) > 0 || v->snd_nxt - ack > MAX_WINDOW) return 0;
  __u32 win = v->rcv_wnd > 65535 ? v->rcv_wnd : 65535;
  // The segment's end not before the window's left edge, its start not past the right edge.
  if ((__s32)(nxt - (v->rcv_nxt - win)) < 0) return 0;
  if ((__s32)(seq - (v->rcv_nxt + win)) > 0) return 0;
  return 1;
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b) {
  int same = 1;
#pragma unroll
  for (int i = 0; i < 6; i++) same &= a[i] == b[i];
  return same;
}

static __always_inline int add32(struct __sk_buff *skb, __u32 off, __u32 delta) {
  __u32 old;
  if (bpf_skb_load_bytes(skb, off, &old, 4) < 0) return -1;
  __u32 val = bpf_htonl(bpf_ntohl(old) + delta);
  if (bpf_l4_csum_replace(skb, TCP_CSUM, old, val, 4) < 0) return -1;
  return bpf_skb_store_bytes(skb, off, &val, 4, 0);
}

/*
 * Whether the packet is unfragmented IPv4 TCP without IP options on
 * Ethernet, its TCP header's first 20 bytes in the linear data (pulled if
 * need be); if so, `*ipp` and `*thp` point at the headers. (A returned
 * pointer could not be tested against NULL: without CAP_PERFMON the verifier
 * prohibits comparing packet pointers, and a promoted secondary runs
 * with CAP_BPF and CAP_NET_ADMIN only.)
 */
static __always_inline int ipv4_tcp(struct __sk_buff *skb, struct iphdr **ipp, struct tcphdr **thp) {
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  if (data + TCP_OFF + 20 > end) {
    if (bpf_skb_pull_data(skb, TCP_OFF + 20) < 0) return 0;
    data = (void *)(long)skb->data;
    end = (void *)(long)skb->data_end;
    if (data + TCP_OFF + 20 > end) return 0;
  }
  struct ethhdr *eth = data;
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return 0;
  struct iphdr *ip = data + ETH_LEN;
  if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_TCP) return 0;
  if (ip->frag_off & bpf_htons(0x3fff)) return 0;
  *ipp = ip;
  *thp = data + TCP_OFF;
  return 1;
}

SEC("tc")
int tcpfo_xlate(struct __sk_buff *skb) {
  struct iphdr *ip;
  struct tcphdr *th;
  if (!ipv4_tcp(skb, &ip, &th)) return TC_ACT_OK;
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  __u8 fl = ((__u8 *)th)[13];
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
    __u8 orig[12];
    if (bpf_skb_load_bytes(skb, 0, orig, 12) < 0) return TC_ACT_OK;
    if (!mac_eq(orig, &d->macs[6]) || mac_eq(&orig[6], d->macs)) goto copied;
    if (bpf_skb_store_bytes(skb, 0, d->macs, 12, 0) < 0) return TC_ACT_OK;
    if (bpf_clone_redirect(skb, d->ifindex, 0) == 0) count(COUNT_DUPLICATED);
    if (bpf_skb_store_bytes(skb, 0, orig, 12, 0) < 0) return TC_ACT_SHOT;
    // The helpers above invalidate the packet pointers: read the headers again.
    data = (void *)(long)skb->data;
    end = (void *)(long)skb->data_end;
    if (data + TCP_OFF + 20 > end) return TC_ACT_OK;
    ip = data + ETH_LEN;
    th = data + TCP_OFF;
  }
copied:
  if ((fl & 0x17) == 0x02) {
    // A SYN alone (no ACK, FIN or RST) to the service: as it is.
    skb->mark |= SKIP_MARK;
    count(COUNT_SYN_PASSED);
    return TC_ACT_OK;
  }
  // ACK, and neither FIN (0x01) nor RST (0x04); a SYN-ACK (0x12: the client's
  // answer to a server-initiated connection, §7.2) only once it is merged (in the map).
  if ((fl & 0x17) != 0x10 && (fl & 0x17) != 0x12) return TC_ACT_OK;
  struct conn_key k = {.client = ip->saddr, .service = ip->daddr, .cport = th->source, .sport = th->dest};
  struct conn_val *v = bpf_map_lookup_elem(&conns, &k);
  if (!v) return TC_ACT_OK;
  __u32 doff = th->doff * 4;
  __u32 seq = bpf_ntohl(th->seq);
  __u32 ack = bpf_ntohl(th->ack_seq);
  __u32 payload = bpf_ntohs(ip->tot_len) - IP_LEN - doff;
  if (doff < 20 || doff > 20 + MAX_OPTS) return TC_ACT_OK;
  __u32 optlen = doff - 20;

  // The options, in the layouts Linux (and most stacks) send on an established
  // connection: none; NOP NOP TS; NOP NOP SACK; NOP NOP TS NOP NOP SACK. Any
  // other layout goes to the queue (no loop over options: the verifier keeps it small).
  int sack_at = -1, sack_blocks = 0, ts_at = -1;
  if (optlen > 0) {
    __u8 o[4];
    if (bpf_skb_load_bytes(skb, TCP_OFF + 20, o, 4) < 0) return TC_ACT_OK;
    if (o[0] != 1 || o[1] != 1) return TC_ACT_OK;
    __u32 at = 2;
    if (o[2] == 8 && o[3] == 10) {
      ts_at = 2;
      at = 12;
      if (optlen > 12) {
        if (bpf_skb_load_bytes(skb, TCP_OFF + 20 + 12, o, 4) < 0) return TC_ACT_OK;
        if (o[0] != 1 || o[1] != 1) return TC_ACT_OK;
        at = 14;
      }
    }
    if (at < optlen) {
      // A SACK option at `at`: kind 5, whole blocks, nothing after it.
      __u8 sk[2];
      if (bpf_skb_load_bytes(skb, TCP_OFF + 20 + at, sk, 2) < 0) return TC_ACT_OK;
      if (sk[0] != 5 || sk[1] < 10 || (sk[1] - 2) % 8 != 0 || at + sk[1] != optlen) return TC_ACT_OK;
      sack_at = at;
      sack_blocks = (sk[1] - 2) / 8;
    } else if (at != optlen) {
      return TC_ACT_OK;
    }
  }

  __u32 dseq = v->dseq;
  if (add32(skb, TCP_OFF + 8, dseq) < 0) return TC_ACT_SHOT;
  if (sack_at >= 0) {
    for (int b = 0; b < 4; b++) {
      if (b >= sack_blocks) break;
      __u32 at = TCP_OFF + 20 + sack_at + 2 + b * 8;
      if (add32(skb, at, dseq) < 0 || add32(skb, at + 4, dseq) < 0) return TC_ACT_SHOT;
    }
  }
  if (ts_at >= 0 && (v->flags & F_TS)) {
    if (add32(skb, TCP_OFF + 20 + ts_at + 6, v->dts) < 0) return TC_ACT_SHOT;
  }
  // What the bridge still needs to know of the client, from an acceptable segment only.
  __u32 nxt = seq + payload + ((fl & 0x02) ? 1 : 0);
  if (acceptable(v, ack, seq, nxt)) {
    if (!(v->flags & F_ACK_SEEN)) {
      v->ack_max = ack;
      v->nxt_max = nxt;
      v->flags |= F_ACK_SEEN;  // races with another CPU are benign: both write the same bit
    } else {
      if ((__s32)(ack - v->ack_max) > 0) v->ack_max = ack;
      if ((__s32)(nxt - v->nxt_max) > 0) v->nxt_max = nxt;
    }
    v->seen_ns = bpf_ktime_get_ns();
    __sync_fetch_and_add(&v->packets, 1);
  } else {
    count(COUNT_OUT_OF_WINDOW);
  }
  skb->mark |= SKIP_MARK;
  count(COUNT_TRANSLATED);
  return TC_ACT_OK;
}

// On egress: what leaves towards a client of a listed connection — the
// bridge's releases and the segments it builds — moves snd_nxt (how far the
// client may acknowledge) and rcv_nxt, rcv_wnd (where the client's data may
// fall). Only the bridge's own output passes here (P's raw segments are
// held or dropped in its queue before routing), so no client can move them.
SEC("tc")
int tcpfo_sent(struct __sk_buff *skb) {
  struct iphdr *ip;
  struct tcphdr *th;
  if (!ipv4_tcp(skb, &ip, &th)) return TC_ACT_OK;
  __u8 fl = ((__u8 *)th)[13];
  if (fl & 0x04) return TC_ACT_OK;  // a RST moves nothing
  struct conn_key k = {.client = ip->daddr, .service = ip->saddr, .cport = th->dest, .sport = th->source};
  struct conn_val *v = bpf_map_lookup_elem(&conns, &k);
  if (!v) return TC_ACT_OK;
  __u32 doff = th->doff * 4;
  __u32 tot = bpf_ntohs(ip->tot_len);
  // A GSO packet larger than 64 KB (BIG TCP) has tot_len 0: its length is the skb's.
  __u32 len = tot ? tot : skb->len - ETH_LEN;
  if (len < IP_LEN + doff) return TC_ACT_OK;
  __u32 nxt = bpf_ntohl(th->seq) + (len - IP_LEN - doff) + ((fl & 0x02) ? 1 : 0) + ((fl & 0x01) ? 1 : 0);
  if (!(v->flags & F_SENT) || (__s32)(nxt - v->snd_nxt) > 0) v->snd_nxt = nxt;
  if (fl & 0x10) {
    __u32 ack = bpf_ntohl(th->ack_seq);
    if (!(v->flags & F_SENT) || (__s32)(ack - v->rcv_nxt) >= 0) {
      v->rcv_nxt = ack;
      __u32 shift = (fl & 0x02) ? 0 : (v->wscale & 15);
      v->rcv_wnd = (__u32)bpf_ntohs(th->window) << shift;
    }
  }
  v->flags |= F_SENT;
  return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
