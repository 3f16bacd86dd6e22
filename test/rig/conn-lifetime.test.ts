/**
 * A connection's entry in the primary's table ends with the connection, for
 * real: closed by either side, or aborted by the server application
 * (SO_LINGER 0, which resets the client at once, as a plain server does),
 * merged or on a primary alone. After thousands of connections the table
 * is empty again, a linger later.
 */
import { describe, expect, it } from 'vitest';
import { killNode, waitForLog } from '../../rig/failover.js';
import { distScript } from '../../rig/dist.js';
import { DEMO_PORT, TcpfoPair, VIP } from '../../rig/pair.js';
import { scrapeMetrics } from '../../rig/metrics.js';
import { withRig, type Rig } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

const STATES = ['handshake', 'merging', 'degraded', 'closed'] as const;

async function table(rig: Rig): Promise<Record<(typeof STATES)[number], number>> {
  const m = await scrapeMetrics(rig, 'primary');
  const get = (s: string) => m(`tcpfo_connections{state="${s}"}`);
  return { handshake: get('handshake'), merging: get('merging'), degraded: get('degraded'), closed: get('closed') };
}

/** Waits until the table is empty (the linger, 2 s, and a poll); returns what it held last. */
async function emptied(rig: Rig, pair: TcpfoPair, withinMs: number): Promise<void> {
  const until = Date.now() + withinMs;
  for (;;) {
    const t = await table(rig);
    if (STATES.every((s) => t[s] === 0)) return;
    if (Date.now() > until)
      throw new Error(`the table still holds ${JSON.stringify(t)} after ${withinMs} ms\n${pair.logs().slice(-4000)}`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

/** `n` parallel GETs of 100 bytes (the server closes first), in rounds of 2,000. */
async function many(rig: Rig, n: number): Promise<void> {
  for (let done = 0; done < n; done += 2000) {
    const k = Math.min(2000, n - done);
    const r = await rig
      .host('client')
      .sh(
        `ulimit -n "$(ulimit -Hn)" && exec "${process.execPath}" "${distScript('rig/servers/demo-client.js')}" many ${VIP} ${DEMO_PORT} 100 ${k}`,
        { timeoutMs: 120_000, allowFail: true },
      );
    if (!r.stdout.trim()) throw new Error(`demo client many failed (exit ${r.code}): ${r.stderr}`);
    const out = JSON.parse(r.stdout.trim()) as { ok: number; errors: string[] };
    expect(out.errors).toEqual([]);
    expect(out.ok).toBe(k);
  }
}

async function clientCmd(rig: Rig, mode: string, arg: string, n: number): Promise<Record<string, unknown>> {
  const r = await rig
    .host('client')
    .exec([process.execPath, distScript('rig/servers/demo-client.js'), mode, VIP, String(DEMO_PORT), arg, String(n)], {
      timeoutMs: 120_000,
    });
  return JSON.parse(r.stdout.trim()) as Record<string, unknown>;
}

describe('the primary’s table after connections end (hub mode)', () => {
  it(
    'merged, then alone: closes by either side and server aborts leave nothing behind; an abort resets the client at once; 10,000 connections on a primary alone leave the table empty',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { heartbeatTimeoutMs: 300 });
        try {
          // Merged: the server closes first (GET), the client closes first (connect), the server aborts.
          await many(rig, 1000);
          await clientCmd(rig, 'connect', '0', 300);
          const merged = await clientCmd(rig, 'abort', '0', 50);
          expect(merged, pair.logs().slice(-3000)).toEqual({ reset: 50, other: [], maxMs: expect.any(Number) });
          expect(merged.maxMs, pair.logs().slice(-3000)).toBeLessThan(3000);
          await emptied(rig, pair, 10_000);
          // Alone.
          await killNode(pair, 'secondary');
          await waitForLog(pair, /secondary failed: continuing alone/);
          const t0 = Date.now();
          await many(rig, 10_000);
          console.log(`10,000 connections on a primary alone: ${Date.now() - t0} ms`);
          await clientCmd(rig, 'connect', '0', 300);
          const alone = await clientCmd(rig, 'abort', '0', 50);
          expect(alone.reset).toBe(50);
          await emptied(rig, pair, 10_000);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(240_000),
  );
});
