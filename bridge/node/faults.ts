/**
 * Faults a test can inject into a running daemon, to prove the liveness
 * guard: only when the daemon was started with TCPFO_TEST_FAULTS=1, on a Unix
 * socket of its own in the state directory (mode 0600). Never in production:
 * without the variable nothing listens.
 *
 *   deafen QUEUE   the queue stops reading its socket (as after the libuv
 *                  overrun bug: packets wait, heartbeats go on)
 *   stall MS       the event loop is held for MS milliseconds
 *
 * And one at start, from the environment (with TCPFO_TEST_FAULTS=1):
 * TCPFO_TEST_SETUP_STALL_MS holds the loop that long in the middle of setup,
 * as a busy machine's BPF verifier once did.
 */
import { chmodSync, existsSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

export type FaultHandlers = Record<string, (arg: string) => void>;

export function faultSocketPath(stateDir: string, instance: string, role: 'p' | 's'): string {
  return `${stateDir}/${instance}${role}.faults.sock`;
}

/** Listens for fault commands if TCPFO_TEST_FAULTS=1; otherwise does nothing. */
export function startFaults(path: string, handlers: FaultHandlers): Server | undefined {
  if (process.env.TCPFO_TEST_FAULTS !== '1') return undefined;
  if (existsSync(path)) rmSync(path, { force: true });
  const server = createServer((sock) => {
    sock.on('error', () => sock.destroy());
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const [cmd = '', arg = ''] = buf.slice(0, nl).trim().split(/\s+/);
      const h = handlers[cmd];
      // Answer first: a stall holds the loop, and the client waits for the word.
      sock.end(h ? 'ok\n' : `unknown fault ${cmd}\n`);
      if (h) setImmediate(() => h(arg));
    });
  });
  server.listen(path, () => chmodSync(path, 0o600));
  return server;
}

export function stopFaults(server: Server | undefined, path: string): void {
  if (!server) return;
  server.close();
  rmSync(path, { force: true });
}

/**
 * Holds the event loop for `ms` (the 'stall' fault): blocked, as in a stuck
 * system call, not spinning — a spinning bridge at its raised priority would
 * starve whatever else runs on the machine (other tests' bridges among them).
 */
export function holdLoop(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The setup's fault (TCPFO_TEST_SETUP_STALL_MS, tests only): holds the loop mid-setup. */
export function setupStall(): void {
  if (process.env.TCPFO_TEST_FAULTS !== '1') return;
  const ms = Number(process.env.TCPFO_TEST_SETUP_STALL_MS ?? 0);
  if (ms > 0) holdLoop(ms);
}
