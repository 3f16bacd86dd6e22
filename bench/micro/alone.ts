/**
 * A primary left alone (its secondary died): how close to plain TCP its
 * request/answer workloads run. The pair on a hub, the client's link at
 * 100 Mbit/s, Linux defaults; the secondary node is killed (link cut, bridge
 * and servers SIGKILLed), then, in rounds, plain (the client straight to the
 * primary's own address) against tcpfo (the service address, served alone):
 *
 *   - 100-byte echo round trips over one connection (median, p99), on a
 *     connection opened after the failure;
 *   - memcached set + get over one connection;
 *   - redis-benchmark GET, 4 connections (Debian's redis on both nodes);
 *   - the same echo on a connection the pair merged before the failure.
 *
 *   npm run build && node dist/bench/micro/alone.js [ROUNDS=3] [--merge auto|kernel|release|queue]
 *
 * --merge queue: the bridge releases P's segments itself (the path before
 * the kernel release), for comparison. Writes bench/results/alone-<merge>.txt.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { distScript } from '../../rig/dist.js';
import { killNode, waitForLog } from '../../rig/failover.js';
import { scrapeMetrics } from '../../rig/metrics.js';
import { DEMO_PORT, startDemoServer, TcpfoPair, VIP } from '../../rig/pair.js';
import { runAsProgram } from '../../rig/main.js';
import { withRig, type RigHost } from '../../rig/rig.js';
import { cliArgs, pct } from './hops.js';
import { MC_PLAIN_PORT, MC_PORT, REDIS_PLAIN_PORT, REDIS_PORT, redisGet, startKvPair } from '../../rig/kv.js';

const PLAIN_PORT = 7100;
const ECHOES = 2000;

async function rr(c: RigHost, argv: string[]): Promise<Record<string, unknown>> {
  const r = await c.exec([process.execPath, distScript('rig/servers/rr-client.js'), ...argv], { timeoutMs: 120_000 });
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

interface Side {
  echoMedian: number;
  echoP99: number;
  memcachedOps: number;
  redisRps: number;
}

export async function main(argv: string[]): Promise<number> {
  const { args, flag } = cliArgs(argv, ['--merge']);
  const MERGE = flag('--merge', 'auto') as 'auto' | 'kernel' | 'release' | 'queue';
  const ROUNDS = Number(args[0] ?? 3);
  const lines: string[] = [];
  const say = (l: string) => {
    lines.push(l);
    console.log(l);
  };
  await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
    const pair = await TcpfoPair.start(rig, {
      ports: [DEMO_PORT, MC_PORT, REDIS_PORT],
      extraYaml: `merge: ${MERGE}\n`,
    });
    try {
      const [c, p] = [rig.host('client'), rig.host('primary')];
      pair.servers.push(await startDemoServer(p, p.ip, PLAIN_PORT));
      await startKvPair(rig, VIP, pair.servers);
      // A connection the pair merges, kept open across the failure: echoes on it afterwards.
      const held = c.exec(
        [
          process.execPath,
          distScript('rig/servers/rr-client.js'),
          'echo-after',
          VIP,
          String(DEMO_PORT),
          '100',
          String(ECHOES),
          '4000',
        ],
        { timeoutMs: 120_000 },
      );
      await new Promise((r) => setTimeout(r, 1000));
      await killNode(pair, 'secondary');
      await waitForLog(pair, /secondary failed: continuing alone/);
      const m0 = await scrapeMetrics(rig, 'primary');
      const rounds: Array<{ plain: Side; tcpfo: Side }> = [];
      for (let i = 0; i < ROUNDS; i++) {
        const side = async (addr: string, demo: number, mc: number, rd: number): Promise<Side> => {
          const e = (await rr(c, ['echo', addr, String(demo), '100', String(ECHOES)])).rttUs as number[];
          const mcOps = (await rr(c, ['memcached', addr, String(mc), '3'])).ops as number;
          return {
            echoMedian: pct(e, 50),
            echoP99: pct(e, 99),
            memcachedOps: mcOps,
            redisRps: await redisGet(c, addr, rd, 4, 1, 40_000),
          };
        };
        const plain = await side(p.ip, PLAIN_PORT, MC_PLAIN_PORT, REDIS_PLAIN_PORT);
        const tcpfo = await side(VIP, DEMO_PORT, MC_PORT, REDIS_PORT);
        rounds.push({ plain, tcpfo });
        process.stderr.write(`round ${i + 1}: ${JSON.stringify({ plain, tcpfo })}\n`);
      }
      const merged = JSON.parse((await held).stdout.trim()) as { rttUs: number[] };
      const m1 = await scrapeMetrics(rig, 'primary');
      const med = (f: (s: Side) => number, k: 'plain' | 'tcpfo') =>
        pct(
          rounds.map((r) => f(r[k])),
          50,
        );
      const row = (what: string, f: (s: Side) => number, unit: string, ratio: boolean) => {
        const a = med(f, 'plain');
        const b = med(f, 'tcpfo');
        say(`| ${what} | ${a} ${unit} | ${b} ${unit} | ${ratio ? (b / a).toFixed(2) : `+${b - a} ${unit}`} |`);
      };
      say(
        `A primary alone (its secondary killed), merge: ${MERGE}; hub, client link 100 Mbit/s, Linux defaults; median of ${ROUNDS} rounds, plain then tcpfo in each.`,
      );
      say('');
      say('| workload | plain | tcpfo, primary alone | tcpfo − plain, or tcpfo / plain |');
      say('|---|---|---|---|');
      row('100 B echo round trip, median', (s) => s.echoMedian, 'µs', false);
      row('100 B echo round trip, p99', (s) => s.echoP99, 'µs', false);
      row('memcached set + get, ops in 3 s', (s) => s.memcachedOps, '', true);
      row('redis-benchmark GET, 4 connections, requests/s', (s) => Math.round(s.redisRps), '', true);
      say(
        `| 100 B echo on a connection merged before the failure, median / p99 | | ${pct(merged.rttUs, 50)} / ${pct(merged.rttUs, 99)} µs | |`,
      );
      say('');
      const q = m1('tcpfo_nfqueue_packets_total{queue="out"}') - m0('tcpfo_nfqueue_packets_total{queue="out"}');
      const k =
        m1('tcpfo_kernel_outbound_total{action="released"}') - m0('tcpfo_kernel_outbound_total{action="released"}');
      say(
        `P's segments while alone: ${Number.isNaN(k) ? 0 : k} released in the kernel, ${q} through the output queue.`,
      );
    } finally {
      await pair.stop();
    }
  });
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(
    `bench/results/alone-${MERGE}.txt`,
    `Command: node dist/bench/micro/alone.js ${ROUNDS}${MERGE !== 'auto' ? ` --merge ${MERGE}` : ''}\n\n${lines.join('\n')}\n`,
  );
  return 0;
}

runAsProgram(import.meta.url, main);
