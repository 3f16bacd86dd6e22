/**
 * What the heartbeats cost a node. Every interval the event loop plans the
 * next liveness.loop_stall_ms of heartbeats (bridge/detector/peer-link.ts):
 * it encodes one (encodeHeartbeat, HMAC-SHA256 over 48 bytes) and hands it
 * with a count to the heartbeat socket's thread, which signs each one it
 * sends (native/heartbeat.cc). It also checks each heartbeat the peer sends
 * (decodeHeartbeat). Prints the event loop's cost per interval and its share
 * of one core; the whole round of one heartbeat through a pair of sockets
 * on loopback (a plan of 2,000 at 1 ms: the process's CPU, both threads'
 * wake-ups and system calls included, which the thread paid before it signed
 * too); and what the loop paid when it signed every planned heartbeat
 * itself, every interval, as it once did.
 *
 *   npm run build && node dist/bench/micro/heartbeat-cost.js [interval_ms=20] [loop_stall_ms=1000] [N=200000]
 */
import { randomBytes } from 'node:crypto';
import { decodeHeartbeat, encodeHeartbeat, HEARTBEAT_LAYOUT, type Heartbeat } from '../../bridge/detector/heartbeat.js';
import { HeartbeatSocket } from '../../bridge/io/heartbeat-socket.js';
import { runAsProgram, UsageError } from '../../rig/main.js';

/** µs per call of `f`, over `n` calls after as many to warm up. */
function perCallUs(n: number, f: (i: number) => void): number {
  for (let i = 0; i < n; i++) f(i);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f(i);
  return Number(process.hrtime.bigint() - t0) / n / 1000;
}

/** The process's CPU µs per heartbeat while its thread signs and sends `n`, one per ms, to a socket of its own. */
async function threadUsPerHeartbeat(n: number): Promise<number> {
  const key = randomBytes(32);
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const signer = { key, ...HEARTBEAT_LAYOUT };
  const tx = new HeartbeatSocket('127.0.0.1', port, '127.0.0.2', port, () => {}, signer);
  const rx = new HeartbeatSocket('127.0.0.2', port, '127.0.0.1', port, () => {}, signer);
  try {
    const h: Heartbeat = { role: 'primary', seq: 1n, echo: 0n, from: 1, to: 2, nonce: 3n, echoNonce: 4n };
    const cpu0 = process.cpuUsage();
    tx.plan(encodeHeartbeat(h, key), n, 1);
    let got = 0;
    for (const end = Date.now() + 10 * n; got < n && Date.now() < end;) {
      await new Promise((r) => setTimeout(r, 50));
      for (const d of rx.take()) if (typeof decodeHeartbeat(d.msg, key) !== 'string') got++;
    }
    const cpu = process.cpuUsage(cpu0);
    if (got !== n) throw new Error(`${got} of ${n} heartbeats arrived valid`);
    return (cpu.user + cpu.system) / n;
  } finally {
    tx.close();
    rx.close();
  }
}

export async function main(args: string[]): Promise<number> {
  const [intervalMs, stallMs, n] = [Number(args[0] ?? 20), Number(args[1] ?? 1000), Number(args[2] ?? 200_000)];
  if (![intervalMs, stallMs, n].every((x) => Number.isInteger(x) && x > 0))
    throw new UsageError('usage: heartbeat-cost.js [interval_ms=20] [loop_stall_ms=1000] [N=200000]');
  const key = Buffer.alloc(32, 0x5a);
  const h: Heartbeat = {
    role: 'primary',
    seq: 1n,
    echo: 7n,
    from: 0xc0000201,
    to: 0xc0000202,
    nonce: 0x1234_5678_9abc_def1n,
    echoNonce: 0x0fed_cba9_8765_4321n,
  };
  const signUs = perCallUs(n, (i) => encodeHeartbeat({ ...h, seq: BigInt(i) }, key));
  const signed = encodeHeartbeat(h, key);
  let bad = 0;
  const checkUs = perCallUs(n, () => {
    if (typeof decodeHeartbeat(signed, key) === 'string') bad++;
  });
  if (bad) throw new Error(`${bad} heartbeats failed their check`);
  const perInterval = Math.ceil(stallMs / intervalMs) + 1;
  const perSecond = 1000 / intervalMs;
  const share = (us: number) => `${((us * perSecond) / 1e4).toFixed(3)} % of a core`;
  const threadUs = await threadUsPerHeartbeat(2000);
  console.log(
    `encode and sign one heartbeat in JS: ${signUs.toFixed(2)} µs; check one: ${checkUs.toFixed(2)} µs (${n} each)`,
  );
  console.log(
    `interval ${intervalMs} ms, ${perInterval} planned ahead (${stallMs} ms): the event loop encodes one per interval, ${share(signUs)}; checks the peer's, ${share(checkUs)}`,
  );
  console.log(
    `a heartbeat through a pair of sockets (the sending thread's wake-up, signature and sendto, the receiving thread's wake-up and read, the loop's check): ${threadUs.toFixed(1)} µs of the process's CPU (2000 at 1 ms on loopback), ${share(threadUs)} at one per interval`,
  );
  console.log(`signing all ${perInterval} in the event loop every interval, as before: ${share(signUs * perInterval)}`);
  return 0;
}

runAsProgram(import.meta.url, main);
