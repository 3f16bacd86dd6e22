/**
 * Runs the node's tools (`ip`, `iptables-nft`, `nft`) for the bridge.
 *
 * libpcap's packet sockets, raw-socket's raw socket and NFQUEUE's netlink
 * socket are opened by native code without close-on-exec: each child would
 * inherit them and keep a capture or a queue binding alive after the bridge
 * closed it (or was killed). So every descriptor above stderr is marked
 * close-on-exec before each child starts.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { native, type Native } from './native.js';

const execFileP = promisify(execFile);

export interface RunOptions {
  input?: string;
  timeoutMs: number;
  maxBuffer?: number;
  /** The child's environment (default: the bridge's). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Marks every descriptor above stderr close-on-exec; how many were not. -1
 * without the native addon (not built): then no native socket is open
 * either, and `tcpfo cleanup` still runs its tools.
 */
export function cloexecAll(): number {
  let addon: Native;
  try {
    addon = native();
  } catch {
    return -1;
  }
  return addon.cloexecAll();
}

/** What a failed run() says, for the caller's own error: the command line and its stderr (or the error). */
export function failureOf(cmd: string, args: readonly string[], e: unknown): string {
  const err = e as { stderr?: string; message: string };
  return `${[cmd, ...args].join(' ')}: ${(err.stderr ?? err.message).trim()}`;
}

/** Runs `cmd args` and resolves with its stdout; rejects as execFile does (with `stderr`; see failureOf). */
export async function run(cmd: string, args: readonly string[], opts: RunOptions): Promise<string> {
  cloexecAll();
  const p = execFileP(cmd, args, {
    encoding: 'utf8',
    timeout: opts.timeoutMs,
    maxBuffer: opts.maxBuffer ?? 16 << 20,
    ...(opts.env ? { env: opts.env } : {}),
  });
  if (opts.input !== undefined) p.child.stdin?.end(opts.input);
  return (await p).stdout;
}

/** The addon's part for descriptors (native/fds.cc). */
export interface RunNative {
  cloexecAll(): number;
}
