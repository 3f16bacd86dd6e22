/** PeerActivity: a silent peer whose segments still arrive is not yet declared failed; a dead one is at once. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PeerActivity } from '../../bridge/detector/activity.js';

describe('PeerActivity', () => {
  it('excuses the silence while the count grew since a sample an interval old, up to the cap', () => {
    const a = new PeerActivity(20, 1000);
    for (let t = 0, n = 0; t <= 200; t += 20, n += 5) a.sample(t, n);
    // Heard last at 100; at 215 the count grew past the sample at 180 (45): still sending.
    expect(a.stillSends(215, 60, 100)).toBe(true);
    // The same growth, the silence past the cap: no longer excused.
    expect(a.stillSends(1100, 60, 100)).toBe(false);
  });

  it('does not excuse a peer whose count stopped: a dead node is declared failed at once', () => {
    const a = new PeerActivity(20, 1000);
    for (let t = 0; t <= 200; t += 20) a.sample(t, t < 100 ? t : 100);
    expect(a.stillSends(210, 100, 100)).toBe(false);
  });

  it('does not excuse without a sample an interval old (nothing to compare with)', () => {
    const a = new PeerActivity(20, 1000);
    expect(a.stillSends(5, 10, 0)).toBe(false);
    a.sample(0, 0);
    expect(a.stillSends(10, 10, 0)).toBe(false);
    expect(a.stillSends(20, 10, 0)).toBe(true);
  });

  it('for any samples: excused only if the count grew since the newest sample an interval old and the silence is under the cap', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 0, max: 3 })), { maxLength: 12 }),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 0, max: 2000 }),
        (steps, dt, dn, silence) => {
          const a = new PeerActivity(20, 1000);
          const kept: Array<{ at: number; n: number }> = [];
          let t = 0;
          let n = 0;
          for (const [gap, grow] of steps) {
            t += gap;
            n += grow;
            a.sample(t, n);
            kept.push({ at: t, n });
          }
          const now = t + dt;
          const count = n + dn;
          const ref = kept
            .slice(-4)
            .reverse()
            .find((s) => now - s.at >= 20);
          const want = silence < 1000 && ref !== undefined && count > ref.n;
          expect(a.stillSends(now, count, now - silence)).toBe(want);
        },
      ),
    );
  });
});
