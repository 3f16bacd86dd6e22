/** The primary's two NFQUEUE id spaces, merged into the merger's one (bridge/primary/queue-ids.ts). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { inboundId, queueOf } from '../../bridge/primary/queue-ids.js';

describe('queue ids', () => {
  it('every 32-bit id of either queue comes back to its own queue, also past 2^31', () => {
    for (const id of [0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 31 + 1, 2 ** 32 - 2, 2 ** 32 - 1]) {
      expect(queueOf(id)).toEqual({ inbound: false, id });
      expect(queueOf(inboundId(id))).toEqual({ inbound: true, id });
    }
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.boolean(), (id, inbound) => {
        expect(queueOf(inbound ? inboundId(id) : id)).toEqual({ inbound, id });
      }),
    );
  });

  it('tagged ids stay exact numbers (the merger keeps them as plain numbers)', () => {
    expect(Number.isSafeInteger(inboundId(2 ** 32 - 1))).toBe(true);
    expect(inboundId(2 ** 32 - 1)).not.toBe(2 ** 32 - 1);
  });
});
