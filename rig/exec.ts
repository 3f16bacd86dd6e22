/** Running commands for the rig: promise-based, with captured output and a clear error. */
import { execFile, execFileSync } from 'node:child_process';
import { slow } from './slow.js';

export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly argv: readonly string[],
    readonly code: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`command failed (exit ${code}): ${argv.join(' ')}\n${stderr.trim()}`);
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Resolve with the exit code instead of rejecting on non-zero exit. */
  allowFail?: boolean;
  timeoutMs?: number;
  input?: string;
}

export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new TypeError('empty command');
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: slow(opts.timeoutMs ?? 30_000), maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        if (err && !opts.allowFail) reject(new CommandError(argv, code, stdout, stderr));
        else resolve({ code: code ?? -1, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Synchronous run for exit handlers; never throws, returns success. */
export function runSync(argv: readonly string[]): boolean {
  const [cmd, ...args] = argv;
  if (!cmd) return false;
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}
