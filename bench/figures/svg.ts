/**
 * SVG charts for the benchmark reports, readable at a glance: round tick
 * values (1-2-5 steps, or powers of ten on log axes), labels that do not
 * overlap (horizontal bars for many categories), ratio charts with the line
 * at 1 drawn in. No dependencies.
 */

const COLORS = ['#4878a8', '#e08a3c', '#5aa05a', '#c0504d', '#8064a2', '#4bacc6'];
const FONT = 'font-family="sans-serif"';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

/** A round number for a tick: few significant digits, SI suffix for large ones. */
export function tickLabel(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a >= 1 || a === 0) return String(+v.toPrecision(3));
  return String(+v.toPrecision(2));
}

/** Linear ticks from 0 to at least `max`, at 1, 2 or 5 × 10^k steps. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  if (ticks.at(-1)! < max) ticks.push(+(ticks.at(-1)! + step).toPrecision(12));
  return ticks;
}

/** Log ticks covering [min, max]: 1, 2, 5 × 10^k (or only 10^k when the span is wide). */
export function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(Math.max(min, 1e-12)));
  const hi = Math.ceil(Math.log10(Math.max(max, min * 10)));
  const wide = hi - lo > 4;
  const out: number[] = [];
  for (let e = lo; e <= hi; e++) for (const m of wide ? [1] : [1, 2, 5]) out.push(m * 10 ** e);
  return out.filter((t) => t >= 10 ** lo && t <= 10 ** hi);
}

function legend(names: string[], x: number, y: number): string {
  let at = x;
  return names
    .map((n, i) => {
      const item = `<rect x="${at}" y="${y}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/><text x="${at + 16}" y="${y + 10}" font-size="12">${esc(n)}</text>`;
      at += 16 + n.length * 7 + 18;
      return item;
    })
    .join('');
}

