/**
 * The secondary server's output queue on the primary (paper §3.2, "S queue"):
 * the bytes S produced that P's output has not yet been compared with, kept
 * as sorted, non-overlapping chunks in S's sequence space. Out-of-order
 * chunks (a diverted segment lost between S and P, §4) are kept until the
 * gap is filled by S's retransmission.
 */
import { seqAdd, seqGt, seqLe, seqLt, seqSub } from '../wire/seq.js';
import type { BufferPool } from './buffer-pool.js';

interface Chunk {
  seq: number;
  data: Buffer;
  /** The copy `data` lies in (itself, or what is left of it once its front is forgotten): given back to the pool at the end. */
  whole: Buffer;
}

/** Bytes held across every store of a merger (its global bound). */
export interface StoreBudget {
  stored: number;
}

/** An empty store's chunks, shared (frozen): most connections store nothing most of the time. */
const NO_CHUNKS: Chunk[] = [];
Object.freeze(NO_CHUNKS);

export class ByteStore {
  private chunks: Chunk[] = NO_CHUNKS;
  private bytes = 0;

  /** The first sequence number of interest, stored signed (inline, not boxed; read unsigned). */
  private base32: number;
  private get base(): number {
    return this.base32 >>> 0;
  }
  private set base(v: number) {
    this.base32 = v | 0;
  }

  /**
   * `base`: the first sequence number of interest; bytes below it are never
   * stored. `budget`: where every change of the size is added, too. `pool`:
   * where the copies come from and go back to once forgotten (otherwise new
   * buffers, left to the collector).
   */
  constructor(
    base: number,
    private readonly budget: StoreBudget = { stored: 0 },
    private readonly pool: BufferPool | null = null,
  ) {
    this.base32 = base | 0;
  }

  /** Bytes currently held. */
  get size(): number {
    return this.bytes;
  }

  /** End of the contiguous run of bytes starting at `base`. */
  contiguousEnd(): number {
    let end = this.base;
    for (const c of this.chunks) {
      if (seqGt(c.seq, end)) break;
      const e = seqAdd(c.seq, c.data.length);
      if (seqGt(e, end)) end = e;
    }
    return end;
  }

  /**
   * Stores `data` at `seq`, keeping only bytes at or above `base` and not
   * already stored (first copy wins: a retransmission of the same bytes).
   * Copies the bytes it keeps. Returns the number of new bytes.
   */
  insert(seq: number, data: Buffer): number {
    if (data.length === 0) return 0;
    let s = seq;
    let d = data;
    if (seqLt(s, this.base)) {
      const skip = seqSub(this.base, s);
      if (skip >= d.length) return 0;
      d = d.subarray(skip);
      s = this.base;
    }
    let added = 0;
    // Walk the chunks and fill every gap that [s, s+len) covers.
    const out: Chunk[] = [];
    let i = 0;
    const end = seqAdd(s, d.length);
    let cursor = s;
    while (i < this.chunks.length && seqLe(seqAdd(this.chunks[i]!.seq, this.chunks[i]!.data.length), s))
      out.push(this.chunks[i++]!);
    while (i < this.chunks.length && seqLt(this.chunks[i]!.seq, end)) {
      const c = this.chunks[i]!;
      if (seqLt(cursor, c.seq)) {
        const len = seqSub(c.seq, cursor);
        out.push(this.chunk(cursor, d.subarray(seqSub(cursor, s), seqSub(cursor, s) + len)));
        added += len;
      }
      out.push(c);
      const ce = seqAdd(c.seq, c.data.length);
      if (seqGt(ce, cursor)) cursor = ce;
      i++;
    }
    if (seqLt(cursor, end)) {
      const len = seqSub(end, cursor);
      out.push(this.chunk(cursor, d.subarray(seqSub(cursor, s))));
      added += len;
    }
    while (i < this.chunks.length) out.push(this.chunks[i++]!);
    this.chunks = out;
    this.bytes += added;
    this.budget.stored += added;
    return added;
  }

  /** A chunk of a copy of `bytes`, at `seq`. */
  private chunk(seq: number, bytes: Buffer): Chunk {
    const data = this.pool ? this.pool.copy(bytes) : Buffer.from(bytes);
    return { seq, data, whole: data };
  }

  /**
   * Compares `data` (starting at `seq`) with the stored bytes over the range
   * both have. Returns false at the first differing byte.
   */
  matches(seq: number, data: Buffer): boolean {
    const end = seqAdd(seq, data.length);
    for (const c of this.chunks) {
      const ce = seqAdd(c.seq, c.data.length);
      if (seqLe(ce, seq)) continue;
      if (seqLe(end, c.seq)) break;
      const from = seqGt(c.seq, seq) ? c.seq : seq;
      const to = seqLt(ce, end) ? ce : end;
      const n = seqSub(to, from);
      const a = data.subarray(seqSub(from, seq), seqSub(from, seq) + n);
      const b = c.data.subarray(seqSub(from, c.seq), seqSub(from, c.seq) + n);
      if (!a.equals(b)) return false;
    }
    return true;
  }

  /** Forgets every byte below `seq` and moves `base` there. */
  advance(seq: number): void {
    if (!seqGt(seq, this.base)) return;
    this.base = seq;
    let drop = 0;
    while (drop < this.chunks.length) {
      const c = this.chunks[drop]!;
      const ce = seqAdd(c.seq, c.data.length);
      if (seqLe(ce, seq)) {
        this.bytes -= c.data.length;
        this.budget.stored -= c.data.length;
        this.pool?.give(c.whole);
        drop++;
        continue;
      }
      if (seqLt(c.seq, seq)) {
        const cut = seqSub(seq, c.seq);
        this.bytes -= cut;
        this.budget.stored -= cut;
        // Pooled, a view of the rest (its buffer goes back whole, later); otherwise the rest
        // copied, as a view would keep the whole chunk's memory.
        const rest = c.data.subarray(cut);
        this.chunks[drop] = this.pool ? { seq, data: rest, whole: c.whole } : this.chunk(seq, rest);
      }
      break;
    }
    // Emptied: the array goes (a splice keeps its capacity).
    if (drop === this.chunks.length) this.chunks = NO_CHUNKS;
    else if (drop) this.chunks.splice(0, drop);
  }

  /** The stored ranges [seq, end), for diagnostics. */
  ranges(): Array<[number, number]> {
    return this.chunks.map((c) => [c.seq, seqAdd(c.seq, c.data.length)]);
  }

  clear(): void {
    if (this.pool) for (const c of this.chunks) this.pool.give(c.whole);
    this.budget.stored -= this.bytes;
    this.chunks = NO_CHUNKS;
    this.bytes = 0;
  }
}
