/** The merger's recycled copies (bridge/primary/buffer-pool.ts) and S's byte store on top of them. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../bridge/primary/buffer-pool.js';
import { ByteStore } from '../../bridge/primary/byte-store.js';
import { seqAdd, seqSub } from '../../bridge/wire/seq.js';

const bytes = (n: number, fill: number) => Buffer.alloc(n, fill);

describe('BufferPool', () => {
  it('a copy holds the same bytes in a buffer of its own', () => {
    const pool = new BufferPool();
    const src = Buffer.from('the bytes of a held segment');
    const c = pool.copy(src);
    expect(c.equals(src)).toBe(true);
    src[0] = 0;
    expect(c[0]).toBe('t'.charCodeAt(0));
  });

  it('a copy given back serves the next one of its size class; another class gets a new buffer', () => {
    const pool = new BufferPool();
    const a = pool.copy(bytes(60_000, 1));
    const buf = a.buffer;
    pool.give(a);
    expect(pool.idleBytes).toBe(65_536);
    const b = pool.copy(bytes(40_000, 2)); // 32-64 KB: the same class
    expect(b.buffer).toBe(buf);
    expect(b.length).toBe(40_000);
    expect(b.every((x) => x === 2)).toBe(true);
    const other = pool.copy(bytes(5000, 3));
    expect(other.buffer).not.toBe(buf);
    expect(other.buffer.byteLength).toBe(8192);
    // Under 4 KB: Node's own shared slabs, not the pool's.
    const small = pool.copy(bytes(100, 4));
    expect(small.every((x) => x === 4)).toBe(true);
    pool.give(small);
    expect(pool.stats).toEqual({ reused: 1, allocated: 2, returned: 1, released: 0 });
  });

  it('a copy given back twice, or a buffer it never lent, is left alone: no buffer is ever in two hands', () => {
    const pool = new BufferPool();
    const a = pool.copy(bytes(5000, 1));
    pool.give(a);
    pool.give(a);
    pool.give(Buffer.alloc(8192));
    pool.give(Buffer.allocUnsafeSlow(8192));
    const b = pool.copy(bytes(5000, 2));
    const c = pool.copy(bytes(5000, 3));
    expect(b.buffer).toBe(a.buffer);
    expect(c.buffer).not.toBe(b.buffer);
    expect(pool.stats.returned).toBe(1);
  });

  it('with poison, a copy given back reads garbage', () => {
    const pool = new BufferPool(1 << 20, true);
    const a = pool.copy(bytes(5000, 7));
    pool.give(a);
    expect(a.every((x) => x === 0xa5)).toBe(true);
  });

  it('keeps at most maxFreeBytes idle; the rest is left to the collector', () => {
    const pool = new BufferPool(3 * 8192);
    const copies = Array.from({ length: 5 }, () => pool.copy(bytes(8000, 1)));
    for (const c of copies) pool.give(c);
    expect(pool.idleBytes).toBe(3 * 8192);
    expect(pool.stats.returned).toBe(3);
    expect(pool.stats.released).toBe(2);
  });

  it('trim lets go of what no copy needed since the last trim, and keeps what a steady stream uses', () => {
    const pool = new BufferPool(1 << 20, false, 5000);
    // A burst: 10 copies held at once, then given back.
    const burst = Array.from({ length: 10 }, () => pool.copy(bytes(4096, 1)));
    for (const c of burst) pool.give(c);
    expect(pool.idleBytes).toBe(10 * 4096);
    pool.trim(0); // the first look: sets the marks
    // Then a steady stream needs 2 at a time.
    for (let t = 1; t < 5000; t += 100) {
      const a = pool.copy(bytes(4096, 2));
      const b = pool.copy(bytes(4096, 3));
      pool.give(a);
      pool.give(b);
    }
    pool.trim(4000); // too soon: nothing changes
    expect(pool.idleBytes).toBe(10 * 4096);
    pool.trim(5000);
    expect(pool.idleBytes).toBe(2 * 4096);
    expect(pool.stats.released).toBe(8);
    // Nothing needed at all for a while: the rest goes too.
    pool.trim(10_000);
    pool.trim(15_000);
    expect(pool.idleBytes).toBe(0);
    const again = pool.copy(bytes(4096, 4));
    expect(again.every((x) => x === 4)).toBe(true);
  });

  it('a whole IPv4 packet (65,535 bytes) fits the largest class', () => {
    const pool = new BufferPool();
    const a = pool.copy(bytes(65_535, 9));
    expect(a.buffer.byteLength).toBe(65_536);
    pool.give(a);
    expect(pool.stats.returned).toBe(1);
  });
});

describe('ByteStore on pooled copies', () => {
  type Op = { kind: 'insert'; at: number; len: number } | { kind: 'advance'; to: number } | { kind: 'clear' };
  // Offsets and lengths in KB-sized steps: copies of 4 KB and more come from the pool.
  const op: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        kind: fc.constant('insert' as const),
        at: fc.nat(40_000),
        len: fc.integer({ min: 1, max: 20_000 }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), to: fc.nat(40_000) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const) }) },
  );
  // Bytes by position (a function of the position, as both servers produce them).
  const data = (off: number, len: number) => {
    const b = Buffer.allocUnsafe(len);
    for (let i = 0; i < len; i++) b[i] = ((off + i) * 31 + 7) & 0xff;
    return b;
  };

  it('stores, compares and forgets as a plain store does, though every buffer it gave back is poisoned and reused', () => {
    fc.assert(
      fc.property(fc.nat(), fc.array(op, { maxLength: 40 }), (isn, ops) => {
        const pool = new BufferPool(1 << 20, true);
        const pooled = new ByteStore(isn, { stored: 0 }, pool);
        const plain = new ByteStore(isn);
        // Positions are offsets from the ISN (sequence numbers may wrap).
        for (const o of ops) {
          if (o.kind === 'insert') {
            const d = data(o.at, o.len);
            expect(pooled.insert(seqAdd(isn, o.at), d)).toBe(plain.insert(seqAdd(isn, o.at), d));
          } else if (o.kind === 'advance') {
            pooled.advance(seqAdd(isn, o.to));
            plain.advance(seqAdd(isn, o.to));
          } else {
            pooled.clear();
            plain.clear();
          }
          // Copies made now take buffers given back, if any: the store must no longer read them.
          for (const n of [4096, 8192, 16_384, 32_768]) pool.give(pool.copy(bytes(n, 0x5a)));
          expect(pooled.size).toBe(plain.size);
          expect(pooled.ranges()).toEqual(plain.ranges());
          for (const [s, e] of pooled.ranges()) {
            const off = seqSub(s, isn);
            expect(pooled.matches(s, data(off, seqSub(e, s)))).toBe(true);
          }
        }
      }),
      { numRuns: 100 },
    );
  });
});
