/**
 * 32-bit TCP sequence arithmetic (RFC 793 §3.3, RFC 1982 serial numbers).
 *
 * Every comparison of sequence numbers, acknowledgment numbers and TCP
 * timestamps in the bridge goes through here: a plain `<` on two sequence
 * numbers is wrong as soon as the space wraps past 2^32.
 */

/** a + b modulo 2^32. `b` may be negative. */
export function seqAdd(a: number, b: number): number {
  return (a + b) >>> 0;
}

/** a − b modulo 2^32, as an unsigned value in [0, 2^32). */
export function seqSub(a: number, b: number): number {
  return (a - b) >>> 0;
}

/**
 * Signed distance from a to b: the d in [−2^31, 2^31) with a + d ≡ b (mod 2^32).
 * Positive when b is "after" a.
 */
export function seqDiff(a: number, b: number): number {
  return (b - a) | 0;
}

/** a before b. */
export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

/** The later of two sequence numbers. */
export function seqMax(a: number, b: number): number {
  return seqGe(a, b) ? a : b;
}

/** The earlier of two sequence numbers. */
export function seqMin(a: number, b: number): number {
  return seqLe(a, b) ? a : b;
}

/** lo ≤ x < hi in sequence space. */
export function seqInRange(x: number, lo: number, hi: number): boolean {
  return seqSub(x, lo) < seqSub(hi, lo);
}
