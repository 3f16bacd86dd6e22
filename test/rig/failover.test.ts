/**
 * Failover of either node, end to end (paper §5, §6): the node's link is cut
 * and its bridge and server are SIGKILLed in the middle of a transfer. Every
 * client transfer must complete byte-exact with no RST. A short campaign:
 * bench/failover/failover-campaign.ts runs the full one.
 */
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Capture } from '../../rig/capture.js';
import { killNode, restartNode, waitForLog, waitForLogCount } from '../../rig/failover.js';
import { checkTransparency } from '../../rig/oracle.js';
import { DEMO_PORT, Gate, TcpfoPair, transfer, VIP, VIP6, type TransferResult } from '../../rig/pair.js';
import { distScript } from '../../rig/dist.js';
import { withRig } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

const BYTES = 50_000_000;
/** The live role swap (the default; spelled out so these tests keep meaning it). */
const SWAP = 'failover:\n  rejoin: swap-roles\n';

async function killDuring(
  node: 'primary' | 'secondary',
  mode: 'get' | 'put',
  killAfterMs: number,
  datapath: 'kernel' | 'pcap',
): Promise<{ r: TransferResult; problems: string[]; logs: string }> {
  return withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
    // The kernel paths on both nodes, or the paper's whole user-space path.
    const pair = await TcpfoPair.start(rig, {
      datapath,
      extraYaml: `inbound: ${datapath === 'kernel' ? 'kernel' : 'queue'}\n`,
    });
    try {
      const c = rig.host('client');
      const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'fo', 96);
      const t = transfer(c, mode, BYTES, 41, 120_000);
      await new Promise((res) => setTimeout(res, killAfterMs));
      await killNode(pair, node);
      const r = await t;
      const report = checkTransparency(await cap.stop(), VIP, DEMO_PORT);
      return { r, problems: report.problems, logs: pair.logs() };
    } finally {
      await pair.stop();
    }
  });
}

