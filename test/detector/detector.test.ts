/** The failure detector and the heartbeat codec: pure, time passed in. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ip6Addr } from '../../net/addr.js';
import { Detector, GRACE_TIMEOUTS } from '../../bridge/detector/detector.js';
import {
  decodeHeartbeat,
  decodeNotice,
  decodeSwitch,
  encodeHeartbeat,
  encodeNotice,
  encodeSwitch,
  HEARTBEAT_LEN,
  isNotice,
  isSwitchMessage,
  NOTICE_MAX_ENTRIES,
  NOTICE_MAX_ENTRY_BYTES,
  noticeParts,
  SeqClock,
  SWITCH_MAX_REASON,
  type Heartbeat,
  type SwitchKind,
} from '../../bridge/detector/heartbeat.js';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
/** We are S (192.0.2.2), the peer is P (192.0.2.1). */
const S = 0xc0000202;
const P = 0xc0000201;
const NONCE_S = 0x5151n;
const NONCE_P = 0x7070n;
const cfg = { intervalMs: 20, timeoutMs: 100, startupGraceMs: 1000, self: S, peer: P, nonce: NONCE_S };
type Role = 'primary' | 'secondary' | 'alone';
/** A heartbeat from P to us, echoing our nonce (as the live peer sends once it heard us). */
const hb = (seq: bigint, key = KEY, role: Role = 'primary', over: Partial<Heartbeat> = {}) =>
  decodeHeartbeat(
    encodeHeartbeat({ role, seq, echo: 0n, from: P, to: S, nonce: NONCE_P, echoNonce: NONCE_S, ...over }, key),
    KEY,
  );
const someHb = { from: P, to: S, nonce: NONCE_P, echoNonce: NONCE_S };

