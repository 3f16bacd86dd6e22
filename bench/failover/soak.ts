/**
 * Soak: mixed traffic through a tcpfo pair with periodic failovers
 * (rig/soak.ts), one report line a minute: transfers and short
 * connections (all checked byte-exact), failures, failovers so far, the
 * bridges' resident memory. Writes a JSON report. It stops at the first
 * reaction without a kill (a false detection, a split brain).
 *
 *   npm run build && node dist/bench/failover/soak.js [minutes=60] [failover-every-s=60] [report.json] [--hog]
 *
 * --hog: stress-ng keeps every core busy meanwhile (at the default nice 0,
 * as an ordinary CPU-bound job on the node would).
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { writeFileSync } from 'node:fs';
import { soak } from '../../rig/soak.js';
import { runAsProgram, UsageError } from '../../rig/main.js';

export async function main(argv: string[]): Promise<number> {
  const hog = argv.includes('--hog');
  const args = argv.filter((a) => a !== '--hog');
  const minutes = Number(args[0] ?? 60);
  const every = Number(args[1] ?? 60);
  const out = args[2] ?? 'bench/results/soak.json';
  if (!(minutes > 0) || !(every >= 10)) {
    throw new UsageError('usage: soak.js [minutes>0] [failover-every-s>=10] [report.json] [--hog]');
  }
  const started = new Date().toISOString();
  const cores = availableParallelism();
  const hogProc = hog
    ? spawn('stress-ng', ['--cpu', String(cores), '--timeout', `${Math.ceil(minutes * 60 + 60)}s`], { stdio: 'ignore' })
    : undefined;
  hogProc?.on('error', (e) => {
    console.error(`--hog needs stress-ng (apt-get install stress-ng): ${e.message}`);
    process.exit(2);
  });
  process.on('exit', () => hogProc?.kill('SIGKILL'));
  console.log(
    `soak: ${minutes} min, a failover every ${every} s (alternately secondary and primary), 100 Mbit/s client link${hog ? `, stress-ng busy on all ${cores} cores` : ''}`,
  );
  console.log('  t(s)  transfers  failed     MB  short-conns  failed  kills P/S   RSS P MB  RSS S MB');
  const r = await soak({
    durationMs: minutes * 60_000,
    failoverEveryMs: every * 1000,
    reportEveryMs: 60_000,
    onReport: (i) =>
      console.log(
        `${String(i.atS).padStart(6)} ${String(i.transfers).padStart(10)} ${String(i.transferFailures).padStart(7)} ${String(i.megabytes).padStart(6)} ` +
          `${String(i.shortConnections).padStart(12)} ${String(i.shortFailures).padStart(7)} ${`${i.failovers.primary}/${i.failovers.secondary}`.padStart(10)} ` +
          `${(i.primaryRssMb?.toFixed(1) ?? '-').padStart(10)} ${(i.secondaryRssMb?.toFixed(1) ?? '-').padStart(9)}`,
      ),
  });
  for (const e of r.errors) console.log(`error: ${e}`);
  const last = r.intervals.at(-1);
  console.log(
    `\n${last?.transfers ?? 0} transfers (${last?.transferFailures ?? 0} failed), ${last?.shortConnections ?? 0} short connections (${last?.shortFailures ?? 0} failed), ${r.errors.length} errors`,
  );
  const { bridgeLogs, ...report } = r;
  hogProc?.kill('SIGKILL');
  writeFileSync(out, JSON.stringify({ started, minutes, failoverEverySeconds: every, hog, ...report }, null, 2));
  console.log(`report: ${out}`);
  if (bridgeLogs) {
    const logs = out.replace(/\.json$/, '') + '-bridges.log';
    writeFileSync(logs, bridgeLogs);
    console.log(`the bridges' logs: ${logs}`);
  }
  return r.errors.length || (last?.transferFailures ?? 0) || (last?.shortFailures ?? 0) ? 1 : 0;
}

runAsProgram(import.meta.url, main);
