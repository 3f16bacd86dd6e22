/**
 * Request/answer clients for bench/figures/interactive.ts; each prints one JSON line.
 *
 *   node rr-client.js echo HOST PORT SIZE N
 *       N round trips of SIZE bytes over one connection to the demo server's
 *       ECHO: {rttUs: [...]} (each from the first byte written to the last read)
 *   node rr-client.js echo-after HOST PORT SIZE N DELAY_MS
 *       the same, the connection opened DELAY_MS before the round trips
 *       (a connection that lives across an event, a failover)
 *   node rr-client.js mixed HOST PORT SMALL LARGE N
 *       N rounds over one connection to ECHO, each of nine round trips of SMALL
 *       bytes and one of LARGE: {smallUs: [...], largeUs: [...]}
 *   node rr-client.js memcached HOST PORT SECONDS
 *       set + get pairs of a 100-byte value over one connection for SECONDS
 *       (memcached's text protocol, each answer checked): {ops, errors, seconds,
 *       maxGapMs (the longest wait for a set+get pair)}
 */
import { connect, type Socket } from 'node:net';

const [mode, host, portText, a, b] = process.argv.slice(2);
const port = Number(portText);

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: host!, port, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Reads a socket's bytes by count or up to a marker, one request at a time. */
class Reader {
  private buf: Buffer = Buffer.alloc(0);
  private want: { n: number } | { marker: Buffer } | null = null;
  private done: ((b: Buffer) => void) | null = null;
  constructor(sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.check();
    });
  }
  /** The next `n` bytes. */
  read(n: number): Promise<Buffer> {
    return this.request({ n });
  }
  /** Up to and including the first occurrence of `marker`. */
  until(marker: string): Promise<Buffer> {
    return this.request({ marker: Buffer.from(marker) });
  }
  private request(want: { n: number } | { marker: Buffer }): Promise<Buffer> {
    return new Promise((resolve) => {
      this.want = want;
      this.done = resolve;
      this.check();
    });
  }
  private check(): void {
    const w = this.want;
    if (!w || !this.done) return;
    let end: number;
    if ('n' in w) end = this.buf.length >= w.n ? w.n : -1;
    else {
      const at = this.buf.indexOf(w.marker);
      end = at < 0 ? -1 : at + w.marker.length;
    }
    if (end < 0) return;
    const out = this.buf.subarray(0, end);
    this.buf = this.buf.subarray(end);
    const d = this.done;
    this.want = null;
    this.done = null;
    d(out);
  }
}

async function echo(size: number, n: number, delayMs = 0): Promise<void> {
  const sock = await open();
  const r = new Reader(sock);
  sock.write('ECHO\n');
  if (delayMs > 0) await new Promise((res) => setTimeout(res, delayMs));
  const msg = Buffer.alloc(size, 0x61);
  const rttUs: number[] = [];
  // A few round trips first: the connection's own start (slow start, the first segments) is not what is measured.
  for (let i = 0; i < n + 5; i++) {
    const t0 = process.hrtime.bigint();
    sock.write(msg);
    const got = await r.read(size);
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    if (!got.equals(msg)) throw new Error(`echo ${i}: wrong bytes`);
    if (i >= 5) rttUs.push(Math.round(us));
  }
  sock.end();
  process.stdout.write(JSON.stringify({ rttUs }) + '\n');
}

async function mixed(small: number, large: number, rounds: number): Promise<void> {
  const sock = await open();
  const r = new Reader(sock);
  sock.write('ECHO\n');
  const smallUs: number[] = [];
  const largeUs: number[] = [];
  // The first round warms the connection up, not measured.
  for (let i = 0; i < (rounds + 1) * 10; i++) {
    const big = i % 10 === 9;
    const msg = Buffer.alloc(big ? large : small, 0x61 + (i % 26));
    const t0 = process.hrtime.bigint();
    sock.write(msg);
    const got = await r.read(msg.length);
    const us = Math.round(Number(process.hrtime.bigint() - t0) / 1000);
    if (!got.equals(msg)) throw new Error(`round trip ${i}: wrong bytes`);
    if (i >= 10) (big ? largeUs : smallUs).push(us);
  }
  sock.end();
  process.stdout.write(JSON.stringify({ smallUs, largeUs }) + '\n');
}

async function memcached(seconds: number): Promise<void> {
  const sock = await open();
  const r = new Reader(sock);
  const value = Buffer.alloc(100, 0x76);
  let ops = 0;
  let errors = 0;
  // The longest wait for one answer (a failover's or a switchover's stall).
  let maxGapMs = 0;
  let last = performance.now();
  const end = Date.now() + seconds * 1000;
  for (let i = 0; Date.now() < end; i++) {
    const key = `k${i % 1000}`;
    sock.write(Buffer.concat([Buffer.from(`set ${key} 0 0 ${value.length}\r\n`), value, Buffer.from('\r\n')]));
    if ((await r.until('\r\n')).toString() !== 'STORED\r\n') errors++;
    sock.write(`get ${key}\r\n`);
    const got = await r.until('END\r\n');
    if (!got.includes(value)) errors++;
    ops += 2;
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
  }
  sock.end();
  process.stdout.write(JSON.stringify({ ops, errors, seconds, maxGapMs: Math.round(maxGapMs * 10) / 10 }) + '\n');
}

async function main(): Promise<void> {
  if (mode === 'echo') return echo(Number(a), Number(b));
  if (mode === 'echo-after') return echo(Number(a), Number(b), Number(process.argv[7]));
  if (mode === 'memcached') return memcached(Number(a));
  if (mode === 'mixed') return mixed(Number(a), Number(b), Number(process.argv[7]));
  console.error(
    'usage: rr-client echo HOST PORT SIZE N | echo-after HOST PORT SIZE N DELAY_MS | mixed HOST PORT SMALL LARGE N | memcached HOST PORT SECONDS',
  );
  process.exit(2);
}

main().catch((e: unknown) => {
  process.stdout.write(JSON.stringify({ error: (e as Error).message }) + '\n');
  process.exit(1);
});
