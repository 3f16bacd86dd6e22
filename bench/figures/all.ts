/**
 * `npm run bench`: the paper's measurements on a hub, a mirroring switch and
 * an ordinary learning switch (paper.ts), then the request/answer
 * workloads on all three (interactive.ts), each plain TCP against
 * tcpfo in one run; then bench/results/summary.md, one table per LAN with
 * the figures side by side.
 *
 *   npm run build && node dist/bench/figures/all.js [--quick] [--report-only]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runAsProgram } from '../../rig/main.js';
import { main as interactive } from './interactive.js';
import { main as paper } from './paper.js';

const LANS = ['hub', 'mirror', 'switch'] as const;
const RESULTS = 'bench/results';

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
  }
  const paperOf = (lan: string): PaperReport =>
    JSON.parse(readFileSync(join(lan === 'hub' ? RESULTS : join(RESULTS, lan), 'paper.json'), 'utf8')) as PaperReport;
  const inter = JSON.parse(readFileSync(join(RESULTS, 'interactive.json'), 'utf8')) as InteractiveReport;
  const r2 = (a: number, b: number) => (a / b).toFixed(2);
  const md = [
    '# tcpfo against plain TCP: the summary',
    '',
    'Every figure from one run of `npm run bench` on this machine (2 cores) in the rig, plain TCP and tcpfo in the same run on the same links; ' +
      'the full reports beside this file (`paper.md` for the hub, `mirror/paper.md`, `switch/paper.md`, `interactive.md`).',
    '',
    '| LAN | link | setup added, median (µs) | send ratio | receive ratio | conn/s ratio |',
    '|---|---|---|---|---|---|',
  ];
  for (const lan of LANS) {
    const p = paperOf(lan);
    for (const r of p.results) {
      md.push(
        `| ${lan} | ${r.setting} | +${r.tcpfo.setupMedianUs - r.plain.setupMedianUs} | ${r2(r.tcpfo.sendKBps, r.plain.sendKBps)} | ${r2(r.tcpfo.receiveKBps, r.plain.receiveKBps)} | ${r2(r.tcpfo.connPerSec, r.plain.connPerSec)} |`,
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
      `| ${r.lan} | +${r.tcpfo.echo100.medianUs - r.plain.echo100.medianUs} | ${r2(r.tcpfo.memcachedOps, r.plain.memcachedOps)} | +${r.tcpfo.setupSpaced.medianUs - r.plain.setupSpaced.medianUs} | ${r2(r.tcpfo.connPerSec, r.plain.connPerSec)} |`,
    );
  }
  md.push(
    '',
    `Paper runs: ${LANS.map((l) => `${l} ${paperOf(l).date}`).join(', ')}; request/answer run ${inter.date}.`,
  );
  writeFileSync(join(RESULTS, 'summary.md'), md.join('\n') + '\n');
  console.log(md.join('\n'));
  return status;
}

runAsProgram(import.meta.url, main);
