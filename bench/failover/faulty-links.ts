/**
 * Faulty-links campaign: 100 MB downloads and uploads through a
 * tcpfo pair with loss (1 %, 5 %), duplication and reordering on each host's
 * link in turn and on all links at once, and with a node killed mid-transfer
 * on impaired links. Every transfer must be byte-exact with one sequence space
 * and no RST at the client. Prints one line per run and a summary (time,
 * longest client-visible gap), writes a JSON report.
 *
 *   npm run build && node dist/bench/failover/faulty-links.js [repetitions=1] [MB=100] [report.json] [--merge auto|kernel|release|queue]
 *
 * --merge: the primary's merge setting (default auto), to compare the paths.
 */
import { writeFileSync } from 'node:fs';
import { describeLinks, runFaultCase, type FaultCase, type LinkName } from '../../rig/faults.js';
import type { LinkShape } from '../../rig/rig.js';
import { runAsProgram, UsageError } from '../../rig/main.js';

export async function main(argv: string[]): Promise<number> {
  const mergeAt = argv.indexOf('--merge');
  const MERGE = mergeAt >= 0 ? argv[mergeAt + 1] : 'auto';
  const rest = mergeAt >= 0 ? argv.filter((_, i) => i !== mergeAt && i !== mergeAt + 1) : argv;
  const REPS = Number(rest[0] ?? 1);
  const MB = Number(rest[1] ?? 100);
  const OUT = rest[2] ?? 'bench/results/faulty-links.json';
  if (!(REPS >= 1) || !(MB > 0) || !['auto', 'kernel', 'release', 'queue'].includes(MERGE ?? '')) {
    throw new UsageError(
      'usage: faulty-links.js [repetitions>=1] [MB>0] [report.json] [--merge auto|kernel|release|queue]',
    );
  }

  const LINKS: LinkName[] = ['client', 'primary', 'secondary'];
  const IMPAIRMENTS: Array<[string, LinkShape]> = [
    ['loss 1%', { loss: 0.01 }],
    ['loss 5%', { loss: 0.05 }],
    ['dup 2% + reorder 5%', { duplicate: 0.02, reorder: 0.05 }],
  ];
  const everywhere = (s: LinkShape) => ({ client: s, primary: s, secondary: s });
  const MIXED: LinkShape = { loss: 0.01, duplicate: 0.01, reorder: 0.02 };

  const cases: FaultCase[] = [];
  for (const mode of ['get', 'put'] as const) {
    for (const link of LINKS)
      for (const [, s] of IMPAIRMENTS) cases.push({ links: { [link]: s }, mode, bytes: MB * 1e6 });
    cases.push({ links: everywhere({ loss: 0.01 }), mode, bytes: MB * 1e6 });
    cases.push({ links: everywhere(MIXED), mode, bytes: MB * 1e6 });
    for (const node of ['primary', 'secondary'] as const)
      cases.push({ links: everywhere(MIXED), mode, bytes: MB * 1e6, kill: { node, afterMs: 0 } });
  }

  interface Row {
    links: string;
    mode: string;
    kill: string;
    ok: boolean;
    ms: number;
    maxGapMs: number;
    impaired: { dropped: number; duplicated: number; delayed: number };
    retransmissions?: { primary: number; secondary: number; prefix: number };
    problems: string[];
  }

  const rows: Row[] = [];
  const total = cases.length * REPS;
  const started = Date.now();
  for (let rep = 0; rep < REPS; rep++) {
    for (const c of cases) {
      // A kill lands somewhere in the first ~third of an unshaped transfer.
      const run: FaultCase = c.kill ? { ...c, kill: { ...c.kill, afterMs: 100 + Math.floor(Math.random() * 400) } } : c;
      const r = await runFaultCase({
        ...run,
        seed: 60 + rows.length,
        ...(MERGE !== 'auto' ? { extraYaml: `merge: ${MERGE}\n` } : {}),
      });
      const row: Row = {
        links: describeLinks(c.links),
        mode: c.mode,
        kill: run.kill ? `${run.kill.node}@${run.kill.afterMs}ms` : '',
        ok: r.ok && (!run.kill || r.ms > run.kill.afterMs),
        ms: r.ms,
        maxGapMs: r.maxGapMs,
        impaired: r.impaired,
        retransmissions: r.retransmissions,
        problems: r.problems.slice(0, 5),
      };
      if (run.kill && r.ms <= run.kill.afterMs) row.problems.push('transfer ended before the kill');
      rows.push(row);
      process.stderr.write(`[${rows.length}/${total}] `);
      console.log(
        `${row.ok ? 'ok    ' : 'FAILED'} ${row.mode} ${row.links}${row.kill ? `, kill ${row.kill}` : ''}: ${row.ms} ms, longest gap ${row.maxGapMs} ms` +
          `, dropped/dup/delayed ${row.impaired.dropped}/${row.impaired.duplicated}/${row.impaired.delayed}${row.ok ? '' : ` — ${row.problems.join('; ')}`}`,
      );
    }
  }
  const ok = rows.filter((r) => r.ok).length;
  const gaps = rows.map((r) => r.maxGapMs).sort((a, b) => a - b);
  console.log(
    `\n${ok} of ${rows.length} transfers byte-exact, no RST (${MB} MB each, ${((Date.now() - started) / 60000).toFixed(1)} min); ` +
      `longest client-visible gap: median ${gaps[Math.floor(gaps.length / 2)]} ms, max ${gaps.at(-1)} ms`,
  );
  writeFileSync(
    OUT,
    JSON.stringify(
      { date: new Date().toISOString(), megabytes: MB, repetitions: REPS, ok, of: rows.length, rows },
      null,
      2,
    ),
  );
  console.log(`report: ${OUT}`);
  return ok !== rows.length ? 1 : 0;
}

runAsProgram(import.meta.url, main);
