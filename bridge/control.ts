/**
 * The daemon's control socket: a Unix socket in the state directory (mode
 * 0600, root only) answering every connection with the daemon's status as one
 * JSON line. `tcpfo status` reads it. Nothing listens on the network for it.
 */
import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { dirname } from 'node:path';

export function controlSocketPath(stateDir: string, instance: string, role: 'p' | 's'): string {
  return `${stateDir}/${instance}${role}.sock`;
}

export async function startControl(path: string, status: () => unknown): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true });
  // A socket file left by a killed daemon.
  if (existsSync(path)) rmSync(path, { force: true });
  const server = createServer((sock) => {
    // A client that leaves before the answer is written (a health check such
    // as `nc -zU`, a `tcpfo status` that timed out) makes the write fail with
    // EPIPE or ECONNRESET: nothing to do about it, and never a reason to die.
    sock.on('error', () => sock.destroy());
    let body: string;
    try {
      body = JSON.stringify(status());
    } catch (e) {
      body = JSON.stringify({ error: `status failed: ${(e as Error).message}` });
    }
    sock.end(body + '\n');
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

export function stopControl(server: Server | undefined, path: string): void {
  server?.close();
  rmSync(path, { force: true });
}

export type StatusResult =
  | { ok: true; status: Record<string, unknown> }
  /** not-running: no socket, or nothing listens on it; permission-denied: the socket is root's (run as root); no-answer: it did not answer in time, or not in JSON. */
  | { ok: false; why: 'not-running' | 'permission-denied' | 'no-answer'; detail: string };

/** Reads a daemon's status, or why it cannot be read. */
export function readStatus(path: string, timeoutMs = 2000): Promise<StatusResult> {
  return new Promise((resolve) => {
    if (!existsSync(path)) return resolve({ ok: false, why: 'not-running', detail: `no control socket at ${path}` });
    const sock = createConnection(path);
    let buf = '';
    const t = setTimeout(() => {
      sock.destroy();
      resolve({ ok: false, why: 'no-answer', detail: `${path}: no answer within ${timeoutMs} ms` });
    }, timeoutMs);
    sock.on('data', (d) => (buf += d.toString()));
    sock.on('end', () => {
      clearTimeout(t);
      try {
        resolve({ ok: true, status: JSON.parse(buf) as Record<string, unknown> });
      } catch {
        resolve({ ok: false, why: 'no-answer', detail: `${path}: an answer that is not JSON` });
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      if (e.code === 'EACCES' || e.code === 'EPERM') resolve({ ok: false, why: 'permission-denied', detail: `${path}: permission denied (the control socket is root's: run as root)` });
      else if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT') resolve({ ok: false, why: 'not-running', detail: `${path}: nothing listens (a daemon that was killed left it)` });
      else resolve({ ok: false, why: 'no-answer', detail: `${path}: ${e.code ?? e.message}` });
    });
  });
}
