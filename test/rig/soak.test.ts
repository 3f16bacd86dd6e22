/**
 * The soak, short (issue 8 §7): 70 s of mixed traffic with a failover every
 * 20 s — the secondary killed and rejoined, then the primary killed and
 * rejoined with the roles swapped. bench/soak.ts runs the hour.
 */
import { describe, expect, it } from 'vitest';
import { soak } from './soak.js';

describe('soak (short)', () => {
  it('mixed traffic with failovers of both nodes: every transfer byte-exact, memory flat', async () => {
    const r = await soak({ durationMs: 70_000, failoverEveryMs: 20_000, reportEveryMs: 15_000 });
    const last = r.intervals.at(-1)!;
    console.log(JSON.stringify(r.intervals));
    expect(r.errors).toEqual([]);
    expect(last.transfers).toBeGreaterThan(5);
    expect(last.transferFailures).toBe(0);
    expect(last.shortConnections).toBeGreaterThan(100);
    expect(last.shortFailures).toBe(0);
    expect(last.failovers.secondary).toBeGreaterThanOrEqual(1);
    expect(last.failovers.primary).toBeGreaterThanOrEqual(1);
    // The bridges' memory stays within bounds across the run.
    for (const i of r.intervals) {
      if (i.primaryRssMb !== null) expect(i.primaryRssMb).toBeLessThan(400);
      if (i.secondaryRssMb !== null) expect(i.secondaryRssMb).toBeLessThan(400);
    }
  }, 240_000);
});
