/**
 * Planned switchover, standby and the preferred node, for real in the rig:
 * `tcpfo switchover` asked on either node in the middle of each of the kill
 * campaign's workloads; standby and unstandby through a restart; the
 * refusals an operator meets; failover.preferred taking the service back.
 * The stall of each switchover at the client is printed; its target (median
 * ≤ 50 ms) is checked by bench/failover/switchover-campaign.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Capture } from '../../rig/capture.js';
import { distScript } from '../../rig/dist.js';
import { waitForLog, waitForLogCount } from '../../rig/failover.js';
import { checkTransparency } from '../../rig/oracle.js';
import { fifoThreads } from '../../rig/metrics.js';
import { DEMO_PORT, TcpfoPair, VIP } from '../../rig/pair.js';
import { withRig } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';
import {
  roleOf,
  switchoverDuring,
  tcpfoCli,
  waitForRole,
  type Node,
  type SwitchWorkload,
} from '../../rig/switchover.js';

/** A hook that appends "NODE ROLE REASON" to one file (the rig's nodes share the filesystem; RIG_NODE is in each bridge's environment). */
const hookYaml = (dir: string) =>
  `hooks:\n  on_role_change: 'echo "$RIG_NODE $1 $2" >> ${dir}/hook.log'\n  timeout_ms: 2000\n`;
const nodeEnv = { primary: { RIG_NODE: 'primary' }, secondary: { RIG_NODE: 'secondary' } };

