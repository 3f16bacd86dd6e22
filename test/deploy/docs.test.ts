/**
 * The README is the operator's: short enough to read; the table of log
 * lines it points to names every warning and error the bridges log, so a
 * line in the journal can be looked up. The repository speaks of the product, not of how its work was
 * organised.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../rig/dist.js';

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
/** The operator's table of log lines, linked from the README's Operate section. */
const LOG_LINES = readFileSync(join(REPO_ROOT, 'docs', 'log-lines.md'), 'utf8');

function files(dir: string, ext: RegExp, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (['node_modules', 'dist', 'build', '.git', 'results'].includes(name)) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, ext, out);
    else if (ext.test(name)) out.push(p);
  }
  return out;
}

/** The text of a call's arguments starting at `from` (just after its opening parenthesis). */
function callArgs(src: string, from: number): string {
  let depth = 1;
  let i = from;
  for (; i < src.length && depth > 0; i++) {
    if ('([{'.includes(src[i]!)) depth++;
    else if (')]}'.includes(src[i]!)) depth--;
  }
  return src.slice(from, i - 1);
}

/**
 * Every message the bridges log at warn or error level, and every rare event
 * the merger reports (logged at warn), as an operator looks it up: the start
 * of its first constant part of some length (template holes are the
 * variable parts), at most 24 characters.
 */
function loggedMessages(): Array<{ file: string; text: string }> {
  const out: Array<{ file: string; text: string }> = [];
  for (const file of files(join(REPO_ROOT, 'bridge'), /\.ts$/)) {
    const src = readFileSync(file, 'utf8');
    for (const m of src.matchAll(/\.(warn|error|event)\(/g)) {
      const args = callArgs(src, m.index! + m[0].length);
      const literals = [...args.matchAll(/'((?:[^'\\]|\\.)*)'|`((?:[^`\\]|\\.)*)`/g)].map((l) => l[1] ?? l[2]!);
      const msg = literals.at(-1);
      if (msg === undefined) continue;
      const constant = msg
        .split(/\$\{[^}]*\}/)
        .map((c) => c.trim())
        .find((c) => c.replace(/\s/g, '').length >= 8);
      if (constant) out.push({ file: relative(REPO_ROOT, file), text: constant.slice(0, 24) });
    }
  }
  return out;
}

describe('the README', () => {
  it('is at most 15 KB', () => {
    expect(Buffer.byteLength(README)).toBeLessThanOrEqual(15 * 1024);
  });

  it('points to the table of log lines, which explains every warning and error the bridges log', () => {
    expect(README).toContain('[docs/log-lines.md](docs/log-lines.md)');
    const msgs = loggedMessages();
    // The extraction finds them (and would find a new one): the takeover line among them.
    expect(msgs.map((m) => m.text)).toContain('took over the service ad');
    expect(msgs.length).toBeGreaterThan(30);
    const missing = msgs.filter((m) => !LOG_LINES.includes(m.text)).map((m) => `${m.file}: ${m.text}`);
    expect(missing).toEqual([]);
    // The native watchdog's line too.
    const native = /\\"msg\\":\\"(event loop stuck for)/.exec(readFileSync(join(REPO_ROOT, 'native', 'presence.cc'), 'utf8'));
    expect(native).not.toBeNull();
    expect(LOG_LINES).toContain(native![1]!);
  });

  it('names the two commands a newcomer runs, and both exist', () => {
    expect(README).toContain('bash scripts/setup-system.sh --dev && npm ci && npm run demo');
    expect(README).toMatch(/^npm test\b/m);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.demo).toBeDefined();
    expect(pkg.scripts.test).toBeDefined();
  });
});

describe('the repository', () => {
  it('speaks of the product, not of how its work was organised', () => {
    const offenders: string[] = [];
    for (const file of files(REPO_ROOT, /\.(ts|md|cc|c|ya?ml|sh|json|service|conf)$/)) {
      if (file.endsWith('package-lock.json') || file.endsWith('npm-shrinkwrap.json')) continue;
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/\b(stop \d+|this stop|stop's code|(this|the last|next) session)\b/gi)) offenders.push(`${relative(REPO_ROOT, file)}: ${m[0]}`);
    }
    // This file names the words it looks for.
    expect(offenders.filter((o) => !o.startsWith('test/deploy/docs.test.ts'))).toEqual([]);
  });
});
