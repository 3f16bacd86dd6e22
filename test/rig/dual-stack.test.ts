/**
 * A dual-stack service end to end (docs/ipv6.md): the pair serves one IPv4
 * and one IPv6 service address on the same ports, the demo servers listen on
 * [::], and the client's own capture of each family passes the transparency
 * oracle. The IPv6 connections are merged by the queue (the kernel merge is
 * IPv4's), the secondary's kernel path carries both. The role swap over IPv6
 * is in failover.test.ts, beside IPv4's.
 */
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { describe, expect, it } from 'vitest';
import { Capture } from '../../rig/capture.js';
import { killNode, waitForLog } from '../../rig/failover.js';
import { nstatCounters, scrapeMetrics } from '../../rig/metrics.js';
import { checkTransparency } from '../../rig/oracle.js';
import { DEMO_PORT, finalCounters, TcpfoPair, transfer, VIP, VIP6, type TransferResult } from '../../rig/pair.js';
import { withRig, type RigHost } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

const BYTES = 30_000_000;

function expectComplete(r: TransferResult, mode: 'get' | 'put', ctx: string): void {
  expect(r.error, ctx).toBeUndefined();
  if (mode === 'get') {
    expect(r.bytes, ctx).toBe(BYTES);
    expect(r.sha256, ctx).toBe(r.expected);
  } else expect(r.reply, ctx).toBe(`OK ${r.sha256}`);
}

/** Segments `host`'s TCP dropped as old by their timestamps (PAWS), on established connections. */
async function pawsRejected(host: RigHost): Promise<number> {
  const n = (await nstatCounters(host, ['TcpExtPAWSEstab'])).TcpExtPAWSEstab;
  if (n === undefined) throw new Error(`${host.name}: the kernel counts no TcpExtPAWSEstab`);
  return n;
}

/**
 * ACKs `host`'s TCP refused in SYN-RECV for an echo that is none of its SYN-ACKs' TSvals. Linux checks and
 * counts this from 6.15 on (TcpExtTSEcrRejected); an older kernel takes any echo: 0.
 */
async function tsecrRejected(host: RigHost): Promise<number> {
  const n = (await nstatCounters(host, ['TcpExtTSEcrRejected'])).TcpExtTSEcrRejected;
  if (n !== undefined) return n;
  const [major, minor] = release().split('.').map(Number);
  if (major! > 6 || (major === 6 && minor! >= 15))
    throw new Error(`${host.name}: Linux ${release()} counts no TcpExtTSEcrRejected`);
  return 0;
}

