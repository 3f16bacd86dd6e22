/**
 * One bridge per node and instance: the ordinary commands an operator may
 * type on a live node — a second `tcpfo primary`, a second `tcpfo
 * secondary`, `tcpfo cleanup` — leave the running bridge alone; after each,
 * the pair still serves and still fails over with every connection intact.
 * `cleanup --force` stops the bridge first, then cleans.
 */
import { describe, expect, it } from 'vitest';
import { killNode, waitForLog } from '../../rig/failover.js';
import { distScript } from '../../rig/dist.js';
import { stateDirOf, TcpfoPair, transfer } from '../../rig/pair.js';
import { withRig, type Rig, type RigHost } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

const cli = (h: RigHost, args: string[]) =>
  h.exec([process.execPath, distScript('cli.js'), ...args], { allowFail: true, timeoutMs: 60_000 });

/** The node's tcpfo state: rules, nft tables, the VIP on lo, tc filters. */
async function installed(h: RigHost): Promise<string> {
  const r = await h.sh(
    'iptables-nft-save -t mangle | grep -c TCPFO; nft list tables; ip -o addr show dev lo | grep -c 192.0.2.100; tc filter show dev eth0 ingress | grep -c tcpfo_xlate',
    { allowFail: true },
  );
  return r.stdout;
}

/** A new connection is served, and one open when the primary dies survives it byte-exact. */
async function servesAndFailsOver(rig: Rig, pair: TcpfoPair): Promise<void> {
  const c = rig.host('client');
  const now = await transfer(c, 'get', 200_000, 3, 20_000);
  expect(now.error, pair.logs()).toBeUndefined();
  expect(now.sha256).toBe(now.expected);
  const t = transfer(c, 'get', 30_000_000, 4, 60_000);
  await new Promise((res) => setTimeout(res, 700));
  await killNode(pair, 'primary');
  const r = await t;
  expect(r.error, pair.logs()).toBeUndefined();
  expect(r.sha256, pair.logs()).toBe(r.expected);
  await waitForLog(pair, /took over the service address/);
}

describe('one bridge per node (hub mode, 100 Mbit/s client link)', () => {
  for (const node of ['primary', 'secondary'] as const) {
    it(
      `a second \`tcpfo ${node}\` on the ${node} exits 8 at once and changes nothing; the pair still serves and fails over`,
      async () => {
        await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
          const pair = await TcpfoPair.start(rig, { heartbeatTimeoutMs: 300 });
          try {
            const h = rig.host(node);
            const before = await installed(h);
            const r = await cli(h, [node, '-c', pair.configFor(node)]);
            expect(r.code, r.stderr).toBe(8);
            expect(r.stderr).toMatch(
              /"holder":\d+,.*a tcpfo bridge of instance t already runs on this node \(pid \d+\).*"msg":"a tcpfo bridge of this instance already runs on this node: not starting; nothing was changed"/,
            );
            expect(r.stderr).not.toMatch(/undid what a previous/);
            expect(await installed(h)).toBe(before);
            // The running bridge still answers for itself.
            const st = await cli(h, ['status', '-c', pair.configFor(node)]);
            expect(st.code, st.stderr).toBe(0);
            expect(st.stdout).toMatch(new RegExp(`^role\\s+${node}`, 'm'));
            await servesAndFailsOver(rig, pair);
          } finally {
            await pair.stop();
          }
        });
      },
      slow(90_000),
    );
  }

  it(
    '`tcpfo cleanup` on a node whose bridge runs refuses (exit 8) and changes nothing; `cleanup --force` stops that bridge, then cleans',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { heartbeatTimeoutMs: 300 });
        try {
          const p = rig.host('primary');
          const s = rig.host('secondary');
          const before = await installed(p);
          const r = await cli(p, ['cleanup', '--state-dir', stateDirOf(rig, 'primary')]);
          expect(r.code, r.stderr).toBe(8);
          expect(r.stderr).toMatch(/a bridge runs on this node: instance t \(pid \d+\)\. Nothing was changed/);
          expect(await installed(p)).toBe(before);
          // --force on the secondary: its bridge stops (a clean stop, exit 0), the primary goes on alone.
          const f = await cli(s, ['cleanup', '--force', '--state-dir', stateDirOf(rig, 'secondary')]);
          expect(f.code, `${f.stderr}\n${pair.logs()}`).toBe(0);
          expect(f.stderr).toMatch(/SIGTERM to the bridge of instance t \(pid \d+\)/);
          expect(pair.secondary!.proc.exitCode).toBe(0);
          expect(await installed(s)).toBe('0\n0\n0\n');
          await waitForLog(pair, /secondary failed: continuing alone/);
          const c = rig.host('client');
          const alone = await transfer(c, 'get', 1_000_000, 5, 20_000);
          expect(alone.sha256, pair.logs()).toBe(alone.expected);
          // The secondary back: the pair fails over again.
          pair.secondary = await pair.startDaemon(s, 'secondary');
          await waitForLog(pair, /secondary rejoined: new connections are replicated again/, 10_000);
          await servesAndFailsOver(rig, pair);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );
});
