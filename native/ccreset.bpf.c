// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// A fresh congestion state for each of the service's TCP connections on this
// node: a tcp iterator (Linux 5.15 on) that, for every connection on the
// service address and a failover port, switches its congestion control to
// another algorithm and back, so the kernel initialises it anew (bbr_init,
// cubic's reset). The bridge runs it when this node starts serving alone:
// what a connection's TCP learned while its output was merged with the other
// server's (held segments it took for losses, a bandwidth model of the
// merged stream) no longer describes its path. One cc_record per connection
// goes to the reader. Layouts: bpf/ccreset.h (shared with native/ccreset.cc).
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "bpf/ccreset.h"

// The kernel's types, as far as this program reads them; libbpf relocates
// each field against the running kernel's BTF (CO-RE).
struct seq_file;
struct bpf_iter_meta {
  struct seq_file *seq;
} __attribute__((preserve_access_index));

struct in6_addr {
  union {
    __be32 u6_addr32[4];
  } in6_u;
} __attribute__((preserve_access_index));

struct sock_common {
  __be32 skc_daddr;
  __be32 skc_rcv_saddr;
  __be16 skc_dport;
  __u16 skc_num;
  unsigned short skc_family;
  volatile unsigned char skc_state;
  struct in6_addr skc_v6_daddr;
  struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

// The fields a pass reads of a connection (CO-RE, as above).
struct tcp_sock {
  __u32 snd_nxt;    // the next byte to send
  __u32 snd_wnd;    // the client's window, bytes
  __u32 write_seq;  // the end of what the server wrote
  __u32 mss_cache;  // the segment size
} __attribute__((preserve_access_index));

struct bpf_iter__tcp {
  struct bpf_iter_meta *meta;
  struct sock_common *sk_common;
} __attribute__((preserve_access_index));

#define AF_INET 2
#define AF_INET6 10
#define SOL_TCP 6
#define TCP_CONGESTION 13
#define TCP_CA_NAME_MAX 16

// include/net/tcp_states.h: the states in which a connection still sends.
#define TCP_ESTABLISHED 1
#define TCP_FIN_WAIT1 4
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9
#define TCP_CLOSING 11

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct cc_cfg);
} cc_cfg SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, struct cc_key);
  __type(value, __u64);
} cc_waits SEC(".maps");

/*
 * CC_REOPENED: whether this connection's client window reopened after a
 * wait. While both servers answer, a client that stops reading leaves each
 * server sending only at its window-probe timer; the copy that comes first
 * waits at the merge for the other's, and its TCP times out: BBR then takes
 * the timeouts for a policer and paces at the probes' rate long after the
 * client reads again (docs/design.md). A pass that finds a connection with
 * data to send and a window of less than a segment notes when; a later one
 * that finds a segment's room offered again, after CC_REOPEN_MIN_NS, resets
 * it. A stream that fills a wide window (the window is the limit, not the
 * client) is never noted.
 */
static __always_inline int reopened(struct tcp_sock *tp, struct cc_key *k) {
  // The window the client offers, not the room left in it: a stream that
  // fills a wide window is not waiting for its client.
  int shut = tp->snd_wnd < tp->mss_cache;
  __u64 now = bpf_ktime_get_ns();
  __u64 *since = bpf_map_lookup_elem(&cc_waits, k);
  if (shut) {
    if (!since && (__s32)(tp->write_seq - tp->snd_nxt) > 0) bpf_map_update_elem(&cc_waits, k, &now, BPF_NOEXIST);
    return 0;
  }
  if (!since) return 0;
  __u64 waited = now - *since;
  bpf_map_delete_elem(&cc_waits, k);
  return waited >= CC_REOPEN_MIN_NS;
}

static __always_inline int sends(unsigned char state) {
  return state == TCP_ESTABLISHED || state == TCP_FIN_WAIT1 || state == TCP_CLOSE_WAIT ||
         state == TCP_LAST_ACK || state == TCP_CLOSING;
}

static __always_inline int is_reno(const char *name) {
  return name[0] == 'r' && name[1] == 'e' && name[2] == 'n' && name[3] == 'o' && name[4] == 0;
}

// Whether the IPv6 address `a` is the configured one `b` (never when none is configured: all 0).
static __always_inline int v6_is(const struct in6_addr *a, const __u32 *b) {
  if (!(b[0] | b[1] | b[2] | b[3])) return 0;
  return a->in6_u.u6_addr32[0] == b[0] && a->in6_u.u6_addr32[1] == b[1] && a->in6_u.u6_addr32[2] == b[2] &&
         a->in6_u.u6_addr32[3] == b[3];
}

SEC("iter/tcp")
int tcpfo_cc_reset(struct bpf_iter__tcp *ctx) {
  struct sock_common *skc = ctx->sk_common;
  __u32 zero = 0;
  if (!skc) return 0;
  struct cc_cfg *cfg = bpf_map_lookup_elem(&cc_cfg, &zero);
  if (!cfg || !sends(skc->skc_state)) return 0;
  // An IPv4 connection of a server listening on [::] is an AF_INET6 socket; its IPv4
  // addresses are in skc_rcv_saddr and skc_daddr all the same (::ffff:a.b.c.d). An
  // IPv6 connection's skc_rcv_saddr is never an address of ours (127.0.0.6).
  unsigned short family = skc->skc_family;
  __u32 v6 = 0;
  if (family == AF_INET6 && v6_is(&skc->skc_v6_rcv_saddr, cfg->service6))
    v6 = 1;
  else if ((family != AF_INET && family != AF_INET6) || skc->skc_rcv_saddr != cfg->service)
    return 0;
  __u16 port = skc->skc_num;
  if (!(cfg->ports[(port >> 6) & (CC_PORT_WORDS - 1)] & (1ull << (port & 63)))) return 0;
  struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
  if (!tp) return 0;

  struct cc_record rec = {.cport = skc->skc_dport, .sport = port, .family = v6 ? AF_INET6 : AF_INET};
  if (v6) {
    for (int i = 0; i < 4; i++) rec.client6[i] = skc->skc_v6_daddr.in6_u.u6_addr32[i];
  } else {
    rec.client = skc->skc_daddr;
  }
  if (cfg->mode == CC_REOPENED) {
    struct cc_key k = {.family = rec.family, .cport = rec.cport, .sport = port};
    if (v6)
      __builtin_memcpy(k.client, rec.client6, sizeof(k.client));
    else
      k.client[0] = rec.client;
    if (!reopened(tp, &k)) return 0;
  }

  char cur[TCP_CA_NAME_MAX] = {};
  char other[TCP_CA_NAME_MAX] = "reno";
  long err = bpf_getsockopt(tp, SOL_TCP, TCP_CONGESTION, cur, sizeof(cur));
  if (!err) {
    // Setting the algorithm a connection has is no change; another one and back is.
    if (is_reno(cur)) __builtin_memcpy(other, "cubic", 6);
    err = bpf_setsockopt(tp, SOL_TCP, TCP_CONGESTION, other, sizeof(other));
    if (!err) err = bpf_setsockopt(tp, SOL_TCP, TCP_CONGESTION, cur, sizeof(cur));
  }
  rec.err = (__s32)err;
  bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
  return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
