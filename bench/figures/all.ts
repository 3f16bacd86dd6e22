/**
 * `npm run bench`: the paper's measurements on a hub, a mirroring switch and
 * an ordinary learning switch (paper.ts), then the request/answer
 * workloads on all three (interactive.ts), each plain TCP against
 * tcpfo in one run; then many idle connections through a failover of each
 * node (failover/scale.ts, on the hub); then bench/results/summary.md, the
 * figures side by side.
 *
 *   npm run build && node dist/bench/figures/all.js [--quick] [--report-only]
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runAsProgram } from '../../rig/main.js';
import type { ScaleRun } from '../../rig/scale.js';
import { main as scale } from '../failover/scale.js';
import { main as interactive } from './interactive.js';
import { signed } from './format.js';
import { main as paper } from './paper.js';

const LANS = ['hub', 'mirror', 'switch'] as const;
const RESULTS = 'bench/results';
const SCALE = join(RESULTS, 'scale.json');

interface PaperSide {
  setupMedianUs: number;
  sendKBps: number;
  receiveKBps: number;
  connPerSec: number;
}
interface PaperReport {
  date: string;
  results: Array<{ setting: string; plain: PaperSide; tcpfo: PaperSide }>;
}
interface InteractiveReport {
  date: string;
  results: Array<{
    lan: string;
    plain: {
      echo100: { medianUs: number };
      memcachedOps: number;
      setupSpaced: { medianUs: number };
      connPerSec: number;
    };
    tcpfo: {
      echo100: { medianUs: number };
      memcachedOps: number;
      setupSpaced: { medianUs: number };
      connPerSec: number;
    };
  }>;
}

export async function main(args: string[]): Promise<number> {
  const quick = args.includes('--quick') ? ['--quick'] : [];
  let status = 0;
  if (!args.includes('--report-only')) {
    for (const lan of LANS) status = (await paper(['--lan', lan, ...quick])) || status;
    status = (await interactive(quick)) || status;
    status = (await scale([quick.length ? '1000,5000' : '1000,10000,20000,50000,100000', SCALE])) || status;
  }
  const paperOf = (lan: string): PaperReport =>
    JSON.parse(readFileSync(join(lan === 'hub' ? RESULTS : join(RESULTS, lan), 'paper.json'), 'utf8')) as PaperReport;
  const inter = JSON.parse(readFileSync(join(RESULTS, 'interactive.json'), 'utf8')) as InteractiveReport;
  const r2 = (a: number, b: number) => (a / b).toFixed(2);
  const md = [
    '# tcpfo against plain TCP: the summary',
    '',
    'The latest run of each report (`npm run bench` runs them all; when each ran is at the end) on this machine (2 cores) in the rig, plain TCP and tcpfo in the same run on the same links; ' +
      'the full reports beside this file (`paper.md` for the hub, `mirror/paper.md`, `switch/paper.md`, `interactive.md`).',
    '',
    '| LAN | link | setup added, median (µs) | send ratio | receive ratio | conn/s ratio |',
    '|---|---|---|---|---|---|',
  ];
  for (const lan of LANS) {
    const p = paperOf(lan);
    for (const r of p.results) {
      md.push(
        `| ${lan} | ${r.setting} | ${signed(r.tcpfo.setupMedianUs - r.plain.setupMedianUs)} | ${r2(r.tcpfo.sendKBps, r.plain.sendKBps)} | ${r2(r.tcpfo.receiveKBps, r.plain.receiveKBps)} | ${r2(r.tcpfo.connPerSec, r.plain.connPerSec)} |`,
      );
    }
  }
  md.push(
    '',
    '| LAN | 100 B round trip added, median (µs) | memcached ops ratio | setup added, idle pair (µs) | conn/s ratio |',
    '|---|---|---|---|---|',
  );
  for (const r of inter.results) {
    md.push(
      `| ${r.lan} | ${signed(r.tcpfo.echo100.medianUs - r.plain.echo100.medianUs)} | ${r2(r.tcpfo.memcachedOps, r.plain.memcachedOps)} | ${signed(r.tcpfo.setupSpaced.medianUs - r.plain.setupSpaced.medianUs)} | ${r2(r.tcpfo.connPerSec, r.plain.connPerSec)} |`,
    );
  }
  const scaled = existsSync(SCALE) ? (JSON.parse(readFileSync(SCALE, 'utf8')) as ScaleReport) : null;
  if (scaled) md.push('', ...scaleTable(scaled.runs));
  md.push(
    '',
    `Paper runs: ${LANS.map((l) => `${l} ${paperOf(l).date}`).join(', ')}; request/answer run ${inter.date}` +
      (scaled ? `; many connections ${scaled.date}.` : '.'),
  );
  writeFileSync(join(RESULTS, 'summary.md'), md.join('\n') + '\n');
  console.log(md.join('\n'));
  return status;
}

interface ScaleReport {
  date: string;
  runs: Array<Omit<ScaleRun, 'logs'>>;
}

/**
 * Many idle connections (scale.json, `node dist/bench/failover/scale.js`):
 * per N, the stall after each kill, setup against plain, the primary
 * bridge's memory per connection, and one busy connection's round trip
 * beside them against none — each beside its target (issue: scale).
 */
