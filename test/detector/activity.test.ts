/** PeerActivity: a silent peer whose segments still arrive is not yet declared failed; a dead one is at once. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PeerActivity } from '../../bridge/detector/activity.js';

describe('PeerActivity', () => {
  it('excuses the silence while segments arrived within two intervals, up to the cap', () => {
    const a = new PeerActivity(20, 1000);
    // Heard last at 100; at 215 a segment came at 200: still sending.
    expect(a.stillSends(215, 200, 100)).toBe(true);
    expect(a.stillSends(240, 200, 100)).toBe(true);
    // The same segment, the silence past the cap: no longer excused.
    expect(a.stillSends(1100, 1090, 100)).toBe(false);
  });

  it('does not excuse a peer whose segments stopped: a dead node is declared failed at once', () => {
    const a = new PeerActivity(20, 1000);
    expect(a.stillSends(210, 100, 100)).toBe(false);
    expect(a.stillSends(241, 200, 100)).toBe(false);
  });

  it('does not excuse a peer none of whose segments ever came', () => {
    expect(new PeerActivity(20, 1000).stillSends(5, null, 0)).toBe(false);
  });

  it('for any times: excused only if a segment came within two intervals and the silence is under the cap', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 0, max: 2000 }),
        fc.option(fc.integer({ min: 0, max: 200 }), { nil: null }),
        fc.integer({ min: 0, max: 2000 }),
        (interval, now0, segmentAgo, silence) => {
          const a = new PeerActivity(interval, 1000);
          const now = now0 + 5000;
          const at = segmentAgo === null ? null : now - segmentAgo;
          const want = silence < 1000 && segmentAgo !== null && segmentAgo <= 2 * interval;
          expect(a.stillSends(now, at, now - silence)).toBe(want);
        },
      ),
    );
  });
});
