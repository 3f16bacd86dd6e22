/**
 * The entry of a bench or demo script: its arguments in, its exit status
 * out. The CLI (`tcpfo demo`, `tcpfo bench`, `tcpfo campaign`) imports the
 * script and calls its `main`; `node dist/bench/…/x.js args` runs it too.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export type ScriptMain = (args: string[]) => Promise<number>;

/** Bad arguments: the script's usage line. Exit status 2. */
export class UsageError extends Error {}

/** Runs `main` on the command line's arguments when the module at `url` is the program itself. */
export function runAsProgram(url: string, main: ScriptMain): void {
  const entry = process.argv[1];
  if (!entry || pathToFileURL(realpathSync(entry)).href !== url) return;
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    // The script's own header says what it does and how it is run.
    console.log(headerOf(readFileSync(realpathSync(entry), 'utf8')));
    return;
  }
  main(args).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(e instanceof UsageError ? e.message : e);
      process.exitCode = e instanceof UsageError ? 2 : 1;
    },
  );
}

/** The value after `name` in `args`, if any. */
export function optionValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** The text of a script's leading doc comment, without its frame. */
export function headerOf(src: string): string {
  const m = /\/\*\*([\s\S]*?)\*\//.exec(src);
  if (!m) return 'no description; see the script';
  return m[1]!
    .split('\n')
    .map((l) => l.replace(/^\s*\* ?/, ''))
    .join('\n')
    .trim();
}

/** The median of `xs` (the upper one of an even count; NaN for none), as the benches report it. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}