export function scaleTable(runs: ScaleReport['runs']): string[] {
  const ns = [...new Set(runs.map((r) => r.n))].sort((a, b) => a - b);
  const lines = [
    '## Many idle connections through a failover (hub, redis on both nodes; `scale.json`, `scale.svg`)',
    '',
    '| connections | killing P: 1 in 100 / all answered, ms from the kill | killing S: the same | one request on each, plain TCP (ms) | lost | setup, tcpfo / plain (machine CPU per connection, plain / tcpfo) | P’s bridge, bytes per connection | busy round trip added beside them / with none (µs) |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const n of ns) {
    const p = runs.find((r) => r.n === n && r.victim === 'primary');
    const s = runs.find((r) => r.n === n && r.victim === 'secondary');
    const first = p ?? s!;
    // The round after the sample PINGs every connection, the sampled ones too.
    const lostOf = (r: ScaleReport['runs'][number] | undefined) => (r ? r.after.failed + r.after.lost : 0);
    const lost = lostOf(p) + lostOf(s);
    // From the kill: the sample's last answer, then the last of all.
    const stall = (r: ScaleReport['runs'][number] | undefined) =>
      r ? `${r.sampled.lastMs ?? '–'} / ${r.afterKillMs}` : '–';
    const cpu = first.setupCpuUs;
    const cpuRatio = cpu.plain !== null ? ` (${(cpu.plain / cpu.tcpfo).toFixed(2)})` : '';
    const setup = first.plainSetup
      ? `${(first.setup.perSecond / first.plainSetup.perSecond).toFixed(2)}${cpuRatio}`
      : '–';
    const perConn = Math.round((first.rss.primary - first.rss.primaryIdle) / n);
    const { idle, none, plain } = first.busy;
    const added =
      plain?.p50Us != null && idle.p50Us != null && none.p50Us != null
        ? `${signed(idle.p50Us - plain.p50Us)} / ${signed(none.p50Us - plain.p50Us)}`
        : '–';
    lines.push(
      `| ${n.toLocaleString('en')} | ${stall(p)} | ${stall(s)} | ${first.plainRound?.lastMs ?? '–'} | ${lost} | ${setup} | ${perConn} | ${added} |`,
    );
  }
  lines.push(
    '',
    'As the victim’s link goes down (its processes stopped, as a dead host’s, and killed after the rounds), one connection in 100, spread over every client and server, sends a request: how long the failover keeps a connection waiting. Then every connection sends one: that round takes the machine at least the plain column (two cores run the client, every server and both bridges). Setup runs on a saturated machine: the ratio of the machine’s CPU per connection set up (plain / tcpfo, in brackets) bounds it, and the second server’s share of that CPU is on the same two cores. Targets: every connection answers within 1000 ms of either kill (the detector’s timeout included), none lost; setup ≥ 0.8 of plain; ≤ 2 KB per connection; the busy round trip’s overhead beside them within 10 % of its overhead with none.',
  );
  return lines;
}

runAsProgram(import.meta.url, main);
