/**
 * Wall-clock steps (NTP, `date -s`) on either node change nothing: every
 * timer and decision of the bridges runs on a monotonic clock. The bridges
 * run under libfaketime (monotonic time untouched), and their wall clocks
 * are stepped forward and back during an echo session: no takeover, no
 * "secondary failed", no degraded connection, no stall.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitForLog } from '../../rig/failover.js';
import { distScript } from '../../rig/dist.js';
import { DEMO_PORT, TcpfoPair, VIP } from '../../rig/pair.js';
import { withRig } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

function fakeClock(file: string): Record<string, string> {
  writeFileSync(file, '+0\n');
  return {
    LD_PRELOAD: LIBFAKETIME,
    FAKETIME_TIMESTAMP_FILE: file,
    FAKETIME_NO_CACHE: '1',
    FAKETIME_DONT_FAKE_MONOTONIC: '1',
    DONT_FAKE_MONOTONIC: '1',
  };
}

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

describe('wall-clock steps (hub mode)', () => {
  it(
    'stepping either bridge’s wall clock by seconds, forward and back, during an echo session: no takeover, no degradation, no stall',
    async () => {
      expect(
        existsSync(LIBFAKETIME),
        `${LIBFAKETIME} missing: apt-get install libfaketime (scripts/setup-system.sh --dev)`,
      ).toBe(true);
      await withRig({ mode: 'hub' }, async (rig) => {
        const rc = { primary: join(rig.tmpdir, 'primary.faketime'), secondary: join(rig.tmpdir, 'secondary.faketime') };
        const pair = await TcpfoPair.start(rig, {
          daemonEnv: { primary: fakeClock(rc.primary), secondary: fakeClock(rc.secondary) },
        });
        try {
          const session = rig
            .host('client')
            .exec(
              [process.execPath, distScript('rig/servers/demo-client.js'), 'echo', VIP, String(DEMO_PORT), '0', '8000'],
              { timeoutMs: 30_000 },
            );
          await sleep(1500);
          writeFileSync(rc.primary, '+5\n');
          // The step took: the primary's next log line is ~5 s ahead.
          const realAtHup = Date.now();
          pair.primary!.proc.kill('SIGHUP');
          await waitForLog(pair, /SIGHUP: configuration reloaded/);
          const hup = readFileSync(pair.primary!.log, 'utf8')
            .split('\n')
            .find((l) => l.includes('SIGHUP: configuration reloaded'))!;
          expect((JSON.parse(hup) as { time: number }).time - realAtHup).toBeGreaterThan(4000);
          await sleep(1500);
          writeFileSync(rc.secondary, '-5\n');
          await sleep(1500);
          writeFileSync(rc.primary, '-3\n');
          await sleep(1500);
          writeFileSync(rc.secondary, '+4\n');
          const r = JSON.parse((await session).stdout.trim()) as {
            echoed: number;
            sent: number;
            mismatched: number;
            maxRttMs: number;
            error?: string;
          };
          // The session's figures and both bridges' logs with any failure: a stall says when it began.
          const story = `${JSON.stringify(r)}\n${pair.logs()}`;
          expect(r.error, story).toBeUndefined();
          expect(r.mismatched, story).toBe(0);
          expect(r.echoed, story).toBeGreaterThan(100);
          expect(r.echoed, story).toBeGreaterThanOrEqual(r.sent - 1);
          // A false silence costs a detector timeout at least, and a takeover far more.
          expect(r.maxRttMs, pair.logs()).toBeLessThan(1000);
          const logs = pair.logs();
          expect(logs).not.toMatch(
            /secondary failed|primary is down|secondary is down|took over|degraded to primary-only|primary-only:/,
          );
          const m = (await rig.host('primary').exec(['curl', '-sf', 'http://127.0.0.1:9464/metrics'])).stdout;
          expect(m).toMatch(/^tcpfo_failovers_total 0$/m);
          expect(m).toMatch(/^tcpfo_secondary_silent_total 0$/m);
          expect(m).toMatch(/^tcpfo_role\{role="primary"\} 1$/m);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(90_000),
  );
});
