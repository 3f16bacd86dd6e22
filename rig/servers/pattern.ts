/** Deterministic byte streams for the demo server and client: same seed, same bytes, on any node. */

/** Fills `buf` from an xorshift32 state; returns the next state. */
export function fillPattern(buf: Buffer, state: number): number {
  let x = state >>> 0 || 0x9e3779b9;
  let i = 0;
  const n4 = buf.length & ~3;
  for (; i < n4; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf.writeUInt32LE(x, i);
  }
  for (; i < buf.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf[i] = x & 0xff;
  }
  return x;
}

/** Yields `total` pattern bytes in chunks of `chunk`. */
export function* patternChunks(total: number, seed: number, chunk = 64 * 1024): Generator<Buffer> {
  let state = seed;
  let left = total;
  while (left > 0) {
    const b = Buffer.allocUnsafe(Math.min(chunk, left));
    state = fillPattern(b, state);
    left -= b.length;
    yield b;
  }
}
