/**
 * Buffers for the merger's copies — P's segments it holds, S's bytes it
 * stores — used again once each copy is done with (its verdict given, its
 * bytes compared).
 *
 * Why: a bulk transfer holds nearly every P segment (up to 64 KB with GSO)
 * until S's copy comes, and stores S's bytes until they are compared, each a
 * few hundred µs. A new buffer per copy is memory outside V8's heap, and V8
 * answers a stream of it with full collections: at 1 Gbit/s one every
 * 100-200 ms on the primary's bridge, the largest item in its profile.
 * Recycled, the same few buffers carry the stream.
 *
 * A buffer comes from the size class (powers of two, 4 KB to 64 KB) that fits
 * the packet; the copy is a view of its first bytes. Copies under 4 KB are
 * Node's own (Buffer.allocUnsafe: slices of a shared 8 KB slab), which cost
 * less per copy than a pooled one and little memory outside the heap. Returned buffers wait in
 * their class, up to maxFreeBytes in all; beyond that they are left to the
 * collector. What a burst left idle goes too: trim(), every trimEveryMs, lets
 * go of the buffers of each class that no copy needed since the last trim (the
 * class's low-water mark). Nothing may read a copy after giving it back: with
 * `poison` (tests) its bytes are overwritten then, so a reader that does reads
 * garbage.
 */

const MIN_SHIFT = 12; // 4 KB: Node's Buffer.allocUnsafe shares a slab below it
const MAX_SHIFT = 16; // 64 KB: a whole IPv4 packet (65,535 bytes at most)
const POISON_BYTE = 0xa5;

export interface BufferPoolStats {
  /** Copies of 4 KB and more made in a recycled buffer. */
  reused: number;
  /** Copies of 4 KB and more that needed a new buffer. */
  allocated: number;
  /** Buffers given back and kept for reuse. */
  returned: number;
  /** Buffers left to the collector: given back when the free lists were full, or idle since the last trim. */
  released: number;
}

export class BufferPool {
  /** Free buffers per class: class k holds 2^(MIN_SHIFT + k) bytes. */
  private readonly free: ArrayBuffer[][] = [];
  private freeBytes = 0;
  /** The copies lent out (views over pooled buffers) and not given back yet. */
  private readonly lent = new WeakSet<Buffer>();
  readonly stats: BufferPoolStats = { reused: 0, allocated: 0, returned: 0, released: 0 };
  /** Per class, the fewest buffers its free list held since the last trim: those no copy needed. */
  private readonly lowWater: number[] = [];
  private trimmedAt = -Infinity;

  constructor(
    private readonly maxFreeBytes = 4 << 20,
    private readonly poison = false,
    private readonly trimEveryMs = 5000,
  ) {
    for (let s = MIN_SHIFT; s <= MAX_SHIFT; s++) {
      this.free.push([]);
      this.lowWater.push(0);
    }
  }

  /** A copy of `pkt` in a pooled buffer (or, under 4 KB or past 64 KB, a plain one). */
  copy(pkt: Buffer): Buffer {
    if (pkt.length < 1 << MIN_SHIFT) {
      const small = Buffer.allocUnsafe(pkt.length);
      pkt.copy(small);
      return small;
    }
    const k = classOf(pkt.length);
    let out: Buffer;
    if (k < 0) {
      out = Buffer.allocUnsafeSlow(pkt.length);
      this.stats.allocated++;
    } else {
      const list = this.free[k]!;
      let ab = list.pop();
      if (ab) {
        this.freeBytes -= ab.byteLength;
        if (list.length < this.lowWater[k]!) this.lowWater[k] = list.length;
        this.stats.reused++;
      } else {
        ab = new ArrayBuffer(1 << (MIN_SHIFT + k));
        this.stats.allocated++;
      }
      out = Buffer.from(ab, 0, pkt.length);
      this.lent.add(out);
    }
    pkt.copy(out);
    return out;
  }

  /**
   * Gives back a copy made by copy(), once nothing will read it again. Any
   * other buffer, or a copy given back already, is left alone: a buffer is
   * never in two hands.
   */
  give(copy: Buffer): void {
    if (!this.lent.delete(copy)) return;
    const ab = copy.buffer as ArrayBuffer;
    if (this.poison) new Uint8Array(ab).fill(POISON_BYTE);
    if (this.freeBytes + ab.byteLength > this.maxFreeBytes) {
      this.stats.released++;
      return;
    }
    this.free[classOf(ab.byteLength)]!.push(ab);
    this.freeBytes += ab.byteLength;
    this.stats.returned++;
  }

  /**
   * At most every trimEveryMs (`now`, ms): lets go of the idle buffers no copy
   * needed since the last trim, so a burst's buffers do not stay for good.
   */
  trim(now: number): void {
    if (now - this.trimmedAt < this.trimEveryMs) return;
    this.trimmedAt = now;
    for (let k = 0; k < this.free.length; k++) {
      const list = this.free[k]!;
      const unused = Math.min(this.lowWater[k]!, list.length);
      if (unused > 0) {
        list.length -= unused;
        this.freeBytes -= unused * (1 << (MIN_SHIFT + k));
        this.stats.released += unused;
      }
      this.lowWater[k] = list.length;
    }
  }

  /** Bytes in the free lists now. */
  get idleBytes(): number {
    return this.freeBytes;
  }
}

/** The class whose buffers fit `n` bytes, or −1 past the largest. */
function classOf(n: number): number {
  if (n > 1 << MAX_SHIFT) return -1;
  let k = 0;
  while (1 << (MIN_SHIFT + k) < n) k++;
  return k;
}
