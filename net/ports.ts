/** Failover port sets: single ports and inclusive ranges, with O(1) lookup on the data path. */

/** A set of TCP ports: single ports and inclusive ranges. */
export type PortSet = ReadonlyArray<number | readonly [number, number]>;

export class PortMatcher {
  private readonly bits = new Uint8Array(65536);

  constructor(readonly set: PortSet) {
    for (const p of set) {
      const [lo, hi] = typeof p === 'number' ? [p, p] : p;
      if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 65535 || lo > hi) {
        throw new RangeError(`bad port or range ${JSON.stringify(p)}`);
      }
      this.bits.fill(1, lo, hi + 1);
    }
  }

  has(port: number): boolean {
    return this.bits[port] === 1;
  }
}
