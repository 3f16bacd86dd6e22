/**
 * Client for the demo server; prints one JSON line.
 *
 *   node demo-client.js get HOST PORT BYTES SEED   → {bytes, sha256, expected, ms, maxGapMs}
 *   node demo-client.js put HOST PORT BYTES SEED   → {bytes, sha256, reply, ms}
 *   node demo-client.js many HOST PORT BYTES N     → N parallel GETs (seeds 1..N): {ok, failed, errors, ms}
 *   node demo-client.js connect HOST PORT GAP N    → N sequential connects, GAP ms apart (0: back to back,
 *                                                    each while the previous one closes): {connectUs: [...]} (µs each)
 *   node demo-client.js msg HOST PORT 0 REPS       → per message size, median send and receive time (µs)
 *   node demo-client.js hold HOST PORT 0 N         → holds N idle connections open until SIGTERM
 *   node demo-client.js who HOST PORT 0 MS         → WHO, then a line echoed every 50 ms for MS ms:
 *                                                    {who, echoed, mismatched, error, ms}
 *   node demo-client.js echo HOST PORT 0 MS        → ECHO, then a line echoed every 50 ms for MS ms:
 *                                                    {echoed, mismatched, maxRttMs, error, ms}
 *   node demo-client.js connects HOST PORT GAP N   → N connects GAP ms apart, each given 1 s to complete
 *                                                    (then closed): {ok, failed, maxMs, errors}
 *   node demo-client.js abort HOST PORT 0 N        → N sequential ABORTs, each waiting up to 5 s for the
 *                                                    server's reset: {reset, other: [...], maxMs}
 *
 * maxGapMs: the longest time between two data arrivals (the stall a failover causes).
 *
 * TCPFO_DEMO_GATE=PATH:BYTES[,PATH:BYTES…] (get): once BYTES have arrived, the
 * client stops reading (its window closes, the server waits) and creates
 * PATH.reached; it reads on once PATH exists. A test so keeps a download alive across events
 * that take however long this machine takes (rig/pair.ts, Gate).
 */
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { patternChunks } from './pattern.js';

const [mode, host, portText, bytesText, seedText] = process.argv.slice(2);
const bytes = Number(bytesText);
const seed = Number(seedText ?? 1);
if (
  !['get', 'put', 'many', 'connect', 'connects', 'msg', 'hold', 'who', 'echo', 'abort'].includes(mode ?? '') ||
  !host ||
  !portText ||
  !Number.isFinite(bytes)
) {
  console.error('usage: demo-client get|put HOST PORT BYTES [SEED] | many HOST PORT BYTES N');
  process.exit(2);
}

const port = Number(portText);

/** Compares a received stream with the pattern as it arrives: where it first differs (−1: nowhere yet). */
class StreamCheck {
  firstDiff = -1;
  private readonly want: Iterator<Buffer>;
  private chunk: Buffer = Buffer.alloc(0);
  private at = 0;
  private offset = 0;
  constructor(size: number, patternSeed: number) {
    this.want = patternChunks(size, patternSeed)[Symbol.iterator]();
  }
  feed(d: Buffer): void {
    for (let i = 0; i < d.length && this.firstDiff < 0;) {
      if (this.at === this.chunk.length) {
        const n = this.want.next();
        if (n.done) {
          this.firstDiff = this.offset + i; // past the end
          break;
        }
        this.chunk = n.value;
        this.at = 0;
      }
      const k = Math.min(d.length - i, this.chunk.length - this.at);
      if (!d.subarray(i, i + k).equals(this.chunk.subarray(this.at, this.at + k))) {
        let j = 0;
        while (d[i + j] === this.chunk[this.at + j]) j++;
        this.firstDiff = this.offset + i + j;
        break;
      }
      i += k;
      this.at += k;
    }
    this.offset += d.length;
  }
}
const hrUs = () => Number(process.hrtime.bigint() / 1000n);

if (mode === 'connect') {
  const out: number[] = [];
  for (let i = 0; i < seed; i++) {
    const t = hrUs();
    await new Promise<void>((resolve, reject) => {
      const s = connect({ host, port }, () => {
        out.push(hrUs() - t);
        s.end('ECHO\n');
        s.destroy();
        resolve();
      });
      s.on('error', reject);
    });
    if (bytes > 0) await new Promise((r) => setTimeout(r, bytes));
  }
  process.stdout.write(JSON.stringify({ connectUs: out }) + '\n');
  process.exit(0);
}

