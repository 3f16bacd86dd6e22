// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The digest the kernel merge compares two servers' copies of a range by
// (bpf/merge.h merge_digest): a 64-bit FNV-1a over the payload's 8-byte words
// in order, each step's bits mixed down, seeded with the length; the last 1–7
// bytes form one more word. The same bytes in another order give another
// digest. Not cryptographic: two servers' answers are compared, not an
// adversary's. One definition for the BPF programs and for the loader
// (native/xlate.cc), which digests what the bridge hands back to the kernel.
#ifndef TCPFO_BPF_DIGEST_H
#define TCPFO_BPF_DIGEST_H

#include <linux/types.h>

#define DIGEST_SEED 0xcbf29ce484222325ULL
#define DIGEST_PRIME 0x100000001b3ULL
#define DIGEST_CHUNK 64      // bytes the BPF program reads per step
#define DIGEST_FIN 0x46494e  // a FIN's range's digest: this word ("FIN") after the seed

#ifdef __bpf__
#define DIGEST_INLINE __always_inline
#else
#define DIGEST_INLINE inline __attribute__((always_inline))
#endif

static DIGEST_INLINE __u64 digest_step(__u64 h, __u64 w) {
  h ^= w;
  h *= DIGEST_PRIME;
  return h ^ (h >> 29);
}

#ifndef __bpf__
#include <string.h>

// The digest of `n` bytes at `p` in user space: the words as the BPF program
// loads them (host order, little-endian where BPF runs), the last 1–7 bytes
// as the high end of the word that ends the payload, shifted down.
static inline __u64 digest_of(const __u8 *p, __u32 n) {
  __u64 h = DIGEST_SEED ^ n;
  __u32 words = n / 8;
  for (__u32 i = 0; i < words; i++) {
    __u64 w;
    memcpy(&w, p + i * 8, 8);
    h = digest_step(h, w);
  }
  __u32 rest = n & 7;
  if (rest) {
    __u64 w = 0;
    memcpy(&w, p + n - rest, rest);
    h = digest_step(h, w);
  }
  return h;
}
#endif

#endif
