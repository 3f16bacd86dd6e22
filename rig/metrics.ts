/** A bridge's Prometheus text, scraped in its rig node: one value by its exact series name; its threads' scheduling. */
import { readdirSync, readFileSync } from 'node:fs';
import type { Rig, RigHost } from './rig.js';

/** One scrape of a node's metrics. */
export interface Scrape {
  /** The value of one series, as written (`name{label="v"}`); NaN if absent. */
  (series: string): number;
  /** Every series of a metric, as its lines (`name{labels} value`): for a failure's report. */
  lines(name: string): string[];
}

/** Scrapes `node`'s metrics once. */
export async function scrapeMetrics(rig: Rig, node: string): Promise<Scrape> {
  const text = (await rig.host(node).exec(['curl', '-sf', 'http://127.0.0.1:9464/metrics'])).stdout;
  const value = (series: string): number =>
    Number(new RegExp(`^${series.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const lines = (name: string): string[] =>
    text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return Object.assign(value, { lines });
}

/** The threads of a process running SCHED_FIFO, as [name, priority] (/proc/PID/task/TID/stat: fields 40 and 41). */
export function fifoThreads(pid: number): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state): field N is f[N - 3].
    if (Number(f[41 - 3]) === 1) out.push([name, Number(f[40 - 3])]);
  }
  return out;
}

/**
 * The kernel's SNMP counters `names` (nstat's, e.g. TcpExtPAWSEstab) in
 * `host`'s namespace, absolute, without touching nstat's history: each
 * name's value, or undefined where this kernel has no such counter.
 */
export async function nstatCounters(
  host: RigHost,
  names: readonly string[],
): Promise<Record<string, number | undefined>> {
  const out = (await host.exec(['nstat', '-asz', ...names])).stdout;
  const values: Record<string, number | undefined> = {};
  for (const name of names) {
    const v = new RegExp(`^${name}\\s+(\\d+)`, 'm').exec(out)?.[1];
    values[name] = v === undefined ? undefined : Number(v);
  }
  return values;
}
