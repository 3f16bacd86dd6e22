/**
 * Client for the demo server; prints one JSON line.
 *
 *   node demo-client.js get HOST PORT BYTES SEED   → {bytes, sha256, expected, ms, maxGapMs}
 *   node demo-client.js put HOST PORT BYTES SEED   → {bytes, sha256, reply, ms}
 *   node demo-client.js many HOST PORT BYTES N     → N parallel GETs (seeds 1..N): {ok, failed, errors, ms}
 *
 * maxGapMs: the longest time between two data arrivals (the stall a failover causes).
 */
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { patternChunks } from './pattern.js';

const [mode, host, portText, bytesText, seedText] = process.argv.slice(2);
const bytes = Number(bytesText);
const seed = Number(seedText ?? 1);
if ((mode !== 'get' && mode !== 'put' && mode !== 'many') || !host || !portText || !Number.isFinite(bytes)) {
  console.error('usage: demo-client get|put HOST PORT BYTES [SEED] | many HOST PORT BYTES N');
  process.exit(2);
}

if (mode === 'many') {
  const n = seed;
  const t0 = Date.now();
  const one = (i: number) =>
    new Promise<string | null>((resolve) => {
      const want = createHash('sha256');
      for (const c of patternChunks(bytes, i)) want.update(c);
      const h = createHash('sha256');
      let got = 0;
      const s = connect({ host, port: Number(portText) }, () => s.write(`GET ${bytes} ${i}\n`));
      s.on('data', (d: Buffer) => {
        h.update(d);
        got += d.length;
      });
      s.on('error', (e) => resolve(`#${i}: ${e.message}`));
      s.on('end', () => resolve(got === bytes && h.digest('hex') === want.digest('hex') ? null : `#${i}: ${got} bytes, content differs`));
      s.setTimeout(60_000, () => {
        s.destroy();
        resolve(`#${i}: timeout after ${got} bytes`);
      });
    });
  const results = await Promise.all(Array.from({ length: n }, (_, i) => one(i + 1)));
  const errors = results.filter((r): r is string => r !== null);
  process.stdout.write(JSON.stringify({ ok: n - errors.length, failed: errors.length, errors: errors.slice(0, 10), ms: Date.now() - t0 }) + '\n');
  process.exit(errors.length ? 1 : 0);
}

function expected(): string {
  const h = createHash('sha256');
  for (const c of patternChunks(bytes, seed)) h.update(c);
  return h.digest('hex');
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
sock.on('connect', async () => {
  connectMs = Date.now() - t0;
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
    got += d.length;
  } else reply += d.toString();
});
sock.on('error', (e) => {
  process.stdout.write(JSON.stringify({ error: e.message, bytes: got, ms: Date.now() - t0 }) + '\n');
  process.exit(1);
});
sock.on('end', () => {
  const ms = Date.now() - t0;
  if (mode === 'get') {
    process.stdout.write(JSON.stringify({ bytes: got, sha256: h.digest('hex'), expected: expected(), ms, connectMs, maxGapMs }) + '\n');
  } else {
    process.stdout.write(JSON.stringify({ bytes, sha256: expected(), reply: reply.trim(), ms, connectMs, maxGapMs }) + '\n');
  }
  sock.end();
});