if (mode === 'msg') {
  const sizes = [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576];
  const one = (cmd: 'GET' | 'PUT', size: number) =>
    new Promise<number>((resolve, reject) => {
      const s = connect({ host, port });
      s.setNoDelay(true);
      let t0 = 0;
      let got = 0;
      s.on('connect', () => {
        t0 = hrUs();
        if (cmd === 'GET') s.write(`GET ${size} 1\n`);
        else {
          const body = Buffer.alloc(size, 0x61);
          s.write(Buffer.concat([Buffer.from(`PUT ${size}\n`), body]));
        }
      });
      s.on('data', (d: Buffer) => (got += d.length));
      s.on('end', () => {
        s.destroy();
        resolve(hrUs() - t0);
      });
      s.on('error', reject);
      s.setTimeout(15_000, () => {
        s.destroy();
        reject(new Error(`${cmd} ${size}: no progress for 15 s after ${got} bytes`));
      });
    });
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const result: Array<{ size: number; sendUs: number; receiveUs: number }> = [];
  for (const size of sizes) {
    const send: number[] = [];
    const recv: number[] = [];
    for (let i = 0; i < seed; i++) {
      send.push(await one('PUT', size));
      recv.push(await one('GET', size));
    }
    result.push({ size, sendUs: median(send), receiveUs: median(recv) });
  }
  process.stdout.write(JSON.stringify({ messages: result }) + '\n');
  process.exit(0);
}

if (mode === 'connects') {
  const tries: Array<Promise<string | number>> = [];
  for (let i = 0; i < seed; i++) {
    tries.push(
      new Promise((resolve) => {
        const t = performance.now();
        const s = connect({ host, port });
        const timer = setTimeout(() => {
          s.destroy();
          resolve('not connected within 1 s');
        }, 1000);
        s.on('connect', () => {
          clearTimeout(timer);
          s.end();
          resolve(performance.now() - t);
        });
        s.on('error', (e: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          resolve(e.code ?? e.message);
        });
      }),
    );
    await new Promise((r) => setTimeout(r, bytes));
  }
  const results = await Promise.all(tries);
  const times = results.filter((r): r is number => typeof r === 'number');
  const errors = results.filter((r): r is string => typeof r === 'string');
  process.stdout.write(
    JSON.stringify({
      ok: times.length,
      failed: errors.length,
      maxMs: Math.round(Math.max(0, ...times)),
      errors: errors.slice(0, 10),
    }) + '\n',
  );
  process.exit(0);
}

if (mode === 'abort') {
  let reset = 0;
  let maxMs = 0;
  const other: string[] = [];
  for (let i = 0; i < seed; i++) {
    const t = Date.now();
    const outcome = await new Promise<string>((resolve) => {
      const s = connect({ host, port }, () => s.write('ABORT\n'));
      s.setTimeout(5000, () => {
        s.destroy();
        resolve('no reset within 5 s');
      });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      s.on('end', () => resolve('FIN'));
    });
    maxMs = Math.max(maxMs, Date.now() - t);
    if (outcome === 'ECONNRESET') reset++;
    else other.push(outcome);
  }
  process.stdout.write(JSON.stringify({ reset, other: other.slice(0, 10), maxMs }) + '\n');
  process.exit(0);
}

if (mode === 'hold') {
  const socks: ReturnType<typeof connect>[] = [];
  for (let i = 0; i < seed; i++) {
    // Progress, so that a caller that gives up can tell how far it came.
    if (i > 0 && i % 1000 === 0) process.stdout.write(JSON.stringify({ connected: i }) + '\n');
    await new Promise<void>((resolve, reject) => {
      const s = connect({ host, port }, () => {
        s.write('ECHO\n');
        resolve();
      });
      s.on('error', reject);
      socks.push(s);
    });
  }
  process.stdout.write(JSON.stringify({ holding: socks.length }) + '\n');
  process.on('SIGTERM', () => {
    for (const s of socks) s.destroy();
    process.exit(0);
  });
  setInterval(() => {}, 1 << 30);
  await new Promise(() => {}); // hold until SIGTERM; the get/put code below never runs
}

if (mode === 'who' || mode === 'echo') {
  // who: the server's non-deterministic greeting, then echoes: after a
  // failover either the echoes go on or the connection ends — never other
  // bytes. echo: the echoes alone (deterministic), with the slowest round trip.
  const t0 = Date.now();
  const result = await new Promise<Record<string, unknown>>((resolve) => {
    let buf = '';
    let who: string | null = null;
    let sent = 0;
    let echoed = 0;
    let mismatched = 0;
    let maxRttMs = 0;
    const sentAt: number[] = [];
    let timer: NodeJS.Timeout | undefined;
    const ping = () => {
      timer = setInterval(() => {
        if (Date.now() - t0 > seed) return done();
        sentAt[sent] = performance.now();
        s.write(`ping ${sent++}\n`);
      }, 50);
    };
    const s = connect({ host, port }, () => {
      s.write(mode === 'who' ? 'WHO\n' : 'ECHO\n');
      if (mode === 'echo') ping();
    });
    const done = (error?: string) => {
      clearInterval(timer);
      s.destroy();
      resolve({
        ...(mode === 'who' ? { who } : { maxRttMs: Math.round(maxRttMs) }),
        echoed,
        mismatched,
        sent,
        error,
        ms: Date.now() - t0,
      });
    };
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (mode === 'who' && who === null) {
          who = line;
          ping();
        } else if (line === `ping ${echoed}`) {
          maxRttMs = Math.max(maxRttMs, performance.now() - sentAt[echoed]!);
          echoed++;
        } else mismatched++;
      }
    });
    s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    s.on('end', () => done('closed by the server'));
  });
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

