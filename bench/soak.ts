/**
 * Soak (issue 8 §7): mixed traffic through a tcpfo pair with periodic
 * failovers (test/rig/soak.ts), one report line a minute: transfers and
 * short connections (all checked byte-exact), failures, failovers so far,
 * the bridges' resident memory. Writes a JSON report.
 *
 *   npm run build && node dist/bench/soak.js [minutes=60] [failover-every-s=60] [report.json]
 */
import { writeFileSync } from 'node:fs';
import { soak } from '../test/rig/soak.js';

const minutes = Number(process.argv[2] ?? 60);
const every = Number(process.argv[3] ?? 60);
const out = process.argv[4] ?? 'bench/results/soak.json';
if (!(minutes > 0) || !(every >= 10)) {
  console.error('usage: soak.js [minutes>0] [failover-every-s>=10] [report.json]');
  process.exit(2);
}
const started = new Date().toISOString();
console.log(`soak: ${minutes} min, a failover every ${every} s (alternately secondary and primary), 100 Mbit/s client link`);
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
console.log(`\n${last?.transfers ?? 0} transfers (${last?.transferFailures ?? 0} failed), ${last?.shortConnections ?? 0} short connections (${last?.shortFailures ?? 0} failed), ${r.errors.length} errors`);
const { bridgeLogs, ...report } = r;
writeFileSync(out, JSON.stringify({ started, minutes, failoverEverySeconds: every, ...report }, null, 2));
console.log(`report: ${out}`);
if (bridgeLogs) {
  const logs = out.replace(/\.json$/, '') + '-bridges.log';
  writeFileSync(logs, bridgeLogs);
  console.log(`the bridges' logs: ${logs}`);
}
if (r.errors.length || (last?.transferFailures ?? 0) || (last?.shortFailures ?? 0)) process.exitCode = 1;
