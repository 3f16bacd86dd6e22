/**
 * Scale: N idle connections through a failover. Debian's redis on both
 * nodes (and on the primary's own address, for plain TCP), a client that
 * opens N connections and PINGs each; then one node dies (its link cut, its
 * bridge and servers stopped, as a dead host's: killed only after the rounds,
 * since closing their sockets would take the survivor's cores here), one
 * connection in 100 (spread over every client and server) PINGs at once, then
 * every connection at once. Prints, per N and
 * victim: how long the sample waited from the kill (the failover's stall,
 * apart from the time the machine takes to answer N requests at once), how
 * long until the last of all answered (and how many failed), the survivor's takeover timeline, the bridges' RSS
 * and its growth per connection, the rate of connection setup through the
 * pair against plain TCP, and one busy connection's round trip beside the N
 * idle ones against none (and plain). Writes a JSON report.
 *
 * Plots the stall against N (the report's name, .svg).
 *
 *   npm run build && node dist/bench/failover/scale.js [N,...=1000,10000,20000,50000,100000] [report.json] [timeout ms=100]
 *
 * The detector's timeout (default 100 ms, the product's) is part of every
 * stall after a kill; past ~20,000 connections on two cores that also run the
 * client and every server, the bridges' event loops stall longer than
 * 100 ms while the connections are set up, and a larger one keeps a live
 * peer from being declared dead.
 */
import { writeFileSync } from 'node:fs';
import { lineChart } from '../figures/svg.js';
import { runAsProgram, UsageError } from '../../rig/main.js';
import { SAMPLE_EVERY, scaleRun, type ScaleRun } from '../../rig/scale.js';

const mb = (b: number) => (b / 2 ** 20).toFixed(0);

export async function main(args: string[]): Promise<number> {
  const ns = (args[0] ?? '1000,10000,20000,50000,100000').split(',').map(Number);
  const OUT = args[1] ?? 'bench/results/scale.json';
  const timeoutMs = Number(args[2] ?? 100);
  if (ns.some((n) => !Number.isInteger(n) || n < 1) || !Number.isInteger(timeoutMs) || timeoutMs < 20)
    throw new UsageError('usage: scale.js [N,...] [report.json] [detector timeout ms, default 100]');
  console.log(`detector timeout ${timeoutMs} ms`);
  const runs: ScaleRun[] = [];
  for (const n of ns) {
    for (const victim of ['primary', 'secondary'] as const) {
      const r = await scaleRun(n, victim, victim === 'primary', timeoutMs);
      runs.push(r);
      const perConn = (x: number, idle: number) => ((x - idle) / n).toFixed(0);
      console.log(
        `${String(n).padStart(6)} connections, kill the ${victim.padEnd(9)}: ${sampleText(r)}; then all answered after ${r.after.lastMs} ms (p50 ${r.after.p50Ms}, p99 ${r.after.p99Ms}; ${r.afterKillMs} ms from the kill; without a kill ${r.before.lastMs} ms${r.plainRound ? `, plain ${r.plainRound.lastMs} ms` : ''}, connections handed from the kernel merge to the bridge then ${JSON.stringify(r.kernel.handovers)}, ${r.kernel.again} ranges sent again kept in it; P's segments through the output queue ${r.kernel.queued ?? '–'}, of them ${r.kernel.returned ?? '–'} straight back to the kernel, ${r.kernel.waited ?? '–'} set aside, ${r.kernel.heldTooLong ?? '–'} held their client's order 50 ms, ${r.kernel.dsackCleared ?? '–'} D-SACK ACKs cleared); failed ${r.after.failed}, unanswered ${r.after.lost}; ` +
          `setup ${r.setup.perSecond}/s${r.plainSetup ? ` (plain ${r.plainSetup.perSecond}/s, ${(r.setup.perSecond / r.plainSetup.perSecond).toFixed(2)})` : ''}, ${cpuText(r)}; ` +
          `RSS P ${mb(r.rss.primary)} MB (${perConn(r.rss.primary, r.rss.primaryIdle)} B/conn; JS heap ${perConn(r.heap.primary, r.heap.primaryIdle)} B/conn), S ${mb(r.rss.secondary)} MB (${perConn(r.rss.secondary, r.rss.secondaryIdle)} B/conn); ` +
          `${busyText(r)}; timeline ${JSON.stringify(r.timeline)}`,
      );
    }
  }
  // The report without the pair's logs (they stay with the run that needs them: the rig test).
  writeFileSync(
    OUT,
    JSON.stringify({ date: new Date().toISOString(), runs: runs.map(({ logs: _logs, ...r }) => r) }, null, 2),
  );
  console.log(`report: ${OUT}`);
  const plot = OUT.replace(/\.json$/, '') + '.svg';
  writeFileSync(plot, stallChart(runs, timeoutMs));
  console.log(`plot: ${plot}`);
  return runs.some((r) => r.after.failed || r.after.lost || r.sampled.failed || r.sampled.lost) ? 1 : 0;
}