describe('heartbeat codec', () => {
  it('round-trips and authenticates', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.constantFrom('primary', 'secondary', 'alone' as const),
        fc.nat({ max: 2 ** 32 - 1 }),
        fc.nat({ max: 2 ** 32 - 1 }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        (seq, echo, role, from, to, nonce, echoNonce) => {
          const h = { role, seq, echo, from, to, nonce, echoNonce };
          expect(decodeHeartbeat(encodeHeartbeat(h, KEY), KEY)).toEqual(h);
        },
      ),
    );
  });

  it('rejects forged, unsigned, truncated and tampered messages', () => {
    const good = encodeHeartbeat({ role: 'primary', seq: 5n, echo: 1n, ...someHb }, KEY);
    expect(
      decodeHeartbeat(
        encodeHeartbeat({ role: 'primary', seq: 5n, echo: 1n, ...someHb }, Buffer.from('another key, 16+ bytes')),
        KEY,
      ),
    ).toBe('bad-mac');
    const unsigned = Buffer.from(good);
    unsigned.fill(0, 24);
    expect(decodeHeartbeat(unsigned, KEY)).toBe('bad-mac');
    expect(decodeHeartbeat(good.subarray(0, HEARTBEAT_LEN - 1), KEY)).toBe('bad-length');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: HEARTBEAT_LEN - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const t = Buffer.from(good);
        t[at] = t[at]! ^ x;
        expect(typeof decodeHeartbeat(t, KEY)).toBe('string');
      }),
    );
  });

  it('diverged-connection notices round-trip, authenticated; tampering and forgery are refused', () => {
    const key = fc.record({
      client: fc.nat({ max: 2 ** 32 - 1 }),
      clientPort: fc.nat({ max: 65535 }),
      servicePort: fc.nat({ max: 65535 }),
    });
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.array(key, { maxLength: NOTICE_MAX_ENTRIES }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (seq, diverged, at, x) => {
          const n = { seq, from: P, to: S, echoNonce: NONCE_S, diverged };
          const b = encodeNotice(n, KEY);
          expect(isNotice(b)).toBe(true);
          expect(decodeNotice(b, KEY)).toEqual(n);
          const t = Buffer.from(b);
          t[at % t.length] = t[at % t.length]! ^ x;
          expect(typeof decodeNotice(t, KEY)).toBe('string');
          expect(decodeNotice(b, Buffer.from('another key, 16+ bytes'))).toBe('bad-mac');
          expect(decodeNotice(b.subarray(0, b.length - 1), KEY)).toBe('bad-length');
        },
      ),
      { numRuns: 300 },
    );
    // A heartbeat is not a notice, and the other way round.
    expect(isNotice(encodeHeartbeat({ role: 'primary', seq: 1n, echo: 0n, ...someHb }, KEY))).toBe(false);
    expect(decodeHeartbeat(encodeNotice({ seq: 1n, from: P, to: S, echoNonce: NONCE_S, diverged: [] }, KEY), KEY)).toBe(
      'bad-length',
    );
  });

  it('notices carry IPv6 entries after the IPv4 ones; an IPv4-only notice keeps the layout of a node that knew none', () => {
    const key = fc.record({
      client: fc.oneof(
        fc.nat({ max: 2 ** 32 - 1 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => ip6Addr(b)),
      ),
      clientPort: fc.nat({ max: 65535 }),
      servicePort: fc.nat({ max: 65535 }),
    });
    fc.assert(
      fc.property(fc.array(key, { maxLength: 400 }), (all) => {
        const parts = noticeParts(all);
        expect(parts.flat()).toEqual(all);
        for (const diverged of parts) {
          const n = { seq: 7n, from: P, to: S, echoNonce: NONCE_S, diverged };
          const b = encodeNotice(n, KEY);
          expect(b.length).toBeLessThanOrEqual(1500 - 20 - 8); // one frame: IPv4 and UDP headers
          const v4 = diverged.filter((k) => typeof k.client === 'number');
          const v6 = diverged.filter((k) => typeof k.client === 'string');
          expect(decodeNotice(b, KEY)).toEqual({ ...n, diverged: [...v4, ...v6] });
          expect(b[5]).toBe(v6.length);
          if (!v6.length) expect(b.length).toBe(32 + 8 * v4.length + 32);
        }
        // A part ends only where the next entry would not fit.
        for (let i = 0; i + 1 < parts.length; i++) {
          const bytes = (ks: typeof all) => ks.reduce((n, k) => n + (typeof k.client === 'number' ? 8 : 20), 0);
          expect(bytes(parts[i]!) + bytes([parts[i + 1]![0]!])).toBeGreaterThan(NOTICE_MAX_ENTRY_BYTES);
        }
      }),
      { numRuns: 200 },
    );
    expect(() =>
      encodeNotice(
        {
          seq: 1n,
          from: P,
          to: S,
          echoNonce: NONCE_S,
          diverged: Array.from({ length: 61 }, (_, i) => ({
            client: ip6Addr(Buffer.alloc(16, 1)),
            clientPort: i,
            servicePort: 1,
          })),
        },
        KEY,
      ),
    ).toThrow(RangeError);
  });

  it('switchover messages round-trip, authenticated; tampering and forgery are refused; a long reason is cut, never refused', () => {
    const kinds: SwitchKind[] = ['request', 'handover', 'taken', 'refused'];
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.constantFrom(...kinds),
        fc.string({ maxLength: 120 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (seq, kind, reason, at, x) => {
          const m = { seq, from: S, to: P, echoNonce: NONCE_P, kind, reason };
          const b = encodeSwitch(m, KEY);
          expect(isSwitchMessage(b)).toBe(true);
          expect(isNotice(b)).toBe(false);
          expect(decodeSwitch(b, KEY)).toEqual(m);
          const t = Buffer.from(b);
          t[at % t.length] = t[at % t.length]! ^ x;
          expect(typeof decodeSwitch(t, KEY)).toBe('string');
          expect(decodeSwitch(b, Buffer.from('another key, 16+ bytes'))).toBe('bad-mac');
          expect(decodeSwitch(b.subarray(0, b.length - 1), KEY)).toBe('bad-length');
        },
      ),
      { numRuns: 300 },
    );
    // Cut at a character boundary: 'é' is two bytes, and 401 bytes do not fit.
    const long = decodeSwitch(
      encodeSwitch(
        { seq: 1n, from: S, to: P, echoNonce: 0n, kind: 'refused', reason: 'a' + 'é'.repeat(SWITCH_MAX_REASON) },
        KEY,
      ),
      KEY,
    );
    expect(typeof long).toBe('object');
    const r = (long as { reason: string }).reason;
    expect(Buffer.byteLength(r)).toBeLessThanOrEqual(SWITCH_MAX_REASON);
    expect(r).toMatch(/^aé+$/);
    // Not a heartbeat.
    expect(
      decodeHeartbeat(encodeSwitch({ seq: 1n, from: S, to: P, echoNonce: 0n, kind: 'request', reason: '' }, KEY), KEY),
    ).not.toHaveProperty('role');
  });

  it('sequence numbers keep increasing, even within one millisecond and across restarts', () => {
    const a = new SeqClock();
    const s1 = a.next(1000);
    const s2 = a.next(1000);
    expect(s2 > s1).toBe(true);
    expect(new SeqClock().next(1001) > s2).toBe(true);
  });
});