function svg(w: number, h: number, title: string, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" ${FONT}>
<rect width="100%" height="100%" fill="white"/>
<text x="${w / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>
${body}
</svg>
`;
}

/**
 * Ratios (1 = no cost, the dashed line), one horizontal bar per label and
 * series: labels on the left never overlap, each bar carries its value.
 */
export function ratioChart(title: string, labels: string[], series: Record<string, number[]>): string {
  const names = Object.keys(series);
  const barH = 14;
  const groupH = names.length * barH + 10;
  const left = 150;
  const right = 60;
  const top = 40;
  const W = 720;
  const H = top + labels.length * groupH + 50;
  const vals = Object.values(series).flat().filter(Number.isFinite);
  const ticks = niceTicks(Math.max(1.2, ...vals));
  const max = ticks.at(-1)!;
  const sx = (v: number) => left + (Math.max(0, v) / max) * (W - left - right);
  let body = '';
  for (const t of ticks)
    body += `<line x1="${sx(t)}" x2="${sx(t)}" y1="${top}" y2="${H - 40}" stroke="#e4e4e4"/><text x="${sx(t)}" y="${H - 26}" text-anchor="middle" font-size="11">${tickLabel(t)}</text>`;
  labels.forEach((l, gi) => {
    const y0 = top + gi * groupH;
    body += `<text x="${left - 8}" y="${y0 + (names.length * barH) / 2 + 4}" text-anchor="end" font-size="12">${esc(l)}</text>`;
    names.forEach((n, si) => {
      const v = series[n]![gi];
      const y = y0 + si * barH;
      if (v === undefined || !Number.isFinite(v)) {
        body += `<text x="${left + 4}" y="${y + barH - 3}" font-size="10" fill="#888">no value</text>`;
        return;
      }
      body += `<rect x="${left}" y="${y}" width="${sx(v) - left}" height="${barH - 2}" fill="${COLORS[si % COLORS.length]}"/><text x="${sx(v) + 4}" y="${y + barH - 3}" font-size="10">${v.toFixed(2)}</text>`;
    });
  });
  body += `<line x1="${sx(1)}" x2="${sx(1)}" y1="${top - 4}" y2="${H - 40}" stroke="black" stroke-dasharray="4 3"/>`;
  body += `<line x1="${left}" x2="${left}" y1="${top - 4}" y2="${H - 40}" stroke="black"/>`;
  body += legend(names, left, H - 16);
  return svg(W, H, title, body);
}

/** The y axis: ticks and value → y for a plot whose bottom is at `bottom`, `ph` high; log or linear. */
function yScale(
  vals: number[],
  bottom: number,
  ph: number,
  log = false,
): { ticks: number[]; sy: (v: number) => number } {
  if (log) {
    const ticks = logTicks(Math.min(...vals), Math.max(...vals));
    const lo = Math.log10(ticks[0]!);
    const hi = Math.log10(ticks.at(-1)!);
    return { ticks, sy: (v) => bottom - ((Math.log10(Math.max(v, ticks[0]!)) - lo) / (hi - lo || 1)) * ph };
  }
  const ticks = niceTicks(Math.max(1e-9, ...vals));
  return { ticks, sy: (v) => bottom - (v / ticks.at(-1)!) * ph };
}

/**
 * Grouped vertical bars. `log`: a log y axis (for values spanning decades).
 * Many groups: labels are rotated so that they never overlap.
 */
export function barChart(
  title: string,
  yLabel: string,
  groups: string[],
  series: Record<string, number[]>,
  opts: { log?: boolean } = {},
): string {
  const names = Object.keys(series);
  const W = Math.max(640, 70 + groups.length * (names.length * 18 + 16));
  const rotate = groups.some((g) => g.length * 6.5 > (W - 90) / groups.length);
  const M = { l: 70, r: 20, t: 40, b: rotate ? 110 : 60 };
  const H = 360 + (rotate ? 50 : 0);
  const vals = Object.values(series)
    .flat()
    .filter((v) => Number.isFinite(v) && (!opts.log || v > 0));
  const ph = H - M.t - M.b;
  const { ticks, sy } = yScale(vals, H - M.b, ph, opts.log);
  let body = '';
  for (const t of ticks)
    body += `<line x1="${M.l}" x2="${W - M.r}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e4e4e4"/><text x="${M.l - 6}" y="${sy(t) + 4}" text-anchor="end" font-size="11">${tickLabel(t)}</text>`;
  const gw = (W - M.l - M.r) / groups.length;
  const bw = (gw * 0.75) / names.length;
  groups.forEach((g, gi) => {
    names.forEach((n, si) => {
      const v = series[n]![gi] ?? 0;
      if (!Number.isFinite(v)) return;
      const x = M.l + gi * gw + gw * 0.125 + si * bw;
      const y = sy(v);
      body += `<rect x="${x}" y="${y}" width="${bw - 2}" height="${Math.max(0, H - M.b - y)}" fill="${COLORS[si % COLORS.length]}"/>`;
    });
    const cx = M.l + gi * gw + gw / 2;
    body += rotate
      ? `<text x="${cx}" y="${H - M.b + 12}" text-anchor="end" font-size="11" transform="rotate(-40 ${cx} ${H - M.b + 12})">${esc(g)}</text>`
      : `<text x="${cx}" y="${H - M.b + 16}" text-anchor="middle" font-size="11">${esc(g)}</text>`;
  });
  body += `<line x1="${M.l}" y1="${M.t}" x2="${M.l}" y2="${H - M.b}" stroke="black"/><line x1="${M.l}" y1="${H - M.b}" x2="${W - M.r}" y2="${H - M.b}" stroke="black"/>`;
  body += `<text x="16" y="${(M.t + H - M.b) / 2}" transform="rotate(-90 16 ${(M.t + H - M.b) / 2})" text-anchor="middle" font-size="12">${esc(yLabel)}${opts.log ? ' (log scale)' : ''}</text>`;
  body += legend(names, M.l, H - 18);
  return svg(W, H, title, body);
}

/**
 * Lines over x on a log scale; the y axis log too when `logY` (times spanning
 * decades). x is labelled in binary units (1K = 1024, sizes) unless
 * `decimalX` (1k = 1000, counts).
 */
export function lineChart(
  title: string,
  xLabel: string,
  yLabel: string,
  xs: number[],
  series: Record<string, number[]>,
  opts: { logY?: boolean; decimalX?: boolean } = {},
): string {
  const names = Object.keys(series);
  const W = 640;
  const H = 380;
  const M = { l: 70, r: 20, t: 40, b: 70 };
  const vals = Object.values(series)
    .flat()
    .filter((v) => Number.isFinite(v) && v > 0);
  const ph = H - M.t - M.b;
  const { ticks, sy } = yScale(vals, H - M.b, ph, opts.logY);
  const lx = xs.map((x) => Math.log2(x));
  const x0 = Math.min(...lx);
  const x1 = Math.max(...lx);
  const sx = (x: number) => M.l + 10 + ((Math.log2(x) - x0) / (x1 - x0 || 1)) * (W - M.l - M.r - 20);
  let body = '';
  for (const t of ticks)
    body += `<line x1="${M.l}" x2="${W - M.r}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e4e4e4"/><text x="${M.l - 6}" y="${sy(t) + 4}" text-anchor="end" font-size="11">${tickLabel(t)}</text>`;
  const xLabelOf = (x: number) =>
    opts.decimalX
      ? x >= 1e6
        ? `${x / 1e6}M`
        : x >= 1000
          ? `${x / 1000}k`
          : `${x}`
      : x >= 1 << 20
        ? `${x / (1 << 20)}M`
        : x >= 1024
          ? `${x / 1024}K`
          : `${x}`;
  for (const x of xs)
    body += `<text x="${sx(x)}" y="${H - M.b + 16}" text-anchor="middle" font-size="10">${xLabelOf(x)}</text>`;
  body += `<text x="${W / 2}" y="${H - M.b + 34}" text-anchor="middle" font-size="12">${esc(xLabel)} (log scale)</text>`;
  names.forEach((n, si) => {
    const pts = xs
      .map((x, i) => [sx(x), series[n]![i]] as const)
      .filter(([, v]) => v !== undefined && Number.isFinite(v) && v > 0);
    body += `<polyline points="${pts.map(([x, v]) => `${x},${sy(v!)}`).join(' ')}" fill="none" stroke="${COLORS[si % COLORS.length]}" stroke-width="2"/>`;
    for (const [x, v] of pts) body += `<circle cx="${x}" cy="${sy(v!)}" r="3" fill="${COLORS[si % COLORS.length]}"/>`;
  });
  body += `<line x1="${M.l}" y1="${M.t}" x2="${M.l}" y2="${H - M.b}" stroke="black"/><line x1="${M.l}" y1="${H - M.b}" x2="${W - M.r}" y2="${H - M.b}" stroke="black"/>`;
  body += `<text x="16" y="${(M.t + H - M.b) / 2}" transform="rotate(-90 16 ${(M.t + H - M.b) / 2})" text-anchor="middle" font-size="12">${esc(yLabel)}${opts.logY ? ' (log scale)' : ''}</text>`;
  body += legend(names, M.l, H - 18);
  return svg(W, H, title, body);
}
