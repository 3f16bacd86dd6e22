/**
 * The primary alone releases in the kernel (merge: release, and the default
 * merge: auto, which is kernel where the kernel allows it): once the secondary is gone, P's segments of
 * every connection — those it merged, now primary-only, and those begun
 * alone — leave through the egress program, past the output queue; only
 * handshakes and closes still go through the bridge. Real TCP stacks on all
 * three hosts, Linux defaults.
 */
import { describe, expect, it } from 'vitest';
import { killNode, restartNode, waitForLog } from '../../rig/failover.js';
import { scrapeMetrics } from '../../rig/metrics.js';
import { checkTransparency } from '../../rig/oracle.js';
import { Capture } from '../../rig/capture.js';
import { DEMO_PORT, TcpfoPair, transfer, VIP } from '../../rig/pair.js';
import { distScript } from '../../rig/dist.js';
import { withRig, type RigHost } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

const BYTES = 30_000_000;

function echoSession(c: RigHost, ms: number) {
  return c.exec(
    [process.execPath, distScript('rig/servers/demo-client.js'), 'echo', VIP, String(DEMO_PORT), '0', String(ms)],
    { timeoutMs: ms + 20_000 },
  );
}

describe('the kernel release of primary-only connections', () => {
  for (const [setting, mode] of [
    ['release', 'release'],
    ['auto', 'kernel'],
  ] as const) {
    it(
      `merge: ${setting}: after the secondary dies, an echo session, a download it merged and one begun alone, byte-exact, past the queue; the secondary rejoins and new connections merge again`,
      async () => {
        await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
          const pair = await TcpfoPair.start(rig, { extraYaml: `merge: ${setting}\n` });
          try {
            const c = rig.host('client');
            let m = await scrapeMetrics(rig, 'primary');
            expect(m(`tcpfo_merge_info{mode="${mode}"}`), pair.logs()).toBe(1);
            expect(pair.logs()).toMatch(`"merge":"${mode}"`);
            const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'kr', 96);
            const echo = echoSession(c, 14_000);
            const merged = transfer(c, 'get', BYTES, 3, 120_000);
            await new Promise((r) => setTimeout(r, 1000));
            await killNode(pair, 'secondary');
            await waitForLog(pair, /secondary failed: continuing alone/);
            m = await scrapeMetrics(rig, 'primary');
            const queuedBefore = m('tcpfo_nfqueue_packets_total{queue="out"}');
            const releasedBefore = m('tcpfo_kernel_outbound_total{action="released"}');
            const alone = await transfer(c, 'get', BYTES, 4, 120_000);
            const first = await merged;
            m = await scrapeMetrics(rig, 'primary');
            const released = m('tcpfo_kernel_outbound_total{action="released"}') - releasedBefore;
            const queued = m('tcpfo_nfqueue_packets_total{queue="out"}') - queuedBefore;
            const refused = m('tcpfo_kernel_outbound_total{action="refused"}');
            // The secondary comes back: new connections are merged again, the
            // echo session (primary-only since the failure) goes on in the kernel.
            await restartNode(pair, 'secondary');
            await waitForLog(pair, /secondary rejoined/, 30_000);
            const mergedBefore = m('tcpfo_merged_segments_total') + kernelMerged(m);
            const again = await transfer(c, 'get', 10_000_000, 5, 120_000);
            const e = JSON.parse((await echo).stdout.trim()) as { echoed: number; mismatched: number; error?: string };
            const report = checkTransparency(await cap.stop(), VIP, DEMO_PORT);
            const ctx = pair.logs();
            for (const r of [first, alone, again]) {
              expect(r.error, ctx).toBeUndefined();
              expect(r.sha256, ctx).toBe(r.expected);
            }
            expect(first.bytes + alone.bytes + again.bytes, ctx).toBe(2 * BYTES + 10_000_000);
            expect(e.error, ctx).toBeUndefined();
            expect(e.mismatched, ctx).toBe(0);
            expect(e.echoed, ctx).toBeGreaterThan(200);
            expect(report.problems, ctx).toEqual([]);
            console.log(`alone: ${released} segments released in the kernel, ${queued} through the output queue`);
            // 30 MB at most 64 KB a segment: at least 450 in the kernel; the queue saw
            // only the new connection's SYN-ACK and FIN and the closes (a few each).
            expect(released, ctx).toBeGreaterThan(450);
            expect(queued, ctx).toBeLessThan(50);
            expect(refused, ctx).toBe(0);
            // After the rejoin the download went through the merge (the bridge's, or the kernel's).
            // Segments, not bytes: the bridge merges GSO bursts of up to 64 KB as one, so 10 MB
            // is at least 153 of them (and ~7,000 where every segment is 1448 bytes).
            m = await scrapeMetrics(rig, 'primary');
            expect(m('tcpfo_merged_segments_total') + kernelMerged(m) - mergedBefore, ctx).toBeGreaterThanOrEqual(
              Math.ceil(10_000_000 / 65_536),
            );
          } finally {
            await pair.stop();
          }
        });
      },
      slow(180_000),
    );
  }
});

/** Segments the kernel merge released (0 where it does not run). */
function kernelMerged(m: (series: string) => number): number {
  const n = m('tcpfo_kernel_merge_total{action="released-p"}') + m('tcpfo_kernel_merge_total{action="released-s"}');
  return Number.isNaN(n) ? 0 : n;
}