describe('planned switchover (hub mode)', () => {
  const runs: Array<[SwitchWorkload, Node, number]> = [
    ['echo', 'primary', 1000],
    ['download', 'secondary', 800],
    ['memcached', 'primary', 1000],
    ['ftp-get', 'secondary', 400],
    ['ftp-put', 'primary', 400],
  ];
  for (const [workload, askedOn, at] of runs) {
    it(
      `${workload}: tcpfo switchover asked on the ${askedOn}: byte-exact, no RST, roles swapped`,
      async () => {
        const r = await switchoverDuring(workload, askedOn, at);
        console.log(
          `switchover during ${workload}, asked on the ${askedOn}: ${r.ok ? 'ok' : 'FAILED'}${r.stallMs !== null ? `, stall ${r.stallMs} ms` : ''}, command ${r.commandMs} ms`,
        );
        expect(r.ok, r.detail).toBe(true);
        expect(r.detail).toMatch(/serves the service address now/);
      },
      slow(180_000),
    );
  }

  it(
    'standby on the primary mid-session, kept across a restart; refusals while one node serves alone or a connection lives in one server; unstandby; switch back once it ended',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { extraYaml: hookYaml(rig.tmpdir), daemonEnv: nodeEnv });
        try {
          const c = rig.host('client');
          const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'stby', 96);
          // A session that outlives everything below: a line echoed every 50 ms.
          const session = c.exec(
            [
              process.execPath,
              distScript('rig/servers/demo-client.js'),
              'echo',
              VIP,
              String(DEMO_PORT),
              '0',
              String(slow(14_000)),
            ],
            { timeoutMs: slow(60_000) },
          );
          await new Promise((r) => setTimeout(r, slow(800)));
          const st = await tcpfoCli(pair, 'primary', ['standby']);
          expect(st.code, st.out + pair.logs()).toBe(0);
          expect(st.out).toMatch(/handed over, then in standby/);
          expect(await roleOf(pair, 'primary')).toBe('standby');
          expect(await roleOf(pair, 'secondary')).toBe('active');
          // The node serving alone refuses to switch over or to leave.
          const so = await tcpfoCli(pair, 'secondary', ['switchover']);
          expect(so.code, so.out).toBe(9);
          expect(so.out).toMatch(/refused: this node serves alone/);
          const sb = await tcpfoCli(pair, 'secondary', ['standby']);
          expect(sb.code, sb.out).toBe(9);
          expect(sb.out).toMatch(/standby would leave no node serving/);
          // Standby survives a restart of the daemon.
          expect(await TcpfoPair.stopDaemon(pair.primary)).toBe(0);
          pair.primary = await pair.startDaemon(
            rig.host('primary'),
            'primary',
            nodeEnv.primary,
            undefined,
            'staying out of the pair until tcpfo unstandby',
          );
          expect(await roleOf(pair, 'primary')).toBe('standby');
          const again = await tcpfoCli(pair, 'primary', ['switchover']);
          expect(again.code, again.out).toBe(9);
          expect(again.out).toMatch(/in standby: tcpfo unstandby first/);
          // Back: the primary node rejoins as the secondary; the other node takes the primary role.
          const un = await tcpfoCli(pair, 'primary', ['unstandby']);
          expect(un.code, un.out + pair.logs()).toBe(0);
          await waitForRole(pair, 'secondary', 'primary');
          expect(await roleOf(pair, 'primary')).toBe('secondary');
          // The promoted node's ARP thread started after its capabilities were dropped: still SCHED_FIFO.
          expect(fifoThreads(pair.secondary!.proc.pid!).map(([, prio]) => prio)).toEqual([10, 10]);
          // The session began before: it lives only in the other node's server now. Switching back would lose it.
          const refused = await tcpfoCli(pair, 'primary', ['switchover']);
          expect(refused.code, refused.out).toBe(9);
          expect(refused.out).toMatch(/the primary refused: 1 connection\(s\) live only in this node’s server/);
          const e = JSON.parse((await session).stdout.trim()) as {
            echoed: number;
            mismatched: number;
            maxRttMs: number;
            error?: string;
          };
          expect(e.error, JSON.stringify(e)).toBeUndefined();
          expect(e.mismatched).toBe(0);
          expect(e.echoed).toBeGreaterThan(100);
          // Ended: now it switches back.
          await new Promise((r) => setTimeout(r, slow(500)));
          const back = await tcpfoCli(pair, 'primary', ['switchover']);
          expect(back.code, back.out + pair.logs()).toBe(0);
          await waitForRole(pair, 'primary', 'primary');
          await waitForRole(pair, 'secondary', 'secondary');
          expect(checkTransparency(await cap.stop(), VIP, DEMO_PORT).problems).toEqual([]);
          // Every transition reached the hooks of both nodes, the stop and the standby included.
          await new Promise((r) => setTimeout(r, 500));
          const hook = readFileSync(join(rig.tmpdir, 'hook.log'), 'utf8');
          expect(hook).toMatch(/^primary standby planned switchover, then standby$/m);
          expect(hook).toMatch(/^primary stopped the daemon was stopped \(SIGTERM\)$/m);
          expect(hook).toMatch(/^primary standby in standby since before this start$/m);
          expect(hook).toMatch(/^secondary active took over the service address: planned switchover$/m);
          expect(hook).toMatch(/^secondary primary roles swapped: the other node rejoined as secondary$/m);
          expect(hook).toMatch(/^primary secondary back from standby$/m);
          expect(hook).toMatch(/^secondary secondary planned switchover: the other node serves$/m);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(240_000),
  );

  it(
    'failover.preferred: primary — after a switchover away, the primary node takes the service back once in sync for preferred_delay_s',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await TcpfoPair.start(rig, {
          extraYaml: 'failover:\n  preferred: primary\n  preferred_delay_s: 2\n',
        });
        try {
          const so = await tcpfoCli(pair, 'primary', ['switchover']);
          expect(so.code, so.out + pair.logs()).toBe(0);
          await waitForRole(pair, 'secondary', 'primary');
          await waitForLog(pair, /failover.preferred: this node serves again/, 20_000);
          await waitForRole(pair, 'primary', 'primary');
          await waitForRole(pair, 'secondary', 'secondary');
          // Once: back where it should be, it stays.
          await new Promise((r) => setTimeout(r, slow(3000)));
          await waitForLogCount(pair, /switchover: the secondary took the service address over/, 2);
          expect(pair.logs().match(/switchover: the secondary took the service address over/g)).toHaveLength(2);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );
});
