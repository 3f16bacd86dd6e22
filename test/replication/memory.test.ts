/**
 * The merger's memory: a held segment of P's owns its bytes (a copy, not a
 * view that keeps its whole NFQUEUE batch alive), and the bytes buffered over
 * all connections — S's stored, P's held — stay within maxBufferedBytes,
 * counted exactly and given back at every verdict.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { seqAdd } from '../../bridge/wire/seq.js';
import { Pair } from '../../rig/in-process/harness.js';

const ISN_P = 1_000_000;
const ISN_S = 7_000_000;

function established(cfg = {}) {
  const pair = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, cfg);
  return { pair, cack: seqAdd(pair.handshake(), 1) };
}

describe('held segments and the buffer budget', () => {
  it('a held segment is a copy: the batch it came in can go, and changing it changes nothing held', () => {
    const { pair, cack } = established();
    const batch = Buffer.alloc(10_000);
    const pkt = pair.p.data(Buffer.from('hello'), cack);
    pkt.copy(batch, 100);
    const view = batch.subarray(100, 100 + pkt.length);
    const id = pair.fromP(view);
    expect(pair.merger.buffered.held).toBe(pkt.length);
    batch.fill(0); // the batch reused or freed
    pair.fromS(pair.s.data(Buffer.from('hello'), cack));
    expect(pair.sink.fate(id)).toBe('accept');
    const out = pair.sink.acceptedPacket(id)!;
    expect(out.buffer).not.toBe(batch.buffer);
    expect(pair.sink.stream(ISN_S).toString()).toBe('hello');
    expect(pair.merger.buffered).toEqual({ stored: 0, held: 0 });
  });

  it('beyond maxBufferedBytes P’s new segments are not held (dropped: its TCP resends them); S’s bytes that cover what P waits with are still taken', () => {
    const { pair, cack } = established({ maxBufferedBytes: 3000 });
    const chunk = (i: number) => Buffer.alloc(1000, 65 + i);
    const ids = [0, 1, 2, 3].map((i) => pair.fromP(pair.p.data(chunk(i), cack)));
    expect(ids.map((id) => pair.sink.fate(id))).toEqual([undefined, undefined, 'drop', 'drop']);
    expect(pair.merger.stats.drops['memory-full']).toBe(2);
    expect(pair.merger.buffered.held).toBeLessThanOrEqual(3000);
    // S's first 2,000 bytes cover the held ones: taken over the budget, both released.
    pair.fromS(pair.s.data(chunk(0), cack));
    pair.fromS(pair.s.data(chunk(1), cack));
    expect(pair.sink.fate(ids[0]!)).toBe('accept');
    expect(pair.sink.fate(ids[1]!)).toBe('accept');
    expect(pair.merger.buffered).toEqual({ stored: 0, held: 0 });
  });

  it('property: whatever order P’s and S’s segments come in, the budget counts exactly what is held and stored, and returns to zero', () => {
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 30 }),
        (order, segs) => {
          const { pair, cack } = established({ maxBufferedBytes: 20_000 });
          let p = 0;
          let s = 0;
          const ids: number[] = [];
          for (const fromP of order) {
            if (fromP && p < segs) ids.push(pair.fromP(pair.p.data(Buffer.alloc(700, p++), cack)));
            else if (s < segs) pair.fromS(pair.s.data(Buffer.alloc(700, s++), cack));
            const q = pair.merger.queued();
            expect(pair.merger.buffered.stored).toBe(q.storedBytes);
            expect(pair.merger.buffered.stored + pair.merger.buffered.held).toBeLessThanOrEqual(20_000 + 700);
          }
          while (s < segs) pair.fromS(pair.s.data(Buffer.alloc(700, s++), cack));
          // Every P segment got its verdict: the held copies are given back.
          for (const id of ids) expect(pair.sink.fate(id)).toBeDefined();
          expect(pair.merger.buffered.held).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a connection forgotten with bytes still stored gives them back to the budget', () => {
    const { pair, cack } = established({ lingerMs: 1000, idleTimeoutMs: 60_000 });
    // S ahead of P: its bytes wait in the store.
    pair.fromS(pair.s.data(Buffer.alloc(900, 1), cack));
    pair.fromS(pair.s.data(Buffer.alloc(900, 2), cack));
    expect(pair.merger.buffered.stored).toBe(1800);
    pair.now = 61_001;
    pair.merger.poll(pair.now); // idle: forgotten
    expect(pair.merger.connections).toBe(0);
    expect(pair.merger.buffered).toEqual({ stored: 0, held: 0 });
  });
});