/** The machine's CPU per connection set up, through the pair and plain: on a saturated machine their ratio bounds setup's. */
export function cpuText(r: ScaleRun): string {
  const c = r.setupCpuUs;
  const plain = c.plain === null ? '' : ` (plain ${Math.round(c.plain)} µs, ${(c.plain / c.tcpfo).toFixed(2)})`;
  return `the machine's CPU per connection set up ${Math.round(c.tcpfo)} µs${plain}`;
}

/** The sample's stall after the kill: one connection in SAMPLE_EVERY, spread over all, PINGed as the link went down. */
export function sampleText(r: ScaleRun): string {
  const s = r.sampled;
  return `1 in ${SAMPLE_EVERY} (${s.answered + s.failed + s.lost}) answered within ${s.lastMs ?? '–'} ms of the kill (p50 ${s.p50Ms ?? '–'}; asked ${r.sampleAfterMs} ms after it; failed ${s.failed}, unanswered ${s.lost}; the victim's processes, stopped at the kill, took ${r.killMs} ms to exit once killed after the rounds)`;
}

/**
 * One busy connection's PING round trip (median): beside the n idle ones,
 * and with none; and the overhead over plain TCP of each, when measured.
 */
export function busyText(r: ScaleRun): string {
  const { idle, none, plain } = r.busy;
  const over = (b: typeof idle) => (plain?.p50Us != null && b.p50Us != null ? ` (+${b.p50Us - plain.p50Us})` : '');
  const ratio =
    plain?.p50Us != null && idle.p50Us != null && none.p50Us != null && none.p50Us > plain.p50Us
      ? `, overhead ${((idle.p50Us - plain.p50Us) / (none.p50Us - plain.p50Us)).toFixed(2)}× none's`
      : '';
  return `busy round trip p50 ${idle.p50Us} µs${over(idle)} beside them, ${none.p50Us} µs${over(none)} alone${plain ? `, plain ${plain.p50Us} µs` : ''}${ratio}`;
}

/** The stall after each kill (every connection, and the sample), and one round of requests without a kill (through the pair, and plain), against N. */
export function stallChart(runs: readonly ScaleRun[], timeoutMs = 100): string {
  const ns = [...new Set(runs.map((r) => r.n))].sort((a, b) => a - b);
  const at = (victim: string, f: (r: ScaleRun) => number | null) =>
    ns.map((n) => f(runs.find((r) => r.n === n && r.victim === victim)!) ?? NaN);
  return lineChart(
    `One request on each idle connection (detector ${timeoutMs} ms): until the last one answered`,
    'connections',
    'ms',
    ns,
    {
      'kill the primary': at('primary', (r) => r.after.lastMs),
      'kill the secondary': at('secondary', (r) => r.after.lastMs),
      'kill the primary, 1 in 100': at('primary', (r) => r.sampled.lastMs),
      'kill the secondary, 1 in 100': at('secondary', (r) => r.sampled.lastMs),
      'no kill': at('primary', (r) => r.before.lastMs),
      'plain TCP, no kill': at('primary', (r) => r.plainRound?.lastMs ?? null),
    },
    { logY: true, decimalX: true },
  );
}

runAsProgram(import.meta.url, main);
