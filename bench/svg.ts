/** Minimal SVG charts for the benchmark report: grouped bars and log-x lines. No dependencies. */

const W = 640;
const H = 360;
const M = { l: 70, r: 20, t: 40, b: 60 };
const COLORS = ['#4878a8', '#e08a3c', '#5aa05a', '#c0504d'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

function frame(title: string, yLabel: string, body: string, legend: string[]): string {
  const leg = legend
    .map((n, i) => `<rect x="${M.l + i * 150}" y="${H - 18}" width="12" height="12" fill="${COLORS[i]}"/><text x="${M.l + i * 150 + 16}" y="${H - 8}" font-size="12">${esc(n)}</text>`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>
<text x="16" y="${H / 2}" transform="rotate(-90 16 ${H / 2})" text-anchor="middle" font-size="12">${esc(yLabel)}</text>
${body}${leg}
</svg>
`;
}

function yAxis(max: number): { scale: (v: number) => number; svg: string } {
  const ph = H - M.t - M.b;
  const scale = (v: number) => H - M.b - (v / max) * ph;
  let svg = `<line x1="${M.l}" y1="${M.t}" x2="${M.l}" y2="${H - M.b}" stroke="black"/><line x1="${M.l}" y1="${H - M.b}" x2="${W - M.r}" y2="${H - M.b}" stroke="black"/>`;
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    svg += `<text x="${M.l - 6}" y="${scale(v) + 4}" text-anchor="end" font-size="11">${v >= 100 ? v.toFixed(0) : v.toPrecision(3)}</text><line x1="${M.l}" x2="${W - M.r}" y1="${scale(v)}" y2="${scale(v)}" stroke="#ddd"/>`;
  }
  return { scale, svg };
}

/** groups: x labels; series: name → value per group. */
export function barChart(title: string, yLabel: string, groups: string[], series: Record<string, number[]>): string {
  const names = Object.keys(series);
  const max = Math.max(1e-9, ...Object.values(series).flat()) * 1.1;
  const { scale, svg } = yAxis(max);
  const gw = (W - M.l - M.r) / groups.length;
  const bw = (gw * 0.7) / names.length;
  let body = svg;
  groups.forEach((g, gi) => {
    names.forEach((n, si) => {
      const v = series[n]![gi] ?? 0;
      const x = M.l + gi * gw + gw * 0.15 + si * bw;
      body += `<rect x="${x}" y="${scale(v)}" width="${bw - 2}" height="${H - M.b - scale(v)}" fill="${COLORS[si]}"/>`;
    });
    body += `<text x="${M.l + gi * gw + gw / 2}" y="${H - M.b + 16}" text-anchor="middle" font-size="11">${esc(g)}</text>`;
  });
  return frame(title, yLabel, body, names);
}

/** x values on a log scale; series: name → y per x. */
export function lineChart(title: string, xLabel: string, yLabel: string, xs: number[], series: Record<string, number[]>): string {
  const names = Object.keys(series);
  const max = Math.max(1e-9, ...Object.values(series).flat()) * 1.1;
  const { scale, svg } = yAxis(max);
  const lx = xs.map((x) => Math.log2(x));
  const x0 = Math.min(...lx);
  const x1 = Math.max(...lx);
  const sx = (x: number) => M.l + ((Math.log2(x) - x0) / (x1 - x0 || 1)) * (W - M.l - M.r - 10);
  let body = svg;
  for (const x of xs) body += `<text x="${sx(x)}" y="${H - M.b + 16}" text-anchor="middle" font-size="10">${x >= 1024 ? `${x / 1024}K` : x}</text>`;
  body += `<text x="${W / 2}" y="${H - M.b + 34}" text-anchor="middle" font-size="12">${esc(xLabel)}</text>`;
  names.forEach((n, si) => {
    const pts = xs.map((x, i) => `${sx(x)},${scale(series[n]![i] ?? 0)}`).join(' ');
    body += `<polyline points="${pts}" fill="none" stroke="${COLORS[si]}" stroke-width="2"/>`;
  });
  return frame(title, yLabel, body, names);
}
