/**
 * The heartbeat socket's thread signs what it sends (native/heartbeat.cc):
 * a plan of N heartbeats leaves one per interval, each the planned heartbeat
 * with the next sequence number, under an HMAC that the JS check
 * (detector/heartbeat.ts) accepts with the key and refuses without it. Real
 * UDP on loopback.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeHeartbeat, encodeHeartbeat, HEARTBEAT_LAYOUT } from '../../bridge/detector/heartbeat.js';
import { HeartbeatSocket } from '../../bridge/io/heartbeat-socket.js';

const open: HeartbeatSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

/** A sender on 127.0.0.1 and a receiver on 127.0.0.2, on one port. */
function pair(key: Buffer): { tx: HeartbeatSocket; rx: HeartbeatSocket } {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const signer = { key, ...HEARTBEAT_LAYOUT };
  const tx = new HeartbeatSocket('127.0.0.1', port, '127.0.0.2', port, () => {}, signer);
  const rx = new HeartbeatSocket('127.0.0.2', port, '127.0.0.1', port, () => {}, signer);
  open.push(tx, rx);
  return { tx, rx };
}

async function takeAtLeast(rx: HeartbeatSocket, n: number, ms: number): Promise<Buffer[]> {
  const got: Buffer[] = [];
  for (const end = Date.now() + ms; got.length < n && Date.now() < end;) {
    await new Promise((r) => setTimeout(r, 10));
    got.push(...rx.take().map((d) => d.msg));
  }
  return got;
}

describe('the heartbeat thread signs what it sends', () => {
  it('a plan of 5 leaves one per interval, sequence numbers counting up from the planned one, each valid under the key and only under it', async () => {
    const key = randomBytes(32);
    const { tx, rx } = pair(key);
    const planned = {
      role: 'secondary' as const,
      seq: 1_750_000_000_000_000n,
      echo: 42n,
      from: 0x7f000001,
      to: 0x7f000002,
      nonce: 0x1111_2222_3333_4445n,
      echoNonce: 0x5555_6666_7777_8889n,
    };
    tx.plan(encodeHeartbeat(planned, key), 5, 10);
    const got = await takeAtLeast(rx, 5, 5000);
    // The plan ran out: no sixth.
    await new Promise((r) => setTimeout(r, 60));
    got.push(...rx.take().map((d) => d.msg));
    expect(got).toHaveLength(5);
    expect(got.map((b) => decodeHeartbeat(b, key))).toEqual(
      [0n, 1n, 2n, 3n, 4n].map((k) => ({ ...planned, seq: planned.seq + k })),
    );
    expect(got.map((b) => decodeHeartbeat(b, randomBytes(32)))).toEqual(Array(5).fill('bad-mac'));
    expect(tx.stats.planned).toBe(0);
    expect(tx.sent().map((s) => s.seq)).toEqual([0n, 1n, 2n, 3n, 4n].map((k) => planned.seq + k));
  });

  it('a new plan takes the place of the one before', async () => {
    const key = randomBytes(32);
    const { tx, rx } = pair(key);
    const base = { role: 'primary' as const, echo: 0n, from: 1, to: 2, nonce: 3n, echoNonce: 0n };
    tx.plan(encodeHeartbeat({ ...base, seq: 1000n }, key), 3000, 10);
    tx.plan(encodeHeartbeat({ ...base, seq: 5000n, echo: 7n }, key), 2, 10);
    expect(tx.stats.planned).toBeLessThanOrEqual(2);
    const got = await takeAtLeast(rx, 3, 300);
    const seqs = got.map((b) => decodeHeartbeat(b, key)).map((h) => (typeof h === 'string' ? h : h.seq));
    // At most one of the first plan left before the second replaced it.
    expect(seqs.filter((s) => s === 5000n || s === 5001n)).toEqual([5000n, 5001n]);
    expect(seqs.length).toBeLessThanOrEqual(3);
  });

  it('the reading thread checks each heartbeat’s MAC under the key: right for a signed one, wrong for one signed under another key or altered, unchecked for other lengths', async () => {
    const key = randomBytes(32);
    const { tx, rx } = pair(key);
    const h = { role: 'primary' as const, seq: 1000n, echo: 0n, from: 1, to: 2, nonce: 3n, echoNonce: 0n };
    const altered = encodeHeartbeat(h, key);
    altered[20]! ^= 1;
    for (const msg of [encodeHeartbeat(h, key), encodeHeartbeat(h, randomBytes(32)), altered, Buffer.alloc(30)])
      tx.send(msg);
    const got: Array<{ msg: Buffer; macOk?: boolean }> = [];
    for (const end = Date.now() + 5000; got.length < 4 && Date.now() < end;)
      await new Promise((r) => setTimeout(r, 10)).then(() => got.push(...rx.take()));
    expect(got.map((d) => d.macOk)).toEqual([true, false, false, undefined]);
    // As the JS check says, and what the decoder makes of the thread's word.
    expect(got.slice(0, 3).map((d) => decodeHeartbeat(d.msg, key) !== 'bad-mac')).toEqual([true, false, false]);
    expect(decodeHeartbeat(got[1]!.msg, key, got[1]!.macOk)).toBe('bad-mac');
    expect(decodeHeartbeat(got[0]!.msg, key, got[0]!.macOk)).toEqual(h);
  });

  it('refuses a signer whose layout does not fit, and a planned heartbeat of another length', () => {
    const key = randomBytes(32);
    expect(
      () => new HeartbeatSocket('127.0.0.1', 1, '127.0.0.2', 1, () => {}, { ...HEARTBEAT_LAYOUT, key, macAt: 50 }),
    ).toThrow(/macAt \+ 32 == length/);
    const { tx } = pair(key);
    expect(() => tx.plan(Buffer.alloc(10), 1, 20)).toThrow(/configured length/);
  });
});
