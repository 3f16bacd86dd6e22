/**
 * Many idle connections to a redis server, for the scale bench: opens N
 * connections (at most 256 connects in flight), PINGs each once, and prints
 * {opened, failed, ms, perSecond}. Then, for each line "ping" on stdin, PINGs
 * every connection again and prints, once all have answered or failed (or
 * `timeoutMs` passed), {answered, failed, lost, lastMs, p50Ms, p99Ms}: how
 * long until the last answer, from the line. "ping K" PINGs one connection in
 * K only (the first, the K+1st, …): a sample across them all; "ping K AT"
 * times it from AT (ms since the epoch: the moment a node was killed), not
 * from the line. "busy MS" opens one more
 * connection and PINGs on it back to back for MS ms, beside the idle ones:
 * {roundTrips, p50Us, p99Us}. "end" closes them all and exits.
 *
 *   node idle-client.js HOST PORT N [TIMEOUT_MS=30000]
 */
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

const [host, portText, nText, timeoutText] = process.argv.slice(2);
const port = Number(portText);
const N = Number(nText);
const timeoutMs = Number(timeoutText ?? 30_000);
if (!host || !Number.isInteger(port) || !Number.isInteger(N) || N < 1) {
  console.error('usage: idle-client HOST PORT N [TIMEOUT_MS]');
  process.exit(2);
}

interface Conn {
  sock: Socket;
  /** Called with true on +PONG, false on an error or close; once per PING. */
  waiting: ((ok: boolean) => void) | null;
  dead: boolean;
}

const conns: Conn[] = [];

function ping(c: Conn): Promise<boolean> {
  if (c.dead) return Promise.resolve(false);
  return new Promise((resolve) => {
    c.waiting = resolve;
    c.sock.write('PING\r\n');
  });
}

function open(): Promise<Conn | null> {
  return new Promise((resolve) => {
    const sock = connect({ host, port, noDelay: true });
    const c: Conn = { sock, waiting: null, dead: false };
    let buf = '';
    const fail = () => {
      if (c.dead) return;
      c.dead = true;
      const w = c.waiting;
      c.waiting = null;
      w?.(false);
    };
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      while (buf.includes('\r\n')) {
        const line = buf.slice(0, buf.indexOf('\r\n'));
        buf = buf.slice(line.length + 2);
        const w = c.waiting;
        c.waiting = null;
        w?.(line === '+PONG');
      }
    });
    sock.on('error', fail);
    sock.on('close', fail);
    sock.once('connect', () => resolve(c));
    sock.once('error', () => resolve(null));
  });
}

async function openAll(): Promise<void> {
  const t0 = performance.now();
  let failed = 0;
  let next = 0;
  const worker = async () => {
    while (next < N) {
      next++;
      const c = await open();
      if (c && (await ping(c))) conns.push(c);
      else {
        failed++;
        c?.sock.destroy();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(256, N) }, worker));
  const ms = performance.now() - t0;
  process.stdout.write(
    JSON.stringify({
      opened: conns.length,
      failed,
      ms: Math.round(ms),
      perSecond: Math.round((conns.length / ms) * 1000),
    }) + '\n',
  );
}

async function pingAll(every = 1, fromEpochMs?: number): Promise<void> {
  const t0 = performance.now() - (fromEpochMs === undefined ? 0 : Math.max(0, Date.now() - fromEpochMs));
  const which = conns.filter((_, i) => i % every === 0);
  const times: number[] = [];
  let failed = 0;
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
  const all = Promise.all(
    which.map(async (c) => {
      if (await ping(c)) times.push(performance.now() - t0);
      else failed++;
    }),
  );
  await Promise.race([all, timer]);
  times.sort((a, b) => a - b);
  const at = (q: number) =>
    times.length ? Math.round(times[Math.min(times.length - 1, Math.floor(q * times.length))]!) : null;
  process.stdout.write(
    JSON.stringify({
      answered: times.length,
      failed,
      lost: which.length - times.length - failed,
      lastMs: times.length ? Math.round(times.at(-1)!) : null,
      p50Ms: at(0.5),
      p99Ms: at(0.99),
    }) + '\n',
  );
}

/** One more connection, busy beside the idle ones: PING after PING for `ms`; the round trips in µs. */
async function busy(ms: number): Promise<void> {
  const c = await open();
  const rtts: number[] = [];
  if (c) {
    for (const end = performance.now() + ms; performance.now() < end;) {
      const t = performance.now();
      if (!(await ping(c))) break;
      rtts.push((performance.now() - t) * 1000);
    }
    c.sock.destroy();
  }
  rtts.sort((a, b) => a - b);
  const at = (q: number) =>
    rtts.length ? Math.round(rtts[Math.min(rtts.length - 1, Math.floor(q * rtts.length))]!) : null;
  process.stdout.write(JSON.stringify({ roundTrips: rtts.length, p50Us: at(0.5), p99Us: at(0.99) }) + '\n');
}

await openAll();
const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  const [cmd, arg, from] = line.trim().split(/\s+/);
  if (cmd === 'ping') await pingAll(Math.max(1, Number(arg) || 1), from === undefined ? undefined : Number(from));
  else if (cmd === 'busy') await busy(Number(arg) || 2000);
  else if (cmd === 'end') break;
}
for (const c of conns) c.sock.destroy();
process.exit(0);