describe('detector', () => {
  it('declares the peer up on its first heartbeat and down after the timeout', () => {
    const d = new Detector(cfg, 0, ['primary']);
    expect(d.onMessage(hb(1n), 10)?.peer).toBe('up');
    let seq = 2n;
    for (let t = 100; t <= 2100; t += 50) expect(d.onMessage(hb(seq++), t)).toBeNull(); // past the first-contact grace
    expect(d.tick(2199)).toBeNull();
    const down = d.tick(2200);
    expect(down).toMatchObject({ peer: 'down', silentMs: 100 });
    expect(d.tick(2300)).toBeNull(); // one decision only
    expect(d.onMessage(hb(seq++), 2400)?.reason).toBe('heartbeats resumed');
    expect(d.decisions.map((x) => x.peer)).toEqual(['up', 'down', 'up']);
  });

  it('judges a peer just met that serves alone leniently: it takes the primary role at once (roles swapped)', () => {
    const d = new Detector(cfg, 0, ['primary', 'alone']);
    d.onMessage(hb(1n, KEY, 'alone'), 500); // a node serving alone (active after a takeover, or a primary without us)
    expect(d.tick(750)).toBeNull(); // 250 ms of silence during its promotion: 3 × timeout
    expect(d.tick(800)?.peer).toBe('down');
  });

  it('judges a primary met as the pair forms normally at once: a failure in its first seconds costs one timeout', () => {
    const d = new Detector(cfg, 0, ['primary']);
    d.onMessage(hb(1n), 500);
    expect(d.tick(599)).toBeNull();
    expect(d.tick(600)?.peer).toBe('down');
  });

  it('judges a peer that came back leniently for REJOIN_GRACE_MS (a restarted process warming up), then normally', () => {
    const d = new Detector(cfg, 0, ['primary']);
    let seq = 1n;
    for (let t = 10; t <= 2100; t += 50) d.onMessage(hb(seq++), t); // met, past the first-contact grace
    expect(d.tick(2160)?.peer).toBe('down');
    expect(d.onMessage(hb(seq++), 2500)?.reason).toBe('heartbeats resumed');
    expect(d.tick(2750)).toBeNull(); // 250 ms of silence: within 3 × timeout while rejoining
    expect(d.tick(2800)?.peer).toBe('down');
    d.onMessage(hb(seq++), 3000);
    d.onMessage(hb(seq++), 5100); // the grace is over
    expect(d.tick(5200)?.peer).toBe('down');
  });

  it('gives a peer never heard from the startup grace', () => {
    const d = new Detector(cfg, 0, ['primary']);
    expect(d.tick(1099)).toBeNull();
    expect(d.tick(1100)?.reason).toBe('never heard from the peer');
  });

  it('forged, unsigned or replayed heartbeats change nothing', () => {
    const d = new Detector(cfg, 0, ['primary']);
    d.onMessage(hb(10n), 0);
    expect(d.onMessage(hb(11n, Buffer.from('an attacker key 1234')), 90)).toBeNull();
    expect(d.onMessage('bad-mac', 90)).toBeNull();
    expect(d.onMessage(hb(10n), 95)).toBeNull(); // replay of an accepted one
    expect(d.onMessage(hb(5n), 95)).toBeNull(); // an older one
    expect(d.onMessage(hb(12n, KEY, 'secondary'), 95)).toBeNull(); // our own role reflected back
    expect(d.tick(99)).toBeNull();
    expect(d.tick(100)?.peer).toBe('down'); // none of them kept the peer alive
    expect(d.stats.rejected).toMatchObject({ 'bad-mac': 2, replay: 2, 'wrong-peer-role': 1 });
  });

  it('our own heartbeats reflected back to us (the primary’s address spoofed) are not the primary’s', () => {
    const d = new Detector(cfg, 0, ['primary', 'alone', 'secondary']);
    // What we send: from S to P, role secondary, echoing P's nonce; a host on the LAN sends it back.
    const ours = (seq: bigint) =>
      decodeHeartbeat(
        encodeHeartbeat({ role: 'secondary', seq, echo: 0n, from: S, to: P, nonce: NONCE_S, echoNonce: NONCE_P }, KEY),
        KEY,
      );
    for (let i = 1n; i < 20n; i++) expect(d.onMessage(ours(i), Number(i) * 20)).toBeNull();
    expect(d.peer).toBe('unknown');
    expect(d.stats.rejected['wrong-sender']).toBe(19);
    // Even with the addresses swapped by the reflector, the receiver field names P, not us.
    expect(d.onMessage(hb(100n, KEY, 'secondary', { to: P }), 500)).toBeNull();
    expect(d.stats.rejected['wrong-receiver']).toBe(1);
  });

  it('a recording of the peer’s heartbeats made before we (re)started never counts as a sign of life', () => {
    const d = new Detector({ ...cfg, nonce: 0x9999n }, 10_000, ['primary']);
    // Recorded while we ran with another nonce: authentic, newer than anything we saw since our start.
    for (let i = 0; i < 50; i++) expect(d.onMessage(hb(BigInt(1000 + i)), 10_000 + i * 20)).toBeNull();
    expect(d.peer).toBe('unknown');
    expect(d.stats.rejected['stale-nonce']).toBe(50);
    expect(d.tick(10_000 + 1100)?.peer).toBe('down');
    // The live peer, having heard our new nonce, echoes it: up at once.
    expect(d.onMessage(hb(5000n, KEY, 'primary', { echoNonce: 0x9999n }), 11_200)?.peer).toBe('up');
  });

  it('learns the peer’s nonce from its first heartbeat and echoes it; that first heartbeat is not yet a sign of life', () => {
    const d = new Detector(cfg, 0, ['primary']);
    expect(d.peerNonce).toBe(0n);
    expect(d.onMessage(hb(1n, KEY, 'primary', { echoNonce: 0n }), 10)).toBeNull();
    expect(d.peerNonce).toBe(NONCE_P);
    expect(d.onMessage(hb(2n), 30)?.peer).toBe('up');
  });

  it('is next due when the peer’s silence would mean down, whatever we send; our sends time the echo’s round trip', () => {
    const d = new Detector(cfg, 0, ['primary']);
    expect(d.onMessage(hb(1n, KEY, 'primary', { echoNonce: 0n }), 10)).toBeNull();
    expect(d.onMessage(hb(2n), 30)?.peer).toBe('up');
    const deadline = d.nextDeadline();
    expect(deadline).toBeGreaterThan(30);
    d.markSent(7n, 40);
    expect(d.nextDeadline()).toBe(deadline);
    expect(d.stats.sent).toBe(1);
    d.onMessage(hb(3n, KEY, 'primary', { echo: 7n }), 52);
    expect(d.stats.lastRttMs).toBe(12);
    // The peer's later heartbeats of the same plan echo 7 too: not a longer round trip.
    d.onMessage(hb(4n, KEY, 'primary', { echo: 7n }), 72);
    expect(d.stats.lastRttMs).toBe(12);
    d.markSent(8n, 80);
    d.onMessage(hb(5n, KEY, 'primary', { echo: 8n }), 95);
    expect(d.stats.lastRttMs).toBe(15);
  });

  it('has no deadline while the peer is down (its link’s timer must not spin), and one again once it is heard', () => {
    const d = new Detector(cfg, 0, ['primary']);
    d.onMessage(hb(1n, KEY, 'primary', { echoNonce: 0n }), 10);
    expect(d.onMessage(hb(2n), 30)?.peer).toBe('up');
    const deadline = d.nextDeadline();
    expect(d.tick(deadline - 1)).toBeNull();
    expect(d.tick(deadline)?.peer).toBe('down');
    expect(d.nextDeadline()).toBe(Infinity);
    expect(d.tick(deadline + 10_000)).toBeNull();
    expect(d.onMessage(hb(3n), deadline + 10_000)?.peer).toBe('up');
    expect(d.nextDeadline()).toBe(deadline + 10_000 + GRACE_TIMEOUTS * cfg.timeoutMs);
  });
});

describe('queue watch (the liveness guard, bridge/node/liveness.ts)', () => {
  it('a queue readable at every sample with nothing read is stuck after stallMs; one read in between, or not readable, is not', async () => {
    const { QueueWatch } = await import('../../bridge/node/liveness.js');
    const w = new QueueWatch(1000);
    expect(w.sample(0, 10, true)).toBe(0); // first sample: progress from nothing
    expect(w.sample(100, 10, true)).toBe(0);
    expect(w.sample(600, 10, true)).toBe(500);
    expect(w.stuck(w.sample(1099, 10, true))).toBe(false);
    expect(w.stuck(w.sample(1100, 10, true))).toBe(true);
    // Busy but read: never stuck.
    const busy = new QueueWatch(1000);
    for (let t = 0, n = 0; t < 5000; t += 100, n += 50) expect(busy.sample(t, n, true)).toBe(0);
    // Idle: nothing waits, never stuck.
    const idle = new QueueWatch(1000);
    for (let t = 0; t < 5000; t += 100) expect(idle.sample(t, 7, false)).toBe(0);
  });
});
