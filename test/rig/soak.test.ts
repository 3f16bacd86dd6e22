/**
 * The soak, short: 70 s of mixed traffic with a node killed
 * every 20 s — each in turn: the secondary, then the primary (a takeover,
 * then the restarted node rejoins with the roles swapped), then the node in
 * the secondary role again. The hour runs in bench/failover/soak.ts.
 */
import { describe, expect, it } from 'vitest';
import { soak } from '../../rig/soak.js';
import { slow } from '../../rig/slow.js';

describe('soak (short)', () => {
  it(
    'mixed traffic, a node killed every 20 s, each in turn, each rejoining (roles swapped after a takeover): every transfer byte-exact, memory flat',
    async () => {
      const r = await soak({
        durationMs: 70_000,
        failoverEveryMs: 20_000,
        reportEveryMs: 15_000,
        captureHandshakes: true,
      });
      const last = r.intervals.at(-1)!;
      console.log(JSON.stringify(r.intervals));
      // Each failure's report in full (a stall's can be long).
      if (r.errors.length) console.log(r.errors.join('\n'));
      // On a failure, the bridges' warnings and errors tell the story.
      if (r.errors.length && r.bridgeLogs)
        console.log(
          r.bridgeLogs
            .split('\n')
            .filter(
              (l) =>
                (/"level":(4|5|6)0/.test(l) && !l.includes('degraded to primary-only')) ||
                (l.trim() && !l.startsWith('{')),
            )
            .join('\n'),
        );
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
    },
    slow(240_000),
  );
});