if (mode === 'many') {
  const n = seed;
  const t0 = Date.now();
  const one = (i: number) =>
    new Promise<string | null>((resolve) => {
      const check = new StreamCheck(bytes, i);
      let got = 0;
      const s = connect({ host, port: Number(portText) }, () => s.write(`GET ${bytes} ${i}\n`));
      s.on('data', (d: Buffer) => {
        check.feed(d);
        got += d.length;
      });
      s.on('error', (e) => resolve(`#${i} (port ${s.localPort}): ${e.message}`));
      s.on('end', () =>
        resolve(
          got === bytes && check.firstDiff < 0
            ? null
            : `#${i} (port ${s.localPort}): ${got} bytes, ${check.firstDiff < 0 ? 'cut short' : `first differing at ${check.firstDiff}`}`,
        ),
      );
      s.setTimeout(60_000, () => {
        resolve(`#${i} (port ${s.localPort}): timeout after ${got} bytes${s.connecting ? ', never connected' : ''}`);
        s.destroy();
      });
    });
  const results = await Promise.all(Array.from({ length: n }, (_, i) => one(i + 1)));
  const errors = results.filter((r): r is string => r !== null);
  process.stdout.write(
    JSON.stringify({ ok: n - errors.length, failed: errors.length, errors: errors.slice(0, 10), ms: Date.now() - t0 }) +
      '\n',
  );
  process.exit(errors.length ? 1 : 0);
}

function expected(): string {
  const h = createHash('sha256');
  for (const c of patternChunks(bytes, seed)) h.update(c);
  return h.digest('hex');
}

const check = new StreamCheck(bytes, seed);

/** The gates still ahead, nearest first. */
const gates = (process.env.TCPFO_DEMO_GATE ?? '')
  .split(',')
  .map((g) => /^(.+):(\d+)$/.exec(g))
  .filter((m): m is RegExpExecArray => m !== null)
  .map((m) => ({ path: m[1]!, at: Number(m[2]) }))
  .sort((a, b) => a.at - b.at);
let gated = false;
/** Past a gate's byte count: stop reading until the gate's file exists. */
function gate(): void {
  if (gated || !gates.length || got < gates[0]!.at) return;
  const { path } = gates.shift()!;
  gated = true;
  sock.pause();
  writeFileSync(`${path}.reached`, `${got}\n`);
  const wait = setInterval(() => {
    if (!existsSync(path)) return;
    clearInterval(wait);
    gated = false;
    last = Date.now(); // the pause is the test's, not a stall
    sock.resume();
    gate(); // the next gate may be passed already
  }, 20);
}

const t0 = Date.now();
const sock = connect({ host, port: Number(portText) });
sock.setNoDelay(true);
const h = createHash('sha256');
let got = 0;
let last = 0;
let maxGapMs = 0;
let reply = '';
let connectMs = 0;
let localPort: number | undefined;
sock.on('connect', async () => {
  connectMs = Date.now() - t0;
  localPort = sock.localPort;
  last = Date.now();
  if (mode === 'get') {
    sock.write(`GET ${bytes} ${seed}\n`);
    return;
  }
  sock.write(`PUT ${bytes}\n`);
  // Upload progress: the kernel takes more of our bytes as the server's ACKs
  // free the socket buffer; the longest pause between two accepted chunks is
  // the stall the client sees.
  const onFlushed = () => {
    const now = Date.now();
    if (now - last > maxGapMs) maxGapMs = now - last;
    last = now;
  };
  for (const c of patternChunks(bytes, seed)) {
    if (!sock.write(c, onFlushed)) await new Promise((r) => sock.once('drain', r));
  }
});
sock.on('data', (d: Buffer) => {
  const now = Date.now();
  if (mode === 'get') {
    if (now - last > maxGapMs) maxGapMs = now - last;
    last = now;
    h.update(d);
    check.feed(d);
    got += d.length;
    gate();
  } else reply += d.toString();
});
sock.on('error', (e) => {
  process.stdout.write(
    JSON.stringify({ error: e.message, bytes: got, firstDiff: check.firstDiff, localPort, ms: Date.now() - t0 }) + '\n',
  );
  process.exit(1);
});
sock.on('end', () => {
  const ms = Date.now() - t0;
  if (mode === 'get') {
    process.stdout.write(
      JSON.stringify({
        bytes: got,
        sha256: h.digest('hex'),
        expected: expected(),
        firstDiff: check.firstDiff,
        localPort,
        ms,
        connectMs,
        maxGapMs,
      }) + '\n',
    );
  } else {
    process.stdout.write(
      JSON.stringify({ bytes, sha256: expected(), reply: reply.trim(), localPort, ms, connectMs, maxGapMs }) + '\n',
    );
  }
  sock.end();
});
