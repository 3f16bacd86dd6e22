/**
 * Request/answer traffic on a jumbo-frame LAN (MTU 9000), where an answer of
 * more than 2048 bytes is one segment larger than the kernel merge takes
 * (native/bpf/merge.h MERGE_MAX_PAYLOAD): its connection goes to the bridge,
 * and comes back (bridge/primary/merge/kernel.ts, LARGE_RETURN_AFTER). Two
 * workloads over one connection each, plain TCP (the primary's own address)
 * against the pair, both nodes up, `merge: kernel`, a hub:
 *   mixed   rounds of nine 100-byte echoes and one of LARGE bytes
 *   large   echoes of LARGE bytes only
 * Prints the median round trip of each, µs, and the connection's handovers
 * for large segments and returns to the kernel.
 *
 *   npm run build && node dist/bench/micro/jumbo.js [ROUNDS=100] [--large 4000]
 */
import { distScript } from '../../rig/dist.js';
import { median, runAsProgram } from '../../rig/main.js';
import { scrapeMetrics } from '../../rig/metrics.js';
import { DEMO_PORT, startDemoServer, TcpfoPair, VIP } from '../../rig/pair.js';
import { withRig, type RigHost } from '../../rig/rig.js';
import { cliArgs } from './hops.js';

const PLAIN_PORT = 7100;

async function client(c: RigHost, args: string[]): Promise<Record<string, number[]>> {
  const r = await c.exec([process.execPath, distScript('rig/servers/rr-client.js'), ...args], { timeoutMs: 300_000 });
  const out = JSON.parse(r.stdout.trim()) as Record<string, number[]> & { error?: string };
  if (out.error) throw new Error(`rr-client ${args.join(' ')}: ${out.error}`);
  return out;
}

export async function main(argv: string[]): Promise<number> {
  const { args, flag } = cliArgs(argv, ['--large']);
  const rounds = Number(args[0] ?? 100);
  const large = Number(flag('--large', '4000'));
  if (!(rounds >= 1) || !(large > 2048)) throw new Error('usage: jumbo.js [ROUNDS ≥ 1] [--large BYTES > 2048]');
  await withRig({ mode: 'hub', mtu: 9000 }, async (rig) => {
    const pair = await TcpfoPair.start(rig, { extraYaml: 'merge: kernel\n' });
    try {
      const c = rig.host('client');
      const p = rig.host('primary');
      await startDemoServer(p, p.ip, PLAIN_PORT);
      const rows: string[] = [];
      for (const [name, host, port] of [
        ['plain', p.ip, PLAIN_PORT],
        ['tcpfo', VIP, DEMO_PORT],
      ] as const) {
        const m0 = await scrapeMetrics(rig, 'primary');
        const mix = await client(c, ['mixed', host, String(port), '100', String(large), String(rounds)]);
        const m1 = await scrapeMetrics(rig, 'primary');
        const big = await client(c, ['echo', host, String(port), String(large), String(rounds * 10)]);
        const m2 = await scrapeMetrics(rig, 'primary');
        const z = (v: number) => (Number.isNaN(v) ? 0 : v);
        const d = (a: typeof m0, b: typeof m0, s: string) => z(b(s)) - z(a(s));
        const moves = (a: typeof m0, b: typeof m0) =>
          name === 'plain'
            ? '-'
            : `${d(a, b, 'tcpfo_kernel_handovers_total{reason="large"}')} / ${d(a, b, 'tcpfo_kernel_returns_total')}`;
        rows.push(
          `| ${name} | ${median(mix.smallUs!)} | ${median(mix.largeUs!)} | ${moves(m0, m1)} | ${median(big.rttUs!)} | ${moves(m1, m2)} |`,
        );
      }
      console.log(`MTU 9000, hub, both nodes up, merge: kernel; ${rounds} mixed rounds, ${rounds * 10} large echoes`);
      console.log(`median round trip, µs; handovers for a large segment / returns to the kernel\n`);
      console.log(`| | mixed: 100 B | mixed: ${large} B | moves | ${large} B only | moves |`);
      console.log('|---|---|---|---|---|---|');
      for (const r of rows) console.log(r);
    } finally {
      await pair.stop();
    }
  });
  return 0;
}

runAsProgram(import.meta.url, main);
