/**
 * Switchover campaign: for each of the kill campaign's workloads (an echo
 * session, a 30 MB download, memcached set+get over one connection, an FTP
 * get and an FTP put with vsftpd), N planned switchovers (`tcpfo
 * switchover`) at random moments, asked alternately on the primary (it
 * hands over) and on the secondary (it asks the primary). Every workload
 * must end byte-exact with no RST at the client; prints the client-visible
 * stall per workload (median, max; the slowest echo, the longest gap of
 * the download or of memcached's answers) and writes a JSON report.
 *
 *   npm run build && node dist/bench/failover/switchover-campaign.js [switchovers-per-workload=10] [report.json]
 */
import { writeFileSync } from 'node:fs';
import { median, runAsProgram, UsageError } from '../../rig/main.js';
import { SWITCH_WORKLOADS, switchoverDuring, type SwitchRun } from '../../rig/switchover.js';

export async function main(args: string[]): Promise<number> {
  const N = Number(args[0] ?? 10);
  const OUT = args[1] ?? 'bench/results/switchover-campaign.json';
  if (!Number.isInteger(N) || N < 1)
    throw new UsageError('usage: switchover-campaign.js [switchovers-per-workload=10] [report.json]');
  const runs: SwitchRun[] = [];
  const started = Date.now();
  for (const workload of SWITCH_WORKLOADS) {
    for (let i = 0; i < N; i++) {
      // The FTP file takes ~1.5 s at 10 Mbit/s; the others run ~3 s.
      const at = workload.startsWith('ftp')
        ? 100 + Math.floor(Math.random() * 1000)
        : 300 + Math.floor(Math.random() * 2000);
      const run = await switchoverDuring(workload, i % 2 ? 'secondary' : 'primary', at);
      runs.push(run);
      process.stdout.write(
        `${workload.padEnd(9)} asked on the ${run.askedOn.padEnd(9)} at ${String(at).padStart(4)} ms: ${run.ok ? 'ok' : 'FAILED'}${run.stallMs !== null ? `, stall ${run.stallMs} ms` : ''}, command ${run.commandMs} ms${run.ok ? '' : ` — ${run.detail}`}\n`,
      );
    }
  }
  console.log(
    `\nswitchover campaign (hub; detector interval 20 ms, timeout 100 ms; rto_min 20 ms), ${((Date.now() - started) / 60000).toFixed(1)} min:`,
  );
  const summary: Record<string, unknown> = {};
  const allStalls: number[] = [];
  for (const workload of SWITCH_WORKLOADS) {
    const rs = runs.filter((r) => r.workload === workload);
    const ok = rs.filter((r) => r.ok).length;
    const stalls = rs.filter((r) => r.ok && r.stallMs !== null).map((r) => r.stallMs!);
    allStalls.push(...stalls);
    const cmd = rs.map((r) => r.commandMs);
    console.log(
      `  ${workload.padEnd(9)} ${ok} of ${rs.length} byte-exact, no RST${stalls.length ? `; stall median ${median(stalls)} ms, max ${Math.max(...stalls)} ms` : ''}; the command answered in ${median(cmd)} ms (median)`,
    );
    summary[workload] = {
      ok,
      of: rs.length,
      stallMedianMs: stalls.length ? median(stalls) : null,
      stallMaxMs: stalls.length ? Math.max(...stalls) : null,
      commandMedianMs: median(cmd),
    };
  }
  console.log(
    `  every stall measured: median ${median(allStalls)} ms (target ≤ 50 ms), max ${Math.max(...allStalls)} ms`,
  );
  writeFileSync(
    OUT,
    JSON.stringify(
      { date: new Date().toISOString(), switchoversPerWorkload: N, summary, stallMedianMs: median(allStalls), runs },
      null,
      2,
    ),
  );
  console.log(`report: ${OUT}`);
  return runs.some((r) => !r.ok) ? 1 : 0;
}

runAsProgram(import.meta.url, main);
