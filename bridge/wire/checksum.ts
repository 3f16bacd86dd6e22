/**
 * Internet checksum (RFC 1071) and its incremental update (RFC 1624, eqn. 3).
 *
 * The one place that knows ones'-complement arithmetic. Sums are carried as
 * plain numbers (no overflow below 2^53) and folded to 16 bits at the end.
 */

/** Ones'-complement sum of `len` bytes of `buf` from `off`, added to `initial`, unfolded. */
export function sumBytes(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  const end = off + len;
  const even = end - ((end - off) & 1);
  let i = off;
  for (; i < even; i += 2) {
    sum += (buf[i]! << 8) | buf[i + 1]!;
  }
  if (i < end) sum += buf[i]! << 8;
  return sum;
}

/** Folds a sum to 16 bits with end-around carry. */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum field value for data whose unfolded sum is `sum`. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/** Full checksum of a byte range. */
export function checksum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  return finish(sumBytes(buf, off, len, initial));
}

/** Sum of the IPv4 pseudo header for TCP/UDP (RFC 793 §3.1). */
export function pseudoHeaderSum(src: number, dst: number, protocol: number, length: number): number {
  return addressSum4(src, dst) + protocol + length;
}

/** The address words of the IPv4 pseudo header. */
export function addressSum4(src: number, dst: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff);
}

/**
 * The address words of the IPv6 pseudo header (RFC 8200 §8.1): both 16-byte
 * addresses. The rest — the upper-layer length as 32 bits and the next header
 * — is added as for IPv4 (a length below 2^16: no jumbograms).
 */
export function addressSum6(src: Uint8Array, dst: Uint8Array): number {
  return sumBytes(src, 0, 16) + sumBytes(dst, 0, 16);
}

/**
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for one 16-bit word changing from
 * `oldWord` to `newWord`.
 */
export function update16(check: number, oldWord: number, newWord: number): number {
  const sum = (~check & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  return ~fold(sum) & 0xffff;
}

/** RFC 1624 for a 32-bit field (an address, a sequence number) changing. */
export function update32(check: number, oldValue: number, newValue: number): number {
  const sum =
    (~check & 0xffff) + (~(oldValue >>> 16) & 0xffff) + (~oldValue & 0xffff) + (newValue >>> 16) + (newValue & 0xffff);
  return ~fold(sum) & 0xffff;
}
