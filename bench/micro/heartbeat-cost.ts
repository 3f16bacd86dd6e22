/**
 * What the heartbeats cost a node's event loop, no I/O: the time to sign one
 * heartbeat (encodeHeartbeat: HMAC-SHA256 over 52 bytes) and to check one
 * (decodeHeartbeat). Every interval the peer link signs the next
 * liveness.loop_stall_ms of heartbeats ahead (bridge/detector/peer-link.ts:
 * ceil(loop_stall_ms / interval_ms) + 1 of them, so that its thread goes on
 * sending through a stall of the loop), and it checks each heartbeat the
 * peer sends. Prints each, and their share of one core at those settings.
 * What the sending thread and the socket cost is the idle share
 * profile-bridges prints.
 *
 *   npm run build && node dist/bench/micro/heartbeat-cost.js [interval_ms=20] [loop_stall_ms=1000] [N=200000]
 */
import { decodeHeartbeat, encodeHeartbeat, type Heartbeat } from '../../bridge/detector/heartbeat.js';
import { runAsProgram, UsageError } from '../../rig/main.js';

/** µs per call of `f`, over `n` calls after as many to warm up. */
function perCallUs(n: number, f: (i: number) => void): number {
  for (let i = 0; i < n; i++) f(i);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f(i);
  return Number(process.hrtime.bigint() - t0) / n / 1000;
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
  const signShare = (signUs * perInterval * perSecond) / 1e4;
  const checkShare = (checkUs * perSecond) / 1e4;
  console.log(`sign one heartbeat: ${signUs.toFixed(2)} µs; check one: ${checkUs.toFixed(2)} µs (${n} each)`);
  console.log(
    `interval ${intervalMs} ms, signed ${stallMs} ms ahead: ${perInterval} signed per interval, ${(perInterval * perSecond).toFixed(0)} per second: ${signShare.toFixed(2)} % of a core; checking the peer's ${perSecond.toFixed(0)} per second: ${checkShare.toFixed(3)} %`,
  );
  return 0;
}

runAsProgram(import.meta.url, main);
