import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  seqAdd,
  seqDiff,
  seqGe,
  seqGt,
  seqInRange,
  seqLe,
  seqLt,
  seqMax,
  seqMin,
  seqSub,
} from '../../bridge/wire/seq.js';
import { u32 } from './arbitraries.js';

const offset = fc.integer({ min: 1, max: 2 ** 31 - 1 });

describe('sequence arithmetic modulo 2^32', () => {
  it('orders a and a+d for every forward distance 0 < d < 2^31, across the wrap', () => {
    fc.assert(
      fc.property(u32, offset, (a, d) => {
        const b = seqAdd(a, d);
        expect(seqLt(a, b)).toBe(true);
        expect(seqLe(a, b)).toBe(true);
        expect(seqGt(b, a)).toBe(true);
        expect(seqGe(b, a)).toBe(true);
        expect(seqLt(b, a)).toBe(false);
        expect(seqGt(a, b)).toBe(false);
        expect(seqDiff(a, b)).toBe(d);
        expect(seqDiff(b, a)).toBe(-d);
        expect(seqSub(b, a)).toBe(d);
        expect(seqMax(a, b)).toBe(b);
        expect(seqMin(a, b)).toBe(a);
      }),
    );
  });

  it('wraps explicitly at the boundary', () => {
    expect(seqAdd(0xffffffff, 1)).toBe(0);
    expect(seqAdd(0xfffffff0, 0x20)).toBe(0x10);
    expect(seqAdd(5, -10)).toBe(0xfffffffb);
    expect(seqLt(0xfffffff0, 0x10)).toBe(true);
    expect(seqGt(0x10, 0xfffffff0)).toBe(true);
    expect(seqSub(0x10, 0xfffffff0)).toBe(0x20);
    expect(seqDiff(0xfffffff0, 0x10)).toBe(0x20);
    // Plain comparison gets these wrong: the reason this module exists.
    const [late, early] = [0xfffffff0, 0x10];
    expect(late < early).toBe(false);
  });

  it('is reflexive and results stay unsigned 32-bit', () => {
    fc.assert(
      fc.property(u32, fc.integer({ min: -(2 ** 32), max: 2 ** 32 }), (a, d) => {
        expect(seqLe(a, a) && seqGe(a, a) && !seqLt(a, a) && !seqGt(a, a)).toBe(true);
        const s = seqAdd(a, d);
        expect(Number.isInteger(s) && s >= 0 && s <= 0xffffffff).toBe(true);
        expect(seqSub(s, a)).toBe(((d % 2 ** 32) + 2 ** 32) % 2 ** 32);
      }),
    );
  });

  it('seqInRange agrees with distances', () => {
    fc.assert(
      fc.property(u32, fc.nat(2 ** 31 - 1), fc.nat(2 ** 31 - 1), (lo, width, at) => {
        const hi = seqAdd(lo, width);
        expect(seqInRange(seqAdd(lo, at), lo, hi)).toBe(at < width);
      }),
    );
  });
});
