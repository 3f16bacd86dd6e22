/**
 * A client that stops reading in the middle of a download: how long the rest
 * takes once it reads again, plain TCP (the primary's own address) against
 * the pair with both nodes up. 30 MB gets over the demo protocol, the client
 * link shaped to 100 Mbit/s, Linux defaults on every host (this machine's
 * congestion control, whatever it is); the client stops reading at 5 MB for
 * --pause seconds (its window closes), then reads on. The rest, 25 MB, needs
 * about 2.1 s at the link's rate.
 *
 * While the window is nearly closed, each server sends into it only at its
 * window-probe timer, and the copy that came first waits at the merge for the
 * other's and may time out (docs/design.md, "A fresh congestion state for the
 * survivor"): with BBR, the connection could then crawl after the client read
 * again, until each bridge gave such a connection a new congestion start once
 * its window reopened (bridge/node/reopen-watch.ts). This bench measures
 * that, and prints how many each node reset.
 *
 *   npm run build && node dist/bench/micro/slow-reader.js [ROUNDS=5] [--pause 3] [--lan hub|mirror|switch]
 */
import { startDemoServer, Gate, TcpfoPair, transfer, VIP, DEMO_PORT } from '../../rig/pair.js';
import { median, runAsProgram } from '../../rig/main.js';
import { withRig, type LanMode, type Rig } from '../../rig/rig.js';
import { scrapeMetrics } from '../../rig/metrics.js';
import { cliArgs } from './hops.js';

const PLAIN_PORT = 7100;
const BYTES = 30_000_000;
const GATE_AT = 5_000_000;

/** One gated get: ms from the moment the client reads again to the last byte. */
async function gatedGet(rig: Rig, host: string, port: number, pauseMs: number, seed: number): Promise<number> {
  const gate = Gate.in(rig, GATE_AT);
  const get = transfer(rig.host('client'), 'get', BYTES, seed, 300_000, host, port, [gate]);
  await gate.reached(120_000);
  await new Promise((r) => setTimeout(r, pauseMs));
  const t0 = Date.now();
  gate.open();
  const r = await get;
  if (r.error || r.sha256 !== r.expected)
    throw new Error(`get from ${host}:${port} failed: ${r.error ?? 'bytes differ'}`);
  return Date.now() - t0;
}

export async function main(argv: string[]): Promise<number> {
  const { args, flag } = cliArgs(argv, ['--pause', '--lan']);
  const rounds = Number(args[0] ?? 5);
  const pause = Number(flag('--pause', '3'));
  const lan = flag('--lan', 'mirror') as LanMode;
  if (!(rounds >= 1) || !(pause >= 0) || !['hub', 'mirror', 'switch'].includes(lan))
    throw new Error('usage: slow-reader.js [ROUNDS ≥ 1] [--pause SECONDS] [--lan hub|mirror|switch]');
  await withRig({ mode: lan, links: { client: { rateMbit: 100 } } }, async (rig) => {
    const pair = await TcpfoPair.start(rig);
    try {
      const p = rig.host('primary');
      await startDemoServer(p, p.ip, PLAIN_PORT);
      const plain: number[] = [];
      const tcpfo: number[] = [];
      for (let i = 0; i < rounds; i++) {
        plain.push(await gatedGet(rig, p.ip, PLAIN_PORT, pause * 1000, 10 + i));
        tcpfo.push(await gatedGet(rig, VIP, DEMO_PORT, pause * 1000, 10 + i));
        process.stderr.write(`round ${i + 1}: plain ${plain.at(-1)} ms, tcpfo ${tcpfo.at(-1)} ms\n`);
      }
      const row = (xs: number[]) => `${median(xs)} (${Math.min(...xs)}–${Math.max(...xs)}) | ${xs.join(', ')}`;
      console.log(
        `${BYTES / 1e6} MB gets, the client stops reading at ${GATE_AT / 1e6} MB for ${pause} s; ${lan}, client link 100 Mbit/s, both nodes up`,
      );
      console.log('ms from reading again to the last byte (the rest: 25 MB, about 2.1 s at the rate)\n');
      console.log('| | median (min–max) | each round |');
      console.log('|---|---|---|');
      console.log(`| plain | ${row(plain)} |`);
      console.log(`| tcpfo | ${row(tcpfo)} |`);
      const resets: string[] = [];
      for (const node of ['primary', 'secondary']) {
        const m = await scrapeMetrics(rig, node);
        resets.push(`${node} ${m('tcpfo_window_reopened_resets_total{result="reset"}')}`);
      }
      console.log(
        `\nconnections reset as their client's window reopened (tcpfo_window_reopened_resets_total): ${resets.join(', ')}`,
      );
    } finally {
      await pair.stop();
    }
  });
  return 0;
}

runAsProgram(import.meta.url, main);
