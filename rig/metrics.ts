/** A bridge's Prometheus text, scraped in its rig node: one value by its exact series name. */
import type { Rig } from './rig.js';

/** Scrapes `node`'s metrics once; the getter reads a series (`name{label="v"}`), NaN when absent. */
export async function scrapeMetrics(rig: Rig, node: string): Promise<(series: string) => number> {
  const text = (await rig.host(node).exec(['curl', '-sf', 'http://127.0.0.1:9464/metrics'])).stdout;
  return (series) =>
    Number(new RegExp(`^${series.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}
