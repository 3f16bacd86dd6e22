/**
 * A client that stops reading mid-download, both nodes up. While its window
 * is shut, each server sends only at its window-probe timer and the merge
 * holds the first copy for the other's; BBR took the timeouts that followed
 * for a policer and crawled long after the client read again. Once the
 * client offers a segment's window again, each node gives the connection a
 * new congestion start (bridge/node/reopen-watch.ts, native/ccreset.bpf.c
 * `reopened`); a client that reads throughout has its connection left as it
 * is. How long the rest takes, against plain TCP, is
 * bench/micro/slow-reader.ts's to measure. Real TCP stacks, Linux defaults.
 */
import { describe, expect, it } from 'vitest';
import { scrapeMetrics } from '../../rig/metrics.js';
import { DEMO_PORT, Gate, TcpfoPair, transfer, VIP } from '../../rig/pair.js';
import { withRig } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

const RESETS = 'tcpfo_window_reopened_resets_total{result="reset"}';

describe('a client that stops reading, both nodes up', () => {
  it('gets a new congestion start on both nodes once it reads again, and every byte; a client that reads throughout keeps its connection’s state', async () => {
    await withRig({ mode: 'mirror', links: { client: { rateMbit: 100 } } }, async (rig) => {
      const pair = await TcpfoPair.start(rig);
      try {
        const resets = async () => [
          (await scrapeMetrics(rig, 'primary'))(RESETS),
          (await scrapeMetrics(rig, 'secondary'))(RESETS),
        ];
        const c = rig.host('client');
        const steady = await transfer(c, 'get', 10_000_000, 3, slow(60_000));
        expect(steady.sha256).toBe(steady.expected);
        // The passes run every half second: give the last one its turn.
        await new Promise((r) => setTimeout(r, 1500));
        expect(await resets()).toEqual([0, 0]);

        const gate = Gate.in(rig, 2_000_000);
        // The rest (38 MB, 3 s at the link's rate) outlasts the longest time between two passes:
        // a connection that ends before the next pass needs no reset, and gets none.
        const paused = transfer(c, 'get', 40_000_000, 4, slow(60_000), VIP, DEMO_PORT, [gate]);
        await gate.reached();
        // Longer than the longest time between two passes (REOPEN_MAX_INTERVAL_MS), with room to spare.
        await new Promise((r) => setTimeout(r, 3500));
        gate.open();
        const r = await paused;
        expect(r.sha256).toBe(r.expected);
        const deadline = Date.now() + slow(6000);
        let seen = await resets();
        while (!(seen[0]! >= 1 && seen[1]! >= 1) && Date.now() < deadline) {
          await new Promise((res) => setTimeout(res, 250));
          seen = await resets();
        }
        expect(seen[0], 'the primary reset the paused connection').toBeGreaterThanOrEqual(1);
        expect(seen[1], 'the secondary reset the paused connection').toBeGreaterThanOrEqual(1);
      } finally {
        await pair.stop();
      }
    });
  }, 120_000);
});
