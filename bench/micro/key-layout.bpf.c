// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The cost of a connection key's width in the primary's programs
// (bench/micro/key-layout.ts): hash-map lookups with the key of
// native/bpf/maps.h (two 4-byte addresses and two ports, 12 bytes), or one
// wide enough for IPv6 (two 16-byte addresses, 36 bytes). Compiled once per
// width (-DADDR_BYTES=4 or 16). `fill` puts FILL connections in the map;
// `lookups` looks up LOOKUPS of them per run, as a packet of the inbound
// program looks up its connection in several maps; `none` does all but the
// lookups, so that the difference is the lookups' own time.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#ifndef ADDR_BYTES
#define ADDR_BYTES 4
#endif
#define FILL 10000
#define LOOKUPS 4

struct key {
  __u8 client[ADDR_BYTES];
  __u8 service[ADDR_BYTES];
  __u16 cport;
  __u16 sport;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, struct key);
  __type(value, __u64);
} conns SEC(".maps");

// Which connection the next run looks up first: the runs walk all of them.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} cursor SEC(".maps");

// The key of connection `i`: the same client and service, the client's port varying (as one client's many
// connections: the bytes that differ are the last ones hashed).
static __always_inline void key_of(struct key *k, __u32 i) {
  __builtin_memset(k, 0, sizeof(*k));
  k->client[0] = 198;
  k->client[ADDR_BYTES - 1] = 7;
  k->service[0] = 192;
  k->service[ADDR_BYTES - 1] = 100;
  k->cport = (__u16)(1024 + i);
  k->sport = 7000;
}

static long fill_one(__u32 i, void *ctx) {
  struct key k;
  __u64 v = i;
  key_of(&k, i);
  bpf_map_update_elem(&conns, &k, &v, BPF_ANY);
  return 0;
}

SEC("tc")
int fill(struct __sk_buff *skb) {
  bpf_loop(FILL, fill_one, NULL, 0);
  return TC_ACT_OK;
}

static __always_inline int walk(int look) {
  __u32 zero = 0;
  __u32 *c = bpf_map_lookup_elem(&cursor, &zero);
  if (!c) return TC_ACT_SHOT;
  __u64 found = 0;
  for (int n = 0; n < LOOKUPS; n++) {
    struct key k;
    key_of(&k, (*c + n * 2477) % FILL);
    if (look) {
      __u64 *v = bpf_map_lookup_elem(&conns, &k);
      if (v) found += *v;
    } else {
      found += k.cport;
    }
  }
  *c = (*c + 1) % FILL;
  return found ? TC_ACT_OK : TC_ACT_SHOT;
}

SEC("tc")
int lookups(struct __sk_buff *skb) { return walk(1); }

SEC("tc")
int none(struct __sk_buff *skb) { return walk(0); }

char LICENSE[] SEC("license") = "Dual MIT/GPL";
