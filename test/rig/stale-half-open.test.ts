/**
 * A half-open socket on the secondary that the pair will never merge: its
 * SYN reached the secondary's TCP alone (after a role swap: a connection the
 * new primary served alone while the restarted node's kernel path was
 * already in). Left, that socket answers a later connection on the same
 * ports with an ACK for the old one instead of a SYN-ACK, and the new
 * connection waits for a SYN-ACK of S's that never comes (primary-only after
 * seconds, or stuck). The primary resets it in the secondary's stack
 * (merger.ts resetHalfOpenS); the client's later connection from the same
 * port is merged at once, both servers holding it.
 */
import { describe, expect, it } from 'vitest';
import { distScript } from '../../rig/dist.js';
import { DEMO_PORT, TcpfoPair, VIP } from '../../rig/pair.js';
import { scrapeMetrics } from '../../rig/metrics.js';
import { withRig, type RigHost } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

const PORT = 45_123;

/** Connects from `port`, echoes a line: {connectMs, echoed, error}; holds the connection 3 s more. */
function connectFrom(c: RigHost, port: number) {
  const script = `
    const net = require('node:net');
    const t0 = process.hrtime.bigint();
    const s = net.connect({ host: '${VIP}', port: ${DEMO_PORT}, localPort: ${port} });
    let connectMs = -1, got = '';
    s.setTimeout(15000, () => s.destroy(new Error('timeout')));
    s.on('connect', () => { connectMs = Number(process.hrtime.bigint() - t0) / 1e6; s.write('ECHO\\nhello\\n'); });
    s.on('data', (d) => { got += d; if (got.includes('hello')) { console.log(JSON.stringify({ connectMs, echoed: true })); setTimeout(() => process.exit(0), 3000); } });
    s.on('error', (e) => { console.log(JSON.stringify({ connectMs, echoed: false, error: e.message })); process.exit(0); });
  `;
  return c.exec([process.execPath, '-e', script], { timeoutMs: 30_000 });
}

describe('a half-open socket of the secondary’s that the pair never merges', () => {
  it(
    'a SYN only the secondary’s TCP saw: its socket is reset, and the client’s next connection from that port is merged at once, held by both servers',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await TcpfoPair.start(rig);
        try {
          const c = rig.host('client');
          const s = rig.host('secondary');
          // A SYN to the secondary's MAC only: its TCP answers (the SYN-ACK diverted to the
          // primary, whose TCP never saw the SYN) and keeps the request in SYN-RECV.
          await c.exec([
            process.execPath,
            distScript('rig/helpers/forge.js'),
            'syn',
            'eth0',
            c.mac,
            s.mac,
            c.ip,
            String(PORT),
            VIP,
            String(DEMO_PORT),
            '1000000',
          ]);
          const halfOpen = async () =>
            (await s.sh(`ss -tnH state syn-recv src ${VIP} dst ${c.ip}:${PORT}`, { allowFail: true })).stdout.trim();
          expect(await halfOpen(), 'the secondary’s TCP took the forged SYN').not.toBe('');
          // The primary resets it once no SYN-ACK of P's joined S's for EARLY_SYNACK_MS (looked at once a second).
          const deadline = Date.now() + 15_000;
          while ((await halfOpen()) !== '' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
          expect(await halfOpen(), 'the secondary’s stale half-open socket is gone').toBe('');
          expect(
            (await scrapeMetrics(rig, 'primary'))('tcpfo_secondary_half_open_resets_total'),
          ).toBeGreaterThanOrEqual(1);

          // The client's real connection from the same port: merged, not primary-only after seconds.
          const run = connectFrom(c, PORT);
          const established = async () =>
            (await s.sh(`ss -tnH state established src ${VIP} dst ${c.ip}:${PORT}`, { allowFail: true })).stdout.trim();
          let both = '';
          for (let i = 0; i < 25 && !both; i++) {
            await new Promise((r) => setTimeout(r, 100));
            both = await established();
          }
          const r = JSON.parse((await run).stdout.trim()) as { connectMs: number; echoed: boolean; error?: string };
          expect(r.error).toBeUndefined();
          expect(r.echoed).toBe(true);
          // Without the reset: no SYN-ACK of S's, so primary-only after the silence (2.7 s) or never.
          expect(r.connectMs).toBeLessThan(2000);
          expect(both, 'the secondary’s TCP holds the connection too').not.toBe('');
          const st = JSON.parse(
            (
              await rig
                .host('primary')
                .exec([process.execPath, distScript('cli.js'), 'status', '--json', '-c', pair.configFor('primary')])
            ).stdout,
          ) as { connections: Record<string, number> };
          // Never primary-only: the secondary answered the SYN.
          expect(st.connections.degraded).toBe(0);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(90_000),
  );
});