describe('failover (hub mode, 100 Mbit/s client link, detector 20 ms / 100 ms)', () => {
  const cases: Array<['primary' | 'secondary', 'get' | 'put']> = [
    ['primary', 'get'],
    ['primary', 'put'],
    ['secondary', 'get'],
    ['secondary', 'put'],
  ];
  for (const datapath of ['kernel', 'pcap'] as const)
    for (const [node, mode] of cases) {
      it(
        `kill the ${node} during a 50 MB ${mode === 'get' ? 'download' : 'upload'}: completes byte-exact, no RST (${datapath} data path)`,
        async () => {
          const killAfter = 500 + Math.floor(Math.random() * 2000);
          const { r, problems, logs } = await killDuring(node, mode, killAfter, datapath);
          const ctx = `killed after ${killAfter} ms\n${logs}`;
          expect(r.error, ctx).toBeUndefined();
          if (mode === 'get') {
            expect(r.bytes, ctx).toBe(BYTES);
            expect(r.sha256, ctx).toBe(r.expected);
          } else {
            expect(r.reply, ctx).toBe(`OK ${r.sha256}`);
          }
          expect(problems, ctx).toEqual([]);
          console.log(
            `failover ${node}/${mode} (${datapath}): killed at ${killAfter} ms, stall ${r.maxGapMs} ms, total ${r.ms} ms`,
          );
          if (node === 'primary') expect(logs).toMatch(/took over the service address/);
          else expect(logs).toMatch(/secondary failed: continuing alone/);
          // The survivor gave the download its own new congestion state (bridge/io/cc-reset.ts).
          expect(logs, ctx).toMatch(/reset the congestion state of 1 connection\(s\)/);
        },
        slow(150_000),
      );
    }

  for (const datapath of ['kernel', 'pcap'] as const)
    for (const node of ['primary', 'secondary'] as const) {
      it(
        `kill the ${node} while 60 short connections open and close (handshakes, closes): every one completes (${datapath} data path)`,
        async () => {
          await withRig({ mode: 'hub' }, async (rig) => {
            const pair = await TcpfoPair.start(rig, {
              datapath,
              extraYaml: `inbound: ${datapath === 'kernel' ? 'kernel' : 'queue'}\n`,
            });
            try {
              const c = rig.host('client');
              const many = c.exec(
                [
                  process.execPath,
                  distScript('rig/servers/demo-client.js'),
                  'many',
                  VIP,
                  String(DEMO_PORT),
                  '200000',
                  '60',
                ],
                { timeoutMs: 120_000, allowFail: true },
              );
              await new Promise((res) => setTimeout(res, 30 + Math.floor(Math.random() * 100)));
              await killNode(pair, node);
              const r = await many;
              const out = JSON.parse(r.stdout.trim()) as { ok: number; errors: string[] };
              expect(out.errors, pair.logs()).toEqual([]);
              expect(out.ok).toBe(60);
            } finally {
              await pair.stop();
            }
          });
        },
        slow(150_000),
      );
    }

  it(
    'a takeover while the secondary’s socket is still in the handshake (it missed the client’s ACK): no RST reaches the client, the connection goes on',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await TcpfoPair.start(rig);
        const s = rig.host('secondary');
        try {
          // S takes the client's SYN but none of its later segments: its socket stays in SYN-RECV.
          await s.sh(
            `nft add table ip tfotest && nft add chain ip tfotest pre '{ type filter hook prerouting priority -300; }' && nft add rule ip tfotest pre iifname eth0 ip daddr ${VIP} tcp dport ${DEMO_PORT} tcp flags '& (syn) == 0' drop`,
          );
          const c = rig.host('client');
          const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'synrecv');
          const conn = c.spawn([
            'sh',
            '-c',
            `(printf 'ECHO\\n'; sleep 8; printf 'after\\n'; sleep 2) | socat -T 20 - TCP:${VIP}:${DEMO_PORT}`,
          ]);
          let out = '';
          conn.stdout!.on('data', (d: Buffer) => (out += d.toString()));
          for (let i = 0; i < 50 && !(await s.sh(`ss -Htn state syn-recv src ${VIP}`)).stdout.trim(); i++)
            await new Promise((res) => setTimeout(res, 50));
          expect((await s.sh(`ss -Htn state syn-recv src ${VIP} | wc -l`)).stdout.trim()).toBe('1');
          await new Promise((res) => setTimeout(res, 500)); // the client is established with the pair
          await killNode(pair, 'primary');
          await waitForLog(pair, /took over the service address/);
          await s.sh('nft delete table ip tfotest');
          // S's TCP sends its SYN-ACK again, now straight to the client; the client's ECHO, resent, completes the handshake.
          const [code] = (await once(conn, 'exit')) as [number | null];
          expect(out, pair.logs()).toBe('after\n');
          expect(code).toBe(0);
          expect(checkTransparency(await cap.stop(), VIP, DEMO_PORT).problems, pair.logs()).toEqual([]);
        } finally {
          await s.sh('nft delete table ip tfotest', { allowFail: true });
          await pair.stop();
        }
      });
    },
    slow(60_000),
  );

  it(
    'metrics: counters move during a transfer and the role flips at a takeover',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig);
        try {
          const scrape = async (node: string) =>
            (await rig.host(node).exec(['curl', '-sf', 'http://127.0.0.1:9464/metrics'])).stdout;
          const value = (text: string, metric: string) =>
            Number(new RegExp(`^${metric.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
          const s0 = await scrape('secondary');
          expect(value(s0, 'tcpfo_role{role="secondary"}')).toBe(1);
          expect(value(s0, 'tcpfo_peer_up')).toBe(1);
          // The download waits at 2 MB (the client stops reading) while the node is looked at.
          const at2MB = Gate.in(rig, 2_000_000);
          const t = transfer(rig.host('client'), 'get', 20_000_000, 61, slow(60_000), VIP, DEMO_PORT, [at2MB]);
          await at2MB.reached();
          const p1 = await scrape('primary');
          expect(value(p1, 'tcpfo_merged_bytes_total')).toBeGreaterThan(1_000_000);
          expect(value(p1, 'tcpfo_connections{state="merging"}')).toBeGreaterThanOrEqual(1);
          expect(value(p1, 'tcpfo_role{role="primary"}')).toBe(1);
          expect(p1).toMatch(/^process_resident_memory_bytes /m);
          const stP = await rig
            .host('primary')
            .exec([process.execPath, distScript('cli.js'), 'status', '-c', pair.configFor('primary')]);
          expect(stP.stdout).toMatch(/^role\s+primary$/m);
          expect(stP.stdout).toMatch(/^peer\s+up/m);
          expect(stP.stdout).toMatch(/merging 1/);
          expect(stP.stdout).toMatch(/^realtime\s+ARP answers on, heartbeats on$/m);
          await killNode(pair, 'primary');
          at2MB.open();
          const r = await t;
          expect(r.sha256).toBe(r.expected);
          // `tcpfo status` tells the same story.
          const st = await rig
            .host('secondary')
            .exec([process.execPath, distScript('cli.js'), 'status', '-c', pair.configFor('secondary')]);
          expect(st.stdout).toMatch(/^role\s+active$/m);
          expect(st.stdout).toMatch(/^peer\s+down/m);
          const s1 = await scrape('secondary');
          expect(value(s1, 'tcpfo_role{role="active"}')).toBe(1);
          expect(value(s1, 'tcpfo_role{role="secondary"}')).toBe(0);
          expect(value(s1, 'tcpfo_peer_up')).toBe(0);
          expect(value(s1, 'tcpfo_failovers_total')).toBe(1);
          // The kernel data path (the default here): S's segments reached the primary's merger, S's bridge never
          // saw one, and has no such count (absent, not 0).
          expect(value(s0, 'tcpfo_datapath_info{mode="kernel"}')).toBe(1);
          expect(value(p1, 'tcpfo_diverted_bytes_total')).toBeGreaterThan(1_000_000);
          expect(value(s1, 'tcpfo_diverted_bytes_total')).toBeNaN();
          expect(value(s1, 'tcpfo_pcap_frames_total')).toBeNaN();
          // Bound to the configured address only: not reachable on the node's LAN address.
          const lan = await rig
            .host('client')
            .exec(['curl', '-sf', '--max-time', '1', `http://${rig.host('secondary').ip}:9464/metrics`], {
              allowFail: true,
            });
          expect(lan.code).not.toBe(0);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(90_000),
  );

  it(
    'the secondary dies and comes back: a connection from the alone time finishes; new ones are replicated and survive a primary failure',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig);
        try {
          const c = rig.host('client');
          await killNode(pair, 'secondary');
          await waitForLog(pair, /secondary failed: continuing alone/);
          // A download that starts while the primary is alone and runs across the rejoin.
          const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'rejoin', 96);
          const during = transfer(c, 'get', 30_000_000, 81, 60_000);
          await new Promise((res) => setTimeout(res, 500));
          await restartNode(pair, 'secondary');
          await waitForLog(pair, /secondary rejoined/);
          const r1 = await during;
          expect(r1.sha256, pair.logs()).toBe(r1.expected);
          // A new connection is replicated again: it survives the primary's death.
          const after = transfer(c, 'get', 30_000_000, 82, 60_000);
          await new Promise((res) => setTimeout(res, 800));
          await killNode(pair, 'primary');
          const r2 = await after;
          expect(r2.error, pair.logs()).toBeUndefined();
          expect(r2.sha256).toBe(r2.expected);
          expect(checkTransparency(await cap.stop(), VIP, DEMO_PORT).problems).toEqual([]);
          expect(pair.logs()).toMatch(/took over the service address/);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );

  for (const node of ['primary', 'secondary'] as const) {
    it(
      `only the ${node}'s bridge is SIGKILLed mid-download (node, server and link alive): the download completes; the restarted bridge cleans up and rejoins${node === 'primary' ? ' (roles swapped)' : ''}`,
      async () => {
        await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
          const pair = await TcpfoPair.start(rig, { extraYaml: SWAP });
          try {
            const c = rig.host('client');
            const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'bridgekill', 96);
            const t = transfer(c, 'get', 30_000_000, 93, 60_000);
            await new Promise((res) => setTimeout(res, 300 + Math.floor(Math.random() * 1500)));
            const d = node === 'primary' ? pair.primary! : pair.secondary!;
            d.proc.kill('SIGKILL');
            await waitForLog(
              pair,
              node === 'primary' ? /took over the service address/ : /secondary failed: continuing alone/,
            );
            const r = await t;
            expect(r.error, pair.logs()).toBeUndefined();
            expect(r.sha256).toBe(r.expected);
            expect(checkTransparency(await cap.stop(), VIP, DEMO_PORT).problems).toEqual([]);
            const h = rig.host(node);
            if (node === 'secondary') {
              pair.secondary = await pair.startDaemon(h, 'secondary');
              await waitForLog(pair, /secondary rejoined/);
              expect(pair.logs()).toMatch(/undid what a previous secondary left behind/);
            } else {
              // The secondary serves now: the restarted primary bridge joins it as its secondary.
              pair.primary = await pair.startDaemon(h, 'primary');
              await waitForLog(pair, /now the primary \(roles swapped\)/);
              expect(pair.logs()).toMatch(/undid what a previous primary left behind/);
            }
            // The killed bridge's node kept its server's socket of the download:
            // an orphan that retransmits (no ACKs reached it since), or, on the
            // secondary's kernel path, which went on feeding it, a connection
            // that may have ended with the client's. The new bridge aborted what
            // was left behind its rules: none left, none leaked.
            if (node === 'primary')
              expect(pair.logs()).toMatch(
                /aborted \d+ connection\(s\) on the service address: left by a previous instance/,
              );
            expect(
              (await h.exec(['ss', '-Htn', 'state', 'connected', 'exclude', 'time-wait', 'src', VIP])).stdout.trim(),
            ).toBe('');
            // The pair still serves.
            const after = await transfer(c, 'get', 5_000_000, 94);
            expect(after.sha256).toBe(after.expected);
          } finally {
            await pair.stop();
          }
        });
      },
      slow(120_000),
    );
  }

  it(
    'the primary’s bridge is SIGKILLed and restarted at once, faster than the detector timeout (1 s): the secondary still takes over and the download completes; the restarted bridge joins it (roles swapped)',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { extraYaml: SWAP, heartbeatTimeoutMs: 1000 });
        try {
          const c = rig.host('client');
          const t = transfer(c, 'get', 30_000_000, 95, 60_000);
          t.catch(() => undefined); // awaited below; a failure before then must not go unhandled
          await new Promise((res) => setTimeout(res, 800));
          const killedAt = Date.now();
          pair.primary!.proc.kill('SIGKILL');
          await once(pair.primary!.proc, 'exit');
          // Restarted at once: its heartbeats would resume before the secondary's
          // 1 s timeout, and the download (unknown to the new merger) would hang.
          pair.primary = await pair.startDaemon(rig.host('primary'), 'primary');
          await waitForLog(pair, /now the primary \(roles swapped\)/);
          const logs = pair.logs();
          expect(logs).toMatch(
            /a previous primary left state or connections here: silent while the secondary may still be deciding/,
          );
          expect(logs).toMatch(/took over the service address/);
          const r = await t;
          expect(r.error, pair.logs()).toBeUndefined();
          expect(r.sha256).toBe(r.expected);
          console.log(
            `primary bridge restarted at once: download ${r.ms} ms, longest gap ${r.maxGapMs} ms, restart-to-swap ${Date.now() - killedAt} ms`,
          );
          const after = await transfer(c, 'get', 5_000_000, 96);
          expect(after.sha256).toBe(after.expected);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );

  for (const lan of ['hub', 'mirror'] as const)
    for (const six of [false, true]) {
      it(
        `with failover.rejoin: swap-roles, a restarted primary joins the active secondary as its secondary: old connections finish, new ones survive the next failure${lan === 'mirror' ? ' (on a switch with port mirroring)' : ''}${six ? ' (over IPv6, a dual-stack pair)' : ''}`,
        async () => {
          await withRig({ mode: lan, links: { client: { rateMbit: 100 } } }, async (rig) => {
            const pair = await TcpfoPair.start(rig, { extraYaml: SWAP, ipv6: six });
            const vip = six ? VIP6 : VIP;
            try {
              const c = rig.host('client');
              const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'swap', 96);
              // A long download across all of it: P dies mid-stream, S serves it alone, P comes
              // back. The client stops reading at 40 MB until the pair has swapped, however long
              // that takes here.
              const flowing = Gate.in(rig, 2_000_000);
              const swapped = Gate.in(rig, 40_000_000);
              const old = transfer(c, 'get', 60_000_000, 95, slow(90_000), vip, DEMO_PORT, [flowing, swapped]);
              await flowing.reached();
              flowing.open();
              await new Promise((res) => setTimeout(res, 300));
              await killNode(pair, 'primary');
              await waitForLog(pair, /took over the service address/);
              await restartNode(pair, 'primary');
              await waitForLog(pair, /joining as its secondary \(roles swapped\)/);
              await waitForLog(pair, /now the primary \(roles swapped\): merging new connections/);
              // The connection the survivor served alone (of either family) passes the new primary unchanged.
              expect(pair.logs()).toMatch(/"adopted":1,/);
              swapped.open();
              // The node that took the primary role (its capabilities limited long ago) translates in the kernel too.
              expect(pair.logs().match(/"inbound":"kernel".*primary bridge up: merging/g), pair.logs()).toHaveLength(2);
              // A new connection is merged by the swapped pair: it survives the death of the new primary.
              const midway = Gate.in(rig, 5_000_000);
              const fresh = transfer(c, 'get', 30_000_000, 96, slow(90_000), vip, DEMO_PORT, [midway]);
              const r1 = await old;
              expect(r1.error, pair.logs()).toBeUndefined();
              expect(r1.sha256).toBe(r1.expected);
              await midway.reached();
              midway.open();
              await killNode(pair, 'secondary'); // the former secondary, primary since the swap
              const r2 = await fresh;
              expect(r2.error, pair.logs()).toBeUndefined();
              expect(r2.sha256).toBe(r2.expected);
              expect(checkTransparency(await cap.stop(), vip, DEMO_PORT).problems).toEqual([]);
              // The former primary, secondary since the swap, took over.
              // Its housekeeping after the handover (promiscuous mode, rules) can wait on a busy machine: a generous bound.
              for (
                let i = 0;
                i < 400 && !/took over the service address/.test(readFileSync(pair.primary!.log, 'utf8'));
                i++
              )
                await new Promise((res) => setTimeout(res, 50));
              expect(readFileSync(pair.primary!.log, 'utf8'), pair.logs()).toMatch(/took over the service address/);
            } finally {
              await pair.stop();
            }
          });
        },
        slow(150_000),
      );
    }

  it(
    'a node killed while its secondary daemon played the primary role (roles swapped) restarts as `tcpfo secondary` without that role’s rules, and serves at its next takeover',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { extraYaml: SWAP });
        const c = rig.host('client');
        const s = rig.host('secondary');
        const waitCount = (re: RegExp, n: number) => waitForLogCount(pair, re, n, 15_000);
        const TOOK = /took over the service address/g;
        const SWAPPED = /now the primary \(roles swapped\)/g;
        /** Rule sets of the primary role (tag tp) on the secondary node, in either backend. */
        const primaryRulesOnS = async () =>
          (
            await s.sh(
              '{ nft list tables 2>/dev/null; iptables-nft-save 2>/dev/null; iptables-legacy-save 2>/dev/null; } | grep -ci "tcpfo_tp" || true',
            )
          ).stdout.trim();
        try {
          // The secondary takes over, then becomes the merging primary (the other node rejoins).
          await killNode(pair, 'primary');
          await waitCount(TOOK, 1);
          await restartNode(pair, 'primary');
          await waitCount(SWAPPED, 1);
          expect(await primaryRulesOnS()).not.toBe('0');
          // Killed in that role: its daemon (a secondary daemon) leaves the primary role's rules.
          await killNode(pair, 'secondary');
          await waitCount(TOOK, 2);
          await restartNode(pair, 'secondary');
          await waitCount(SWAPPED, 2);
          expect(await primaryRulesOnS(), pair.logs()).toBe('0');
          expect(pair.logs()).toMatch(/removed the rules a previous primary bridge left on this node/);
          // It takes over again: a download across the takeover and a new connection after it.
          const d = transfer(c, 'get', 20_000_000, 97, 60_000);
          await new Promise((res) => setTimeout(res, 500));
          await killNode(pair, 'primary');
          await waitCount(TOOK, 3);
          const r = await d;
          expect(r.error, pair.logs()).toBeUndefined();
          expect(r.sha256).toBe(r.expected);
          const after = await transfer(c, 'get', 2_000_000, 98, 20_000);
          expect(after.error, pair.logs()).toBeUndefined();
          expect(after.sha256).toBe(after.expected);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(150_000),
  );

  it(
    'both nodes die, the one whose primary daemon played the secondary (roles swapped) first: restarted as `tcpfo primary`, it keeps its service address and serves',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { extraYaml: SWAP });
        const p = rig.host('primary');
        try {
          await killNode(pair, 'primary');
          await waitForLog(pair, /took over the service address/);
          await restartNode(pair, 'primary');
          await waitForLog(pair, /now the primary \(roles swapped\)/);
          // The node 'primary' runs a secondary bridge in its primary daemon (its journal: the VIP on lo, promiscuous mode).
          await killNode(pair, 'primary');
          await killNode(pair, 'secondary');
          await restartNode(pair, 'primary');
          expect((await p.exec(['ip', '-o', 'addr', 'show', 'dev', 'lo'])).stdout, pair.logs()).toContain(`${VIP}/32`);
          expect((await p.sh('ip -o link show eth0 | grep -c PROMISC || true')).stdout.trim()).toBe('0');
          // Alone (its secondary is dead), it serves.
          const r = await transfer(rig.host('client'), 'get', 5_000_000, 99, 30_000);
          expect(r.error, pair.logs()).toBeUndefined();
          expect(r.sha256).toBe(r.expected);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );

  it(
    'with failover.rejoin: refuse, a restarted primary does not claim the service address the secondary took over',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { extraYaml: 'failover:\n  rejoin: refuse\n' });
        try {
          await killNode(pair, 'primary');
          await waitForLog(pair, /took over the service address/);
          await rig.switchExec(['ip', 'link', 'set', rig.portOf('primary'), 'up']);
          const p = rig.host('primary');
          const r = await p.exec([process.execPath, distScript('cli.js'), 'primary', '-c', pair.configFor('primary')], {
            allowFail: true,
            timeoutMs: 20_000,
          });
          expect(r.code).toBe(1);
          expect(r.stdout + r.stderr).toContain(
            `is answered by ${rig.host('secondary').mac.toLowerCase()} (the secondary`,
          );
          // Nothing of it stayed: no rules, the VIP not on the node.
          const rules = await p.sh(
            'iptables-nft-save 2>/dev/null | grep -c TCPFO || true; ip -o addr show | grep -c 192.0.2.100 || true',
          );
          expect(rules.stdout.trim().split('\n')).toEqual(['0', '0']);
          // The service still lives on the secondary.
          const c = rig.host('client');
          const t = await transfer(c, 'get', 2_000_000, 91);
          expect(t.sha256).toBe(t.expected);
          expect((await c.exec(['ip', 'neigh', 'show', VIP])).stdout).toContain(
            rig.host('secondary').mac.toLowerCase(),
          );
        } finally {
          await pair.stop();
        }
      });
    },
    slow(60_000),
  );

  it(
    'a partition of only the heartbeat path does not make both nodes serve the VIP',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await TcpfoPair.start(rig);
        try {
          const s = rig.host('secondary');
          // Drop the heartbeats (UDP 7946) both ways on the secondary; everything else flows.
          await s.exec(['iptables', '-I', 'INPUT', '-p', 'udp', '--dport', '7946', '-j', 'DROP']);
          await s.exec(['iptables', '-I', 'OUTPUT', '-p', 'udp', '--dport', '7946', '-j', 'DROP']);
          await new Promise((res) => setTimeout(res, 1500));
          const logs = pair.logs();
          expect(logs).toMatch(/secondary is down/);
          expect(logs).toMatch(/still answers ARP: not taking over/);
          expect(logs).not.toMatch(/took over the service address/);
          // Only the primary answers ARP for the VIP; the service still works through it.
          const c = rig.host('client');
          await c.exec(['ip', 'neigh', 'flush', 'all']);
          const r = await transfer(c, 'get', 5_000_000, 51);
          expect(r.sha256).toBe(r.expected);
          expect((await c.exec(['ip', 'neigh', 'show', VIP])).stdout).toContain(rig.host('primary').mac);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(60_000),
  );
});
