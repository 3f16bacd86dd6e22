/**
 * The daemon's control socket: a Unix socket in the state directory (mode
 * 0600, root only) answering every connection with the daemon's status as one
 * JSON line. `tcpfo status` reads it. Nothing listens on the network for it.
 */
import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import type { ReportedStatus } from './status.js';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';

export function controlSocketPath(stateDir: string, instance: string, role: 'p' | 's'): string {
  return `${stateDir}/${instance}${role}.sock`;
}

/** A root-only Unix socket at `path` (a killed daemon's leftover replaced), each connection handed to `serve`. */
async function listenPrivate(path: string, serve: (sock: Socket) => void): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true });
  // A socket file left by a killed daemon.
  if (existsSync(path)) rmSync(path, { force: true });
  const server = createServer((sock) => {
    // A client that leaves before the answer is written (a health check such
    // as `nc -zU`, a `tcpfo status` that timed out) makes the write fail with
    // EPIPE or ECONNRESET: nothing to do about it, and never a reason to die.
    sock.on('error', () => sock.destroy());
    serve(sock);
  });
  server.on('error', () => {
    /* an accept error (EMFILE): the next client is served when it clears */
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

export async function startControl(path: string, status: () => unknown): Promise<Server> {
  return listenPrivate(path, (sock) => {
    let body: string;
    try {
      body = JSON.stringify(status());
    } catch (e) {
      body = JSON.stringify({ error: `status failed: ${(e as Error).message}` });
    }
    sock.end(body + '\n');
  });
}

export function stopControl(server: Server | undefined, path: string): void {
  server?.close();
  rmSync(path, { force: true });
}

type Asked<T> =
  { ok: true; value: T } | { ok: false; why: 'not-running' | 'permission-denied' | 'no-answer'; detail: string };

/** Connects to a daemon's socket, writes `request` (if any), and reads its one JSON answer. */
function ask<T>(path: string, request: string | null, timeoutMs: number, late = ''): Promise<Asked<T>> {
  return new Promise((resolve) => {
    if (!existsSync(path)) return resolve({ ok: false, why: 'not-running', detail: `no socket at ${path}` });
    const sock = createConnection(path);
    let buf = '';
    const t = setTimeout(() => {
      sock.destroy();
      resolve({ ok: false, why: 'no-answer', detail: `${path}: no answer within ${timeoutMs} ms${late}` });
    }, timeoutMs);
    if (request !== null) sock.on('connect', () => sock.write(request));
    sock.on('data', (d) => (buf += d.toString()));
    sock.on('end', () => {
      clearTimeout(t);
      try {
        resolve({ ok: true, value: JSON.parse(buf) as T });
      } catch {
        resolve({ ok: false, why: 'no-answer', detail: `${path}: an answer that is not JSON` });
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      if (e.code === 'EACCES' || e.code === 'EPERM')
        resolve({
          ok: false,
          why: 'permission-denied',
          detail: `${path}: permission denied (the socket is root's: run as root)`,
        });
      else if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT')
        resolve({
          ok: false,
          why: 'not-running',
          detail: `${path}: nothing listens (a daemon that was killed left it)`,
        });
      else resolve({ ok: false, why: 'no-answer', detail: `${path}: ${e.code ?? e.message}` });
    });
  });
}

export type StatusResult =
  | { ok: true; status: ReportedStatus }
  /** not-running: no socket, or nothing listens on it; permission-denied: the socket is root's (run as root); no-answer: it did not answer in time, or not in JSON. */
  | { ok: false; why: 'not-running' | 'permission-denied' | 'no-answer'; detail: string };

/** Reads a daemon's status, or why it cannot be read. */
export async function readStatus(path: string, timeoutMs = 2000): Promise<StatusResult> {
  // The daemon's own JSON: this version's shapes (the CLI and the daemon ship together).
  const r = await ask<ReportedStatus>(path, null, timeoutMs);
  return r.ok ? { ok: true, status: r.value } : r;
}

/**
 * The daemon's command socket (`tcpfo switchover`, `standby`, `unstandby`):
 * a Unix socket in the state directory, mode 0600, one JSON request line
 * in, one JSON answer line out. Nothing listens on the network for it.
 */
export function commandSocketPath(stateDir: string, instance: string): string {
  return `${stateDir}/${instance}.ctl`;
}

export const COMMANDS = ['switchover', 'standby', 'unstandby'] as const;
export type Command = (typeof COMMANDS)[number];
export interface CommandAnswer {
  ok: boolean;
  message: string;
}

/** A request line longer than this is refused (nothing we accept comes near it). */
const MAX_REQUEST = 1024;

export async function startCommands(path: string, handle: (cmd: Command) => Promise<CommandAnswer>): Promise<Server> {
  return listenPrivate(path, (sock) => {
    let buf = '';
    let done = false;
    const answer = (a: CommandAnswer) => {
      if (done) return;
      done = true;
      sock.end(JSON.stringify(a) + '\n');
    };
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.length > MAX_REQUEST) return answer({ ok: false, message: 'request too long' });
      const nl = buf.indexOf('\n');
      if (nl < 0 || done) return;
      let cmd: unknown;
      try {
        cmd = (JSON.parse(buf.slice(0, nl)) as { cmd?: unknown }).cmd;
      } catch {
        return answer({ ok: false, message: 'request is not JSON' });
      }
      if (!COMMANDS.includes(cmd as Command))
        return answer({ ok: false, message: `unknown command ${JSON.stringify(cmd)} (known: ${COMMANDS.join(', ')})` });
      handle(cmd as Command).then(answer, (e: unknown) =>
        answer({ ok: false, message: `failed: ${(e as Error).message}` }),
      );
    });
  });
}

export type CommandResult =
  | { ok: true; answer: CommandAnswer }
  | { ok: false; why: 'not-running' | 'permission-denied' | 'no-answer'; detail: string };

/** Sends one command to the daemon and waits for its answer. */
export async function sendCommand(path: string, cmd: Command, timeoutMs: number): Promise<CommandResult> {
  const r = await ask<CommandAnswer>(
    path,
    JSON.stringify({ cmd }) + '\n',
    timeoutMs,
    ' (the daemon may still complete it: see tcpfo status)',
  );
  return r.ok ? { ok: true, answer: r.value } : r;
}