describe('a dual-stack service (hub, 100 Mbit/s client link)', () => {
  it(
    'serves both families at once: a download over IPv6 and an upload over IPv4, byte-exact, each family’s capture clean',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { ipv6: true });
        try {
          const c = rig.host('client');
          const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'ds', 96);
          const [six, four] = await Promise.all([
            transfer(c, 'get', BYTES, 61, 120_000, VIP6),
            transfer(c, 'put', BYTES, 62, 120_000, VIP),
          ]);
          const frames = await cap.stop();
          const logs = pair.logs();
          console.log(
            `dual stack: IPv6 download ${six.ms} ms (longest gap ${six.maxGapMs} ms), IPv4 upload ${four.ms} ms (longest gap ${four.maxGapMs} ms)`,
          );
          expectComplete(six, 'get', logs);
          expectComplete(four, 'put', logs);
          for (const vip of [VIP6, VIP]) {
            const report = checkTransparency(frames, vip, DEMO_PORT);
            expect(report.problems, `${vip}\n${logs}`).toEqual([]);
            expect(
              report.connections.map((x) => x.clientPort),
              vip,
            ).toEqual([vip === VIP6 ? six.localPort : four.localPort]);
          }
          expect(logs).not.toMatch(/"level":50/);
          await pair.stop();
          // Replicated, not served by the primary alone: the secondary's copies of the IPv6 download
          // reached the merger (the kernel merges only IPv4), which released the bytes both produced.
          const p = finalCounters(pair.primary!.log) as {
            merger: { releasedBytes: number; divertedSegments: number; divergences: number; handshakes: number };
          };
          expect(p.merger.releasedBytes, JSON.stringify(p.merger)).toBeGreaterThanOrEqual(BYTES);
          expect(p.merger.divertedSegments, JSON.stringify(p.merger)).toBeGreaterThan(1000);
          expect(p.merger.handshakes).toBeGreaterThanOrEqual(1);
          expect(p.merger.divergences).toBe(0);
          // Before the stop (which stops the secondary first): neither connection went on without it.
          expect(logs).not.toMatch(/primary-only|continuing alone/);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(150_000),
  );

  it(
    'the secondary’s copy of each client’s first SYN lost (a full accept queue drops a SYN): each handshake completes at the SYN sent again, merged by the bridge from both servers’ answers to it (the kernel hands over the IPv4 one); each server takes the client’s echo of the merged SYN-ACK; both downloads byte-exact, the client drops none of their segments as old (PAWS)',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { ipv6: true });
        try {
          const c = rig.host('client');
          const s = rig.host('secondary');
          // A first connection over IPv4 turns the kernel's handshake merge on.
          const first = await transfer(c, 'get', BYTES / 30, 65, 60_000, VIP);
          expect(first.sha256, `${JSON.stringify(first)}\n${pair.logs()}`).toBe(first.expected);
          await waitForLog(pair, /handshakes are merged in the kernel/, 20_000);
          const m0 = await scrapeMetrics(rig, 'primary');
          const paws0 = await pawsRejected(c);
          const servers = [rig.host('primary'), s];
          const tsecr0 = await Promise.all(servers.map(tsecrRejected));
          const drop = `INPUT -p tcp --syn --dport ${DEMO_PORT} -j DROP`;
          await s.sh(`iptables -w -I ${drop} && ip6tables -w -I ${drop}`);
          const t = Promise.all([
            transfer(c, 'get', BYTES / 3, 66, 120_000, VIP),
            transfer(c, 'get', BYTES / 3, 67, 120_000, VIP6),
          ]);
          // P answers each first SYN; S drops it and answers the one the client sends again a second later.
          await new Promise((res) => setTimeout(res, 400));
          await s.sh(`iptables -w -D ${drop}; ip6tables -w -D ${drop}`);
          const [four, six] = await t;
          const m = await scrapeMetrics(rig, 'primary');
          const d = (series: string) => (m(series) || 0) - (m0(series) || 0);
          const logs = pair.logs();
          const ctx = `${JSON.stringify({ four, six })}\n${m.lines('tcpfo_kernel_handshakes_total').join('\n')}\n${logs}`;
          const paws = (await pawsRejected(c)) - paws0;
          console.log(
            `first SYN lost at S: IPv4 ${four.ms} ms (longest gap ${four.maxGapMs} ms), IPv6 ${six.ms} ms (longest gap ${six.maxGapMs} ms); the client's PAWS drops ${paws}`,
          );
          for (const r of [four, six]) {
            expect(r.error, ctx).toBeUndefined();
            expect(r.bytes, ctx).toBe(BYTES / 3);
            expect(r.sha256, ctx).toBe(r.expected);
          }
          // The kernel held P's answer to the first SYN; S's to the second came a second later: it left the
          // IPv4 handshake to the bridge, which paired the answers both servers sent to the second.
          expect(d('tcpfo_kernel_handshakes_total{action="merged"}'), ctx).toBe(0);
          expect(d('tcpfo_kernel_handshakes_total{action="to-bridge"}'), ctx).toBe(1);
          for (const r of [four, six]) expect(r.connectMs, ctx).toBeLessThan(3000);
          // No segment reached the client older than one before it (a wrong timestamp offset, or one
          // built on S's clock ahead of P's released after it: PAWS).
          expect(paws, ctx).toBe(0);
          // Each server took the client's ACK of the merged SYN-ACK: its echo was a TSval that server sent.
          expect(
            (await Promise.all(servers.map(tsecrRejected))).map((n, i) => n - tsecr0[i]!),
            ctx,
          ).toEqual([0, 0]);
          expect(m('tcpfo_divergences_total'), ctx).toBe(0);
          expect(logs).not.toMatch(/primary-only|continuing alone/);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(150_000),
  );

  const cases: Array<['primary' | 'secondary', 'get' | 'put']> = [
    ['primary', 'get'],
    ['primary', 'put'],
    ['secondary', 'get'],
    ['secondary', 'put'],
  ];
  for (const datapath of ['kernel', 'pcap'] as const)
    for (const [node, mode] of cases)
      it(
        `kill the ${node} during a 30 MB ${mode === 'get' ? 'download' : 'upload'} over IPv6: completes byte-exact, no RST (${datapath} data path)`,
        async () => {
          await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
            // The kernel paths on both nodes, or the paper's whole user-space path.
            const pair = await TcpfoPair.start(rig, {
              ipv6: true,
              datapath,
              extraYaml: `inbound: ${datapath === 'kernel' ? 'kernel' : 'queue'}\n`,
            });
            try {
              const c = rig.host('client');
              const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'ds6', 96);
              const killAfter = 500 + Math.floor(Math.random() * 1000);
              const t = transfer(c, mode, BYTES, 63, 120_000, VIP6);
              await new Promise((res) => setTimeout(res, killAfter));
              // The paper's path carries the IPv6 connection: the secondary's bridge diverts its segments.
              if (datapath === 'pcap')
                expect((await scrapeMetrics(rig, 'secondary'))('tcpfo_diverted_segments_total')).toBeGreaterThan(100);
              await killNode(pair, node);
              const r = await t;
              const report = checkTransparency(await cap.stop(), VIP6, DEMO_PORT);
              const logs = pair.logs();
              const ctx = `killed after ${killAfter} ms\n${logs}`;
              expectComplete(r, mode, ctx);
              expect(report.problems, ctx).toEqual([]);
              expect(report.connections, ctx).toHaveLength(1);
              if (node === 'primary') expect(logs).toMatch(/took over the service address/);
              else expect(logs).toMatch(/secondary failed: continuing alone/);
              console.log(
                `IPv6 failover ${node}/${mode} (${datapath}): killed at ${killAfter} ms, stall ${r.maxGapMs} ms, total ${r.ms} ms`,
              );
            } finally {
              await pair.stop();
            }
          });
        },
        slow(150_000),
      );

  for (const datapath of ['kernel', 'pcap'] as const)
    it(
      `with the nodes’ link-local addresses in the configuration: the secondary’s answers are routed (kernel) or diverted (pcap) to the primary’s, and a download over IPv6 survives the death of the primary (${datapath} data path)`,
      async () => {
        await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
          const pair = await TcpfoPair.start(rig, { ipv6: 'link-local', datapath });
          try {
            expect(readFileSync(pair.configFor('primary'), 'utf8')).toMatch(/address: \[192\.0\.2\.1, "fe80::/);
            const c = rig.host('client');
            const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'll6', 96);
            const t = transfer(c, 'get', BYTES, 64, 120_000, VIP6);
            await new Promise((res) => setTimeout(res, 800));
            await killNode(pair, 'primary');
            const r = await t;
            const logs = pair.logs();
            expectComplete(r, 'get', logs);
            expect(checkTransparency(await cap.stop(), VIP6, DEMO_PORT).problems, logs).toEqual([]);
            expect(logs).toMatch(/took over the service address/);
          } finally {
            await pair.stop();
          }
        });
      },
      slow(150_000),
    );
});
