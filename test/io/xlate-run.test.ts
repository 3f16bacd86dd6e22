/**
 * The primary's programs run on crafted packets in the kernel
 * (BPF_PROG_TEST_RUN): the egress program's release of a primary-only
 * connection's segment (seq − Δseq, TSval − offset, the window from P's scale
 * to the client's, a valid checksum), and what it and the netfilter match
 * refuse. Random numbers, checked against the rewrite done here in JS.
 */
import { describe, expect, it } from 'vitest';
import { InboundXlate, kernelDigest } from '../../bridge/io/xlate.js';
import { ipv4 } from '../../net/addr.js';
import { orderSlot } from '../../bridge/primary/order.js';
import { KERNEL_HANDOVER_REASONS, type KernelMergeInit } from '../../bridge/primary/merge/kernel.js';
import { serverSynAgain } from '../../bridge/primary/prompts.js';
import { parseIpv4Tcp, TCP_ACK_FLAG, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../bridge/wire/tcp.js';
import { WireError } from '../../bridge/wire/error.js';
import { CLIENT as SYN_CLIENT, serverSynAck } from '../../rig/in-process/harness.js';

const VIP = ipv4('192.0.2.100');
const CLIENT = ipv4('198.51.100.7');
const SPORT = 7000;
const CPORT = 40_001;
const BRIDGE_MARK = 0x7466;
const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const P_MAC = '020000000002';
const S_MAC = '020000000003';
const eth = (src: string) => Buffer.from('020000000001' + src + '0800', 'hex');

/**
 * A segment from the service to the client (P's own, or S's copy: the same
 * addresses, from S's MAC, TTL 1), on Ethernet: NOP NOP TS (when tsval is
 * given), NOP NOP SACK (when blocks are given), then the payload.
 */
function frame(o: {
  seq: number;
  ack: number;
  window: number;
  flags: number;
  tsval?: number;
  tsecr?: number;
  payload?: Buffer;
  srcMac?: string;
  ttl?: number;
  client?: number;
  sack?: Array<[number, number]>;
  /** The options as they are, in place of tsval/tsecr and sack. */
  opts?: Buffer;
}): Buffer {
  const payload = o.payload ?? Buffer.alloc(0);
  const ts = o.tsval === undefined ? Buffer.alloc(0) : Buffer.alloc(12);
  if (o.tsval !== undefined) {
    ts.set([1, 1, 8, 10]);
    ts.writeUInt32BE(o.tsval >>> 0, 4);
    ts.writeUInt32BE((o.tsecr ?? 0) >>> 0, 8);
  }
  const blocks = o.sack ?? [];
  const sack = Buffer.alloc(blocks.length ? 4 + 8 * blocks.length : 0);
  if (blocks.length) {
    sack.set([1, 1, 5, 2 + 8 * blocks.length]);
    blocks.forEach(([l, r], i) => {
      sack.writeUInt32BE(l >>> 0, 4 + 8 * i);
      sack.writeUInt32BE(r >>> 0, 8 + 8 * i);
    });
  }
  const opts = o.opts ?? Buffer.concat([ts, sack]);
  const tcpLen = 20 + opts.length + payload.length;
  const ip = Buffer.alloc(20 + tcpLen);
  ip[0] = 0x45;
  ip.writeUInt16BE(ip.length, 2);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = o.ttl ?? 64;
  ip[9] = 6;
  ip.writeUInt32BE(VIP >>> 0, 12);
  ip.writeUInt32BE((o.client ?? CLIENT) >>> 0, 16);
  ip.writeUInt16BE(SPORT, 20);
  ip.writeUInt16BE(CPORT, 22);
  ip.writeUInt32BE(o.seq >>> 0, 24);
  ip.writeUInt32BE(o.ack >>> 0, 28);
  ip[32] = ((20 + opts.length) / 4) << 4;
  ip[33] = o.flags;
  ip.writeUInt16BE(o.window, 34);
  opts.copy(ip, 40);
  payload.copy(ip, 40 + opts.length);
  const p = parseIpv4Tcp(ip);
  if (p instanceof WireError) throw p;
  p.tcp.fillChecksum();
  // The IP header's sum.
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += ip.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  ip.writeUInt16BE(~sum & 0xffff, 10);
  return Buffer.concat([eth(o.srcMac ?? P_MAC), ip]);
}

/** Whether the IP header's checksum is right. */
function ipSumOk(f: Buffer): boolean {
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += f.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

function parse(f: Buffer) {
  const p = parseIpv4Tcp(f, 14);
  if (p instanceof WireError) throw p;
  return p.tcp;
}

const key = { client: CLIENT, service: VIP, clientPort: CPORT, servicePort: SPORT };
const u32 = () => Math.floor(Math.random() * 2 ** 32);

/**
 * The netfilter match on a packet, with the bridge's part played: whatever
 * it sends to the queue gets its verdict at once (the order's counts agree
 * again), so each call sees only the packet's own merits.
 */
function match(x: InboundXlate, f: Buffer): number {
  const r = x.run('tcpfo_primary_only', f).ret;
  if (!x.setOrderDone(x.orderQueued()!)) throw new Error('could not write the order counts');
  return r;
}

describe('the egress program on a primary-only connection', () => {
  const x = InboundXlate.loadOnly(1024, VIP, [SPORT]);

  it('moves seq, TSval and the window into the client’s spaces, with a valid checksum (500 random segments)', () => {
    for (let i = 0; i < 500; i++) {
      const dseq = u32();
      const dts = u32();
      const wsP = Math.floor(Math.random() * 15);
      const wsS = Math.floor(Math.random() * 15);
      x.remove(key);
      expect(x.primaryOnly(key, dseq, dts, true, wsP, wsS)).toBe(true);
      const seg = {
        seq: u32(),
        ack: u32(),
        window: Math.floor(Math.random() * 65536),
        flags: TCP_ACK_FLAG | (i % 2 ? TCP_PSH : 0),
        tsval: u32(),
        tsecr: u32(),
        payload: Buffer.from(`answer ${i}`),
      };
      const r = x.run('tcpfo_sent', frame(seg));
      expect(r.ret).toBe(TC_ACT_OK);
      const out = parse(r.packet);
      expect(out.seq).toBe((seg.seq - dseq) >>> 0);
      expect(out.ack).toBe(seg.ack);
      expect(out.timestamp()).toEqual({ tsval: (seg.tsval - dts) >>> 0, tsecr: seg.tsecr });
      expect(out.window).toBe(
        wsP === wsS ? seg.window : Math.min(0xffff, Math.floor((seg.window * 2 ** wsP) / 2 ** wsS)),
      );
      expect(out.payload.toString()).toBe(`answer ${i}`);
      expect(out.checksumValid()).toBe(true);
    }
    expect(x.released(key)!.segments).toBeGreaterThan(0);
  });

  it('leaves what the bridge released (its mark) as it is, and refuses a segment of a listed connection that is not primary-only', () => {
    x.remove(key);
    x.primaryOnly(key, 1000, 0, false, 7, 7);
    const f = frame({ seq: 5000, ack: 1, window: 100, flags: TCP_ACK_FLAG, payload: Buffer.from('x') });
    const marked = x.run('tcpfo_sent', f, BRIDGE_MARK);
    expect(marked.ret).toBe(TC_ACT_OK);
    expect(marked.packet.equals(f)).toBe(true);
    // Listed for the inbound translation, not primary-only: it passed the match while the entry went.
    x.remove(key);
    x.add(key, 1000, 0, false, 7);
    const before = x.counters().releaseRefused;
    expect(x.run('tcpfo_sent', f).ret).toBe(TC_ACT_SHOT);
    expect(x.counters().releaseRefused).toBe(before + 1);
    // Listed nowhere: not ours.
    x.remove(key);
    expect(x.run('tcpfo_sent', f).ret).toBe(TC_ACT_OK);
  });

  it('the match lets only plain segments of primary-only connections skip the queue', () => {
    x.remove(key);
    // A socket filter's test run takes a frame too, and sees it from the IP header on (as at netfilter OUTPUT).
    const ip = (o: Parameters<typeof frame>[0]) => frame(o);
    const plain = {
      seq: 1,
      ack: 2,
      window: 3,
      flags: TCP_ACK_FLAG | TCP_PSH,
      tsval: 4,
      tsecr: 5,
      payload: Buffer.from('a'),
    };
    expect(match(x, ip(plain))).toBe(0); // not listed
    x.primaryOnly(key, 0, 0, true, 7, 7);
    expect(match(x, ip(plain))).toBe(1);
    expect(match(x, ip({ ...plain, flags: TCP_ACK_FLAG | TCP_FIN }))).toBe(0);
    expect(match(x, ip({ ...plain, flags: TCP_ACK_FLAG | TCP_SYN }))).toBe(0);
    // Timestamps to move but none found: the queue.
    expect(match(x, ip({ ...plain, tsval: undefined }))).toBe(0);
    // Without timestamps on the connection, a segment without them is fine.
    x.remove(key);
    x.primaryOnly(key, 0, 0, false, 7, 7);
    expect(match(x, ip({ ...plain, tsval: undefined }))).toBe(1);
    // The bridge asks the same of a segment in its queue, a GSO one of 60 KB too (a test run takes a page at most: the headers go).
    const big = ip({ ...plain, tsval: undefined, payload: Buffer.alloc(60_000, 7) }).subarray(14);
    expect(x.skipsQueue(big)).toBe(true);
    expect(x.skipsQueue(ip({ ...plain, tsval: undefined, flags: TCP_ACK_FLAG | TCP_FIN }).subarray(14))).toBe(false);
  });
});

const TC_ACT_STOLEN = 4;
const TC_ACT_REDIRECT = 7;
const TCP_URG = 0x20;
/** native/bpf/maps.h: the waiting ranges a connection keeps, and the most segments of one GSO packet merged. */
const MERGE_PENDING = 64;
const MERGE_SEG_CHUNKS = 32;

/** `f` (a segment from the service) as the client's to the service: addresses and ports swapped, the sums still right. */
function fromClientSide(f: Buffer): Buffer {
  const out = Buffer.from(f);
  f.copy(out, 26, 30, 34);
  f.copy(out, 30, 26, 30);
  f.copy(out, 34, 36, 38);
  f.copy(out, 36, 34, 36);
  return out;
}

describe('the kernel merge (bpf/merge.h): the second copy of the same bytes goes to the client', () => {
  const x = InboundXlate.loadOnly(1024, VIP, [SPORT]);
  x.setPeer(Buffer.from(S_MAC, 'hex'));
  const D = 0x8000_0000 + 12345; // Δseq: P's space − the client's
  const T = 777_000; // P's clock − S's
  const R = 1_000_000; // what the client was sent up to
  const A = 5_000_000; // the client's next byte: both servers acknowledged it
  const X = 40_000; // the highest TSval the client was sent
  /**
   * The connection merged here from now on: both servers acknowledged the
   * client up to A; or (`acksKnown` false) one the servers opened, merged
   * from its SYN on, neither server's ACK known yet.
   */
  const start = (acksKnown = true) => {
    x.remove(key);
    expect(x.mergeStart(key, initOf({ acksKnown }))).toBe(true);
  };
  /** The state the kernel starts from: as above, or changed by `o`. */
  function initOf(o: { acksKnown?: boolean; dseq?: number; relNxt?: number; tsvalMax?: number }): KernelMergeInit {
    const acksKnown = o.acksKnown ?? true;
    const known = (v: number) => (acksKnown ? v : 0);
    return {
      acksKnown,
      dseq: o.dseq ?? D,
      dts: T,
      timestamps: true,
      wscaleP: 7,
      wscaleS: 7,
      relNxt: o.relNxt ?? R,
      ackP: known(A),
      ackS: known(A),
      winP: known(64 << 7),
      winS: known(64 << 7),
      ackSent: known(A),
      edgeSent: known(A + (64 << 7)),
      tsvalMax: o.tsvalMax ?? X,
      tsecr: 9,
    };
  }
  const p = (seq: number, payload: string, o: Partial<Parameters<typeof frame>[0]> = {}) =>
    frame({
      seq: (seq + D) >>> 0,
      ack: A,
      window: 64,
      flags: TCP_ACK_FLAG | TCP_PSH,
      tsval: X + T + 5,
      tsecr: 9,
      payload: Buffer.from(payload),
      ...o,
    });
  const sCopy = (seq: number, payload: string, o: Partial<Parameters<typeof frame>[0]> = {}) =>
    frame({
      seq,
      ack: A,
      window: 64,
      flags: TCP_ACK_FLAG | TCP_PSH,
      tsval: X + 6,
      tsecr: 9,
      payload: Buffer.from(payload),
      srcMac: S_MAC,
      ttl: 1,
      ...o,
    });

  it('P first: P’s segment is stolen, S’s copy leaves with the merged numbers, TTL 64, both sums right', () => {
    start();
    const before = x.counters();
    expect(x.run('tcpfo_sent', p(R, 'hello')).ret).toBe(TC_ACT_STOLEN);
    const r = x.run('tcpfo_xlate', sCopy(R, 'hello', { window: 50 }));
    expect(r.ret).toBe(TC_ACT_REDIRECT);
    const out = parse(r.packet);
    expect(out.seq).toBe(R);
    expect(out.ack).toBe(A);
    expect(out.window).toBe(50); // the smaller of the two
    expect(out.timestamp()).toEqual({ tsval: X + 6, tsecr: 9 });
    expect(out.payload.toString()).toBe('hello');
    expect(r.packet[14 + 8]).toBe(64);
    expect(ipSumOk(r.packet)).toBe(true);
    expect(out.checksumValid()).toBe(true);
    const after = x.counters();
    expect(after.mergeHeld - before.mergeHeld).toBe(1);
    expect(after.mergedS - before.mergedS).toBe(1);
    // S's copy counted and timed as the secondary's (what tells lost heartbeats from a dead node).
    expect(after.fromSecondary - before.fromSecondary).toBe(1);
    expect(x.secondarySilentMs()).toBeLessThan(1000);
  });

  it('a connection the bridge took returns (mergeResume): rewritten under its lock, merged here again from where the bridge stands', () => {
    start();
    // Handed over: the programs leave it alone, P's segment is stolen for the bridge.
    expect(x.run('tcpfo_sent', p(R, 'hello')).ret).toBe(TC_ACT_STOLEN);
    expect(x.run('tcpfo_xlate', sCopy(R, 'hel')).ret).toBe(TC_ACT_OK); // not P's range: to the queue
    expect(x.mergeTake(key)).toMatchObject({ handover: 2, ahead: 1, pending: [R + 5] });
    expect(x.run('tcpfo_skips_queue', p(R + 5, 'next')).ret).toBe(0);
    // The bridge released "hello" (and more): nothing waits, and the connection returns at R + 9.
    const init = initOf({ relNxt: R + 9, tsvalMax: X + 10 });
    expect(x.mergeResume(key, init)).toBe(true);
    expect(x.run('tcpfo_skips_queue', p(R + 9, 'more')).ret).toBe(1);
    expect(x.run('tcpfo_sent', p(R + 9, 'more')).ret).toBe(TC_ACT_STOLEN);
    const r = x.run('tcpfo_xlate', sCopy(R + 9, 'more', { tsval: X + 6 }));
    expect(r.ret).toBe(TC_ACT_REDIRECT);
    const out = parse(r.packet);
    expect(out.seq).toBe(R + 9);
    expect(out.timestamp()!.tsval).toBe(X + 10); // never below what the bridge sent
    expect(out.checksumValid()).toBe(true);
    expect(x.mergeTake(key)).toMatchObject({ relNxt: R + 13, ahead: 0, pending: [] });
    // Only an entry that exists returns: a removed connection stays removed.
    x.remove(key);
    expect(x.mergeResume(key, init)).toBe(false);
  });

  it('S first: S’s copy is dropped, P’s segment leaves translated; TSval never goes back', () => {
    start();
    expect(x.run('tcpfo_xlate', sCopy(R, 'world', { tsval: X + 50 })).ret).toBe(TC_ACT_SHOT);
    const r = x.run('tcpfo_sent', p(R, 'world', { tsval: X + T + 20 }));
    expect(r.ret).toBe(TC_ACT_OK);
    const out = parse(r.packet);
    expect(out.seq).toBe(R);
    expect(out.timestamp()!.tsval).toBe(X + 20); // P's, moved into S's clock (S's own was later but never sent)
    expect(out.checksumValid()).toBe(true);
    // Then P first again, and S's copy with an older clock: the client still sees TSval go forward.
    expect(x.run('tcpfo_sent', p(R + 5, 'again', { tsval: X + T + 30 })).ret).toBe(TC_ACT_STOLEN);
    const r2 = x.run('tcpfo_xlate', sCopy(R + 5, 'again', { tsval: X + 25 }));
    expect(r2.ret).toBe(TC_ACT_REDIRECT);
    expect(parse(r2.packet).timestamp()!.tsval).toBe(X + 25 > X + 20 ? X + 25 : X + 20);
  });

  it('pipelined answers: up to 64 wait (MERGE_PENDING), each released by its exact copy; one more hands the connection over', () => {
    start();
    const word = (i: number) => `a${i}...`.slice(0, 4);
    for (let i = 0; i < MERGE_PENDING; i++) expect(x.run('tcpfo_sent', p(R + i * 4, word(i))).ret).toBe(TC_ACT_STOLEN);
    for (let i = 0; i < MERGE_PENDING; i++) {
      const r = x.run('tcpfo_xlate', sCopy(R + i * 4, word(i)));
      expect(r.ret).toBe(TC_ACT_REDIRECT);
      expect(parse(r.packet).seq).toBe(R + i * 4);
    }
    expect(x.mergeTake(key)).toMatchObject({ relNxt: R + MERGE_PENDING * 4, ahead: 0, pending: [] });
    start();
    for (let i = 0; i < MERGE_PENDING; i++) expect(x.run('tcpfo_sent', p(R + i * 4, word(i))).ret).toBe(TC_ACT_STOLEN);
    expect(x.run('tcpfo_sent', p(R + MERGE_PENDING * 4, 'more')).ret).toBe(TC_ACT_STOLEN);
    expect(x.mergeTake(key)).toMatchObject({ handover: 4, ahead: 1 });
  });

  describe('GSO packets: each of the segments a packet leaves as is a range of its own', () => {
    // 'aaaabbbbcc' as a GSO packet of 4-byte segments: [R, R+4), [R+4, R+8), [R+8, R+10).
    const GSO = { size: 4, segs: 3 };
    const BYTES = 'aaaabbbbcc';
    const parts = [
      [0, 'aaaa'],
      [4, 'bbbb'],
      [8, 'cc'],
    ] as const;

    it('P’s burst first: stolen, its segments waiting; S’s copies, one by one, each leave', () => {
      start();
      const before = x.counters();
      expect(match(x, p(R, BYTES))).toBe(1);
      expect(x.run('tcpfo_sent', p(R, BYTES), 0, GSO).ret).toBe(TC_ACT_STOLEN);
      expect(x.counters().mergeHeld - before.mergeHeld).toBe(1);
      for (const [at, bytes] of parts) {
        const r = x.run('tcpfo_xlate', sCopy(R + at, bytes));
        expect(r.ret).toBe(TC_ACT_REDIRECT);
        expect(parse(r.packet).seq).toBe(R + at);
        expect(parse(r.packet).payload.toString()).toBe(bytes);
      }
      expect(x.mergeTake(key)).toMatchObject({ handover: 1, relNxt: R + 10, ahead: 0, pending: [] });
    });

    it('S’s copies first: P’s burst leaves whole, translated, once it covers them exactly; S’s copy as one GSO packet releases P’s waiting segments', () => {
      start();
      for (const [at, bytes] of parts) expect(x.run('tcpfo_xlate', sCopy(R + at, bytes)).ret).toBe(TC_ACT_SHOT);
      expect(x.run('tcpfo_skips_queue', p(R, BYTES), 0, GSO).ret).toBe(1);
      const r = x.run('tcpfo_sent', p(R, BYTES), 0, GSO);
      expect(r.ret).toBe(TC_ACT_OK);
      const out = parse(r.packet);
      expect(out.seq).toBe(R);
      expect(out.payload.toString()).toBe(BYTES);
      expect(x.mergeTake(key)).toMatchObject({ handover: 1, relNxt: R + 10, ahead: 0, pending: [] });
      // The other way round: P's segments one by one, then S's copy GRO'd into one packet.
      start();
      for (const [at, bytes] of parts) expect(x.run('tcpfo_sent', p(R + at, bytes)).ret).toBe(TC_ACT_STOLEN);
      const s = x.run('tcpfo_xlate', sCopy(R, BYTES), 0, GSO);
      expect(s.ret).toBe(TC_ACT_REDIRECT);
      expect(parse(s.packet).payload.toString()).toBe(BYTES);
      expect(x.mergeTake(key)).toMatchObject({ relNxt: R + 10, ahead: 0, pending: [] });
    });

    it('a burst that covers only some of the other side’s waiting ranges, or cuts them otherwise, hands the connection over; so do other bytes in one segment', () => {
      start();
      expect(x.run('tcpfo_xlate', sCopy(R, 'aaaa')).ret).toBe(TC_ACT_SHOT);
      expect(x.run('tcpfo_sent', p(R, BYTES), 0, GSO).ret).toBe(TC_ACT_STOLEN); // past S's one range
      expect(x.mergeTake(key)).toMatchObject({ handover: 2, ahead: 2, pending: [R + 4] });
      start();
      expect(x.run('tcpfo_sent', p(R, BYTES), 0, GSO).ret).toBe(TC_ACT_STOLEN);
      expect(x.run('tcpfo_xlate', sCopy(R, 'aaaab')).ret).toBe(TC_ACT_OK); // cut at 5, not 4
      expect(x.mergeTake(key)).toMatchObject({ handover: 2, ahead: 1, pending: [R + 4, R + 8, R + 10] });
      start();
      expect(x.run('tcpfo_sent', p(R, BYTES), 0, GSO).ret).toBe(TC_ACT_STOLEN);
      expect(x.run('tcpfo_xlate', sCopy(R, 'aaaa')).ret).toBe(TC_ACT_REDIRECT);
      expect(x.run('tcpfo_xlate', sCopy(R + 4, 'bbbX')).ret).toBe(TC_ACT_OK);
      const snap = x.mergeTake(key)!;
      expect(snap.flags & 2).toBe(2);
      expect(snap).toMatchObject({ handover: 3, relNxt: R + 4, pending: [R + 8, R + 10] });
    });

    it('a burst sent again while it waits waits on; a FIN ends its last segment', () => {
      start();
      const fin = { flags: TCP_ACK_FLAG | TCP_FIN };
      const again = x.counters().mergeAgain;
      expect(x.run('tcpfo_sent', p(R, BYTES, fin), 0, GSO).ret).toBe(TC_ACT_STOLEN);
      expect(x.run('tcpfo_sent', p(R, BYTES, fin), 0, GSO).ret).toBe(TC_ACT_STOLEN);
      expect(x.counters().mergeAgain - again).toBe(1);
      expect(x.run('tcpfo_xlate', sCopy(R, 'aaaa')).ret).toBe(TC_ACT_REDIRECT);
      expect(x.run('tcpfo_xlate', sCopy(R + 4, 'bbbb')).ret).toBe(TC_ACT_REDIRECT);
      const r = x.run('tcpfo_xlate', sCopy(R + 8, 'cc', fin));
      expect(r.ret).toBe(TC_ACT_REDIRECT);
      expect(parse(r.packet).flags & TCP_FIN).toBe(TCP_FIN);
      expect(x.mergeTake(key)).toMatchObject({ relNxt: R + 11, ahead: 0, pending: [] });
    });

    it('a FIN sent with the last bytes on one side and after them on the other merges all the same, either way round', () => {
      const fin = { flags: TCP_ACK_FLAG | TCP_FIN };
      const finAlone = { flags: TCP_ACK_FLAG | TCP_FIN, payload: Buffer.alloc(0) };
      start();
      expect(x.run('tcpfo_sent', p(R, BYTES, fin), 0, GSO).ret).toBe(TC_ACT_STOLEN);
      expect(x.run('tcpfo_xlate', sCopy(R, BYTES), 0, GSO).ret).toBe(TC_ACT_REDIRECT); // the bytes; P's FIN waits
      expect(x.mergeTake(key)).toMatchObject({ relNxt: R + 10, ahead: 1, pending: [R + 11] });
      start();
      expect(x.run('tcpfo_sent', p(R, BYTES, fin), 0, GSO).ret).toBe(TC_ACT_STOLEN);
      expect(x.run('tcpfo_xlate', sCopy(R, BYTES), 0, GSO).ret).toBe(TC_ACT_REDIRECT);
      const f = x.run('tcpfo_xlate', sCopy(R + 10, '', finAlone));
      expect(f.ret).toBe(TC_ACT_REDIRECT);
      expect(parse(f.packet).flags & TCP_FIN).toBe(TCP_FIN);
      expect(x.mergeTake(key)).toMatchObject({ relNxt: R + 11, ahead: 0, pending: [] });
      // S's bytes and FIN apart first, then P's with the FIN in its last segment.
      start();
      expect(x.run('tcpfo_xlate', sCopy(R, BYTES), 0, GSO).ret).toBe(TC_ACT_SHOT);
      expect(x.run('tcpfo_xlate', sCopy(R + 10, '', finAlone)).ret).toBe(TC_ACT_SHOT);
      const r = x.run('tcpfo_sent', p(R, BYTES, fin), 0, GSO);
      expect(r.ret).toBe(TC_ACT_OK);
      expect(parse(r.packet).flags & TCP_FIN).toBe(TCP_FIN);
      expect(x.mergeTake(key)).toMatchObject({ handover: 1, relNxt: R + 11, ahead: 0, pending: [] });
    });

    it('keeps P’s stolen burst for the bridge one segment at a time, each a packet of its own (sequence number, length, flags, IP sum)', () => {
      start();
      expect(x.run('tcpfo_sent', p(R, BYTES, { flags: TCP_ACK_FLAG | TCP_PSH }), 0, GSO).ret).toBe(TC_ACT_STOLEN);
      const s = x.mergeTake(key)!;
      expect(s).toMatchObject({ ahead: 1, pending: [R + 4, R + 8, R + 10] });
      const got = s.stashed
        .map((b) => {
          const t = parseIpv4Tcp(b);
          if (t instanceof WireError) throw t;
          expect(ipSumOk(Buffer.concat([Buffer.alloc(14), b]))).toBe(true);
          expect(b.readUInt16BE(2)).toBe(b.length);
          return { seq: (t.tcp.seq - D) >>> 0, bytes: t.tcp.payload.toString(), psh: (t.tcp.flags & TCP_PSH) !== 0 };
        })
        .sort((a, b) => a.seq - b.seq);
      expect(got).toEqual([
        { seq: R, bytes: 'aaaa', psh: false },
        { seq: R + 4, bytes: 'bbbb', psh: false },
        { seq: R + 8, bytes: 'cc', psh: true },
      ]);
      // Stolen as its connection goes to the bridge: kept the same way.
      start();
      expect(x.run('tcpfo_xlate', sCopy(R, 'zz')).ret).toBe(TC_ACT_SHOT);
      expect(x.run('tcpfo_sent', p(R, BYTES), 0, GSO).ret).toBe(TC_ACT_STOLEN);
      expect(
        x
          .mergeTake(key)!
          .stashed.map((b) => b.length - 52)
          .sort(),
      ).toEqual([2, 4, 4]);
    });

    it('the match lets a burst past where its segments may wait or are S’s waiting copies; not one of more segments than the kernel keeps', () => {
      start();
      expect(x.run('tcpfo_skips_queue', p(R, BYTES), 0, GSO).ret).toBe(1);
      const most = MERGE_SEG_CHUNKS;
      expect(x.run('tcpfo_skips_queue', p(R, 'x'.repeat((most + 1) * 4)), 0, { size: 4, segs: most + 1 }).ret).toBe(0);
      expect(x.run('tcpfo_skips_queue', p(R, 'x'.repeat(most * 4)), 0, { size: 4, segs: most }).ret).toBe(1);
      expect(x.run('tcpfo_xlate', sCopy(R, 'aaaa')).ret).toBe(TC_ACT_SHOT);
      expect(x.run('tcpfo_xlate', sCopy(R + 4, 'bbbb')).ret).toBe(TC_ACT_SHOT);
      expect(x.run('tcpfo_skips_queue', p(R, 'aaaabbbb'), 0, { size: 4, segs: 2 }).ret).toBe(1);
      expect(x.run('tcpfo_skips_queue', p(R, BYTES), 0, GSO).ret).toBe(0); // past S's copies
      // P ahead by all but two ranges: a burst of 3 no longer fits, one of 2 does.
      start();
      const n = MERGE_PENDING - 2;
      for (let i = 0; i < n; i++) expect(x.run('tcpfo_sent', p(R + i, 'q')).ret).toBe(TC_ACT_STOLEN);
      expect(x.run('tcpfo_skips_queue', p(R + n, BYTES), 0, GSO).ret).toBe(0);
      expect(x.run('tcpfo_skips_queue', p(R + n, 'aaaabbbb'), 0, { size: 4, segs: 2 }).ret).toBe(1);
    });
  });

  it('different bytes over the same range: the connection goes to the bridge marked diverged; S’s copy goes up, P’s next is stolen', () => {
    start();
    expect(x.run('tcpfo_sent', p(R, 'time=100')).ret).toBe(TC_ACT_STOLEN);
    expect(x.run('tcpfo_xlate', sCopy(R, 'time=101')).ret).toBe(TC_ACT_OK);
    const snap = x.mergeTake(key)!;
    expect(snap.flags & 2).toBe(2);
    expect(snap.handover).toBe(3);
    expect(snap).toMatchObject({ relNxt: R, ahead: 1, pending: [R + 8] });
    const stolen = x.counters().handoverStolen;
    expect(x.run('tcpfo_sent', p(R + 8, 'more')).ret).toBe(TC_ACT_STOLEN);
    expect(x.counters().handoverStolen).toBe(stolen + 1);
  });

  it('a copy that does not line up hands the connection over: S’s goes up to the queue, with what the kernel knew', () => {
    start();
    expect(x.run('tcpfo_sent', p(R, 'abcdef')).ret).toBe(TC_ACT_STOLEN);
    expect(x.run('tcpfo_xlate', sCopy(R, 'abc')).ret).toBe(TC_ACT_OK);
    expect(x.mergeTake(key)).toMatchObject({ handover: 2, relNxt: R, ahead: 1, pending: [R + 6] });
    // S ahead: its dropped copies are listed for the bridge.
    start();
    expect(x.run('tcpfo_xlate', sCopy(R, 'xyz')).ret).toBe(TC_ACT_SHOT);
    expect(x.run('tcpfo_xlate', sCopy(R + 3, 'URG!', { flags: TCP_ACK_FLAG | TCP_URG })).ret).toBe(TC_ACT_OK);
    expect(x.mergeTake(key)).toMatchObject({ handover: 5, ahead: 2, pending: [R + 3] });
  });

  it('S’s copies it dropped are known to the bridge by their digests, the loader’s (bpf/digest.h) equal to the program’s at every length: words, the 64-byte steps, the last bytes', () => {
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 151 + n) & 0xff));
    for (const n of [1, 5, 7, 8, 9, 63, 64, 65, 127, 1448, 2047, 2048]) {
      start();
      expect(x.run('tcpfo_xlate', sCopy(R, '', { payload: bytes(n) })).ret).toBe(TC_ACT_SHOT);
      // A RST of S's hands the connection over with S's copy waiting.
      expect(x.run('tcpfo_xlate', sCopy(R + n, '', { flags: TCP_ACK_FLAG | TCP_RST })).ret).toBe(TC_ACT_OK);
      const snap = x.mergeTake(key)!;
      expect(snap).toMatchObject({ ahead: 2, pending: [R + n] });
      const kernel = new BigUint64Array(1);
      Buffer.from(kernel.buffer).set(snap.digests!.subarray(0, 8));
      expect(kernel[0], `${n} bytes`).toBe(kernelDigest(bytes(n)));
      // One byte other, or two words swapped: another digest.
      const other = bytes(n);
      other[n - 1] = other[n - 1]! ^ 1;
      expect(kernelDigest(other)).not.toBe(kernel[0]);
      if (n >= 16) {
        const swapped = Buffer.concat([bytes(n).subarray(8, 16), bytes(n).subarray(0, 8), bytes(n).subarray(16)]);
        expect(kernelDigest(swapped)).not.toBe(kernel[0]);
      }
    }
  });

  it('keeps copies of P’s stolen segments for the bridge: the waiting ones and the one stolen at a handover, each taken once, none of an earlier connection on the same ports', () => {
    start();
    const one = p(R, 'first');
    const two = p(R + 5, 'second');
    expect(x.run('tcpfo_sent', one).ret).toBe(TC_ACT_STOLEN);
    expect(x.run('tcpfo_sent', two).ret).toBe(TC_ACT_STOLEN);
    // S's copy of the first range releases it; the second still waits.
    expect(x.run('tcpfo_xlate', sCopy(R, 'first')).ret).toBe(TC_ACT_REDIRECT);
    // P's next does not line up with what it sent (a hole): the connection goes to the bridge, this one stolen too.
    const three = p(R + 20, 'third');
    expect(x.run('tcpfo_sent', three).ret).toBe(TC_ACT_STOLEN);
    const s = x.mergeTake(key)!;
    expect(s).toMatchObject({ handover: 2, relNxt: R + 5, ahead: 1, pending: [R + 11] });
    // The IP packets as P sent them: the waiting one, and the one stolen at the handover.
    const ip = (f: Buffer) => f.subarray(14).toString('hex');
    expect(s.stashed.map((b) => b.toString('hex')).sort()).toEqual([ip(two), ip(three)].sort());
    // Taken: not again.
    expect(x.mergeTake(key)!.stashed).toEqual([]);
    // A new connection on the same ports (another Δseq) finds nothing of the old one's.
    start();
    expect(x.run('tcpfo_sent', p(R, 'old')).ret).toBe(TC_ACT_STOLEN);
    x.remove(key);
    expect(x.mergeStart(key, initOf({ dseq: D + 1 }))).toBe(true);
    expect(x.mergeTake(key)!.stashed).toEqual([]);
  });

  it('pure ACKs: one goes out once both servers acknowledged the client’s bytes, with the smaller ACK', () => {
    start();
    expect(x.run('tcpfo_sent', p(R, '', { ack: A + 10 })).ret).toBe(TC_ACT_STOLEN); // S has not acknowledged them
    const r = x.run('tcpfo_xlate', sCopy(R, '', { ack: A + 10 }));
    expect(r.ret).toBe(TC_ACT_REDIRECT);
    expect(parse(r.packet).ack).toBe(A + 10);
    // A keepalive's answer: both servers ACK what they had acknowledged already; one goes out.
    expect(x.run('tcpfo_sent', p(R, '', { ack: A + 10 })).ret).toBe(TC_ACT_STOLEN);
    expect(x.run('tcpfo_xlate', sCopy(R, '', { ack: A + 10 })).ret).toBe(TC_ACT_REDIRECT);
  });

  it('S’s pure ACK with a lone D-SACK block (a client segment that came twice) stays in the kernel: out without the option, its sum right; a SACK above the ACK, or on P’s, hands over', () => {
    start();
    const before = x.counters();
    // The client sent [A, A+10) twice: P acknowledges it, S reports the copy.
    expect(x.run('tcpfo_sent', p(R, '', { ack: A + 10 })).ret).toBe(TC_ACT_STOLEN);
    const r = x.run('tcpfo_xlate', sCopy(R, '', { ack: A + 10, flags: TCP_ACK_FLAG, sack: [[A, A + 10]] }));
    expect(r.ret).toBe(TC_ACT_REDIRECT);
    const out = parse(r.packet);
    expect(out.ack).toBe(A + 10);
    expect(out.timestamp()).toEqual({ tsval: X + 6, tsecr: 9 });
    expect([...r.packet.subarray(14 + 20 + 20 + 12, 14 + 20 + 20 + 24)]).toEqual(Array(12).fill(1)); // NOPs
    expect(out.checksumValid()).toBe(true);
    const after = x.counters();
    expect(after.dsackCleared - before.dsackCleared).toBe(1);
    expect(after.handover - before.handover).toBe(0);
    expect(x.mergeTake(key)).toMatchObject({ handover: 1 }); // merged in the kernel until this take (HANDOVER_BRIDGE)
    // A block above the ACK is a real SACK (the client's bytes out of order): the bridge's.
    start();
    expect(x.run('tcpfo_xlate', sCopy(R, '', { ack: A, flags: TCP_ACK_FLAG, sack: [[A + 10, A + 20]] })).ret).toBe(
      TC_ACT_OK,
    );
    expect(x.mergeTake(key)).toMatchObject({ handover: 5 }); // HANDOVER_SEGMENT
    // Two blocks, a D-SACK first: the bridge's too.
    start();
    expect(
      x.run(
        'tcpfo_xlate',
        sCopy(R, '', {
          ack: A + 10,
          flags: TCP_ACK_FLAG,
          sack: [
            [A, A + 10],
            [A + 20, A + 30],
          ],
        }),
      ).ret,
    ).toBe(TC_ACT_OK);
    // P's D-SACK: the match sends it to the queue (the egress program has no stack left for it).
    start();
    expect(x.run('tcpfo_skips_queue', p(R, '', { ack: A + 10, flags: TCP_ACK_FLAG, sack: [[A, A + 10]] })).ret).toBe(0);
  });

  it('a server-initiated connection: the servers’ first ACKs of the client’s SYN-ACK are taken as they come, one goes out', () => {
    start(false);
    expect(x.run('tcpfo_sent', p(R, '', { ack: A, window: 100 })).ret).toBe(TC_ACT_STOLEN); // S has not acknowledged yet
    const r = x.run('tcpfo_xlate', sCopy(R, '', { ack: A, window: 80 }));
    expect(r.ret).toBe(TC_ACT_REDIRECT);
    expect(parse(r.packet).ack).toBe(A);
    expect(parse(r.packet).window).toBe(80);
    // Then data, merged as on any connection.
    expect(x.run('tcpfo_sent', p(R, 'data')).ret).toBe(TC_ACT_STOLEN);
    expect(x.run('tcpfo_xlate', sCopy(R, 'data')).ret).toBe(TC_ACT_REDIRECT);
  });

  it('a range sent again while it waits waits on (P’s stolen again, S’s dropped again); bytes released already pass again (P’s) or are dropped (S’s); nothing is handed over', () => {
    start();
    const before = x.counters();
    expect(x.run('tcpfo_sent', p(R, 'hello')).ret).toBe(TC_ACT_STOLEN);
    expect(match(x, p(R, 'hello'))).toBe(1); // P's timer fired: the egress program decides
    expect(x.run('tcpfo_sent', p(R, 'hello')).ret).toBe(TC_ACT_STOLEN);
    expect(x.run('tcpfo_xlate', sCopy(R, 'hello')).ret).toBe(TC_ACT_REDIRECT);
    expect(x.run('tcpfo_xlate', sCopy(R + 5, 'world')).ret).toBe(TC_ACT_SHOT);
    expect(x.run('tcpfo_xlate', sCopy(R + 5, 'world')).ret).toBe(TC_ACT_SHOT); // S's timer fired
    const r = x.run('tcpfo_sent', p(R + 5, 'world'));
    expect(r.ret).toBe(TC_ACT_OK);
    expect(parse(r.packet).seq).toBe(R + 5);
    // Both released: P's copy sent again goes out again, translated; S's is dropped.
    expect(match(x, p(R, 'hello'))).toBe(1);
    const again = x.run('tcpfo_sent', p(R, 'hello'));
    expect(again.ret).toBe(TC_ACT_OK);
    const out = parse(again.packet);
    expect(out.seq).toBe(R);
    expect(out.ack).toBe(A);
    expect(out.payload.toString()).toBe('hello');
    expect(out.checksumValid()).toBe(true);
    expect(x.run('tcpfo_xlate', sCopy(R + 5, 'world')).ret).toBe(TC_ACT_SHOT);
    const after = x.counters();
    expect(after.handover - before.handover).toBe(0);
    expect(after.mergeAgain - before.mergeAgain).toBe(3);
    expect(x.mergeTake(key)).toMatchObject({ handover: 1, relNxt: R + 10, ahead: 0, pending: [] });
  });

  it('S’s ACK behind P’s for 250 ms (MERGE_MAX_ACK_LAG_MS): P’s next pure ACK takes the connection to the bridge (ack-lag); S catching up in time starts the count again', () => {
    const pause = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    const ackLag = KERNEL_HANDOVER_REASONS.indexOf('ack-lag');
    // S silent: P's ACKs of the client's bytes are dropped, until the lag outlasts the bound.
    start();
    expect(x.run('tcpfo_sent', p(R, '', { ack: A + 10 })).ret).toBe(TC_ACT_STOLEN);
    pause(100);
    expect(x.run('tcpfo_sent', p(R, '', { ack: A + 10 })).ret).toBe(TC_ACT_STOLEN);
    expect(x.mergeTake(key)).toMatchObject({ handover: 1 }); // still the kernel's: taken here
    start();
    expect(x.run('tcpfo_sent', p(R, '', { ack: A + 10 })).ret).toBe(TC_ACT_STOLEN);
    pause(300);
    expect(x.run('tcpfo_sent', p(R, '', { ack: A + 10 })).ret).toBe(TC_ACT_STOLEN);
    // Taken with how long it waited for S (the bridge counts S's silence from there).
    const lagged = x.mergeTake(key)!;
    expect(lagged).toMatchObject({ handover: ackLag, ackP: A + 10, ackS: A });
    expect(lagged.waitMs).toBeGreaterThanOrEqual(300);
    // S reaching what P had acknowledged ends the lag; the next one is counted from P's ACK
    // then. (Each wait well under the bound, slow emulated kernels included; both together past it.)
    start();
    expect(x.run('tcpfo_sent', p(R, '', { ack: A + 10 })).ret).toBe(TC_ACT_STOLEN);
    pause(150);
    expect(x.run('tcpfo_sent', p(R, '', { ack: A + 20 })).ret).toBe(TC_ACT_STOLEN);
    expect(x.run('tcpfo_xlate', sCopy(R, '', { ack: A + 10 })).ret).toBe(TC_ACT_REDIRECT); // still behind P's A + 20
    pause(150);
    expect(x.run('tcpfo_sent', p(R, '', { ack: A + 20 })).ret).toBe(TC_ACT_STOLEN);
    expect(x.mergeTake(key)).toMatchObject({ handover: 1 });
  });

  it('a range sent again after waiting 50 ms (MERGE_MAX_WAIT_MS) for the other’s copy takes its connection to the bridge (slow); sooner, it waits on', () => {
    start();
    expect(x.run('tcpfo_sent', p(R, 'late')).ret).toBe(TC_ACT_STOLEN);
    expect(x.run('tcpfo_sent', p(R, 'late')).ret).toBe(TC_ACT_STOLEN); // P's timer: waits on
    expect(x.mergeTake(key)).toMatchObject({ handover: 1 }); // (taken here: still the kernel's until now)
    start();
    expect(x.run('tcpfo_sent', p(R, 'late')).ret).toBe(TC_ACT_STOLEN);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 70);
    expect(x.run('tcpfo_sent', p(R, 'late')).ret).toBe(TC_ACT_STOLEN);
    const slow = x.mergeTake(key)!;
    expect(slow).toMatchObject({ handover: 6, ahead: 1, pending: [R + 4] });
    expect(slow.waitMs).toBeGreaterThanOrEqual(70); // P's range waited for S's copy
    // A release starts the count again: what waits after it is measured from there.
    start();
    expect(x.run('tcpfo_sent', p(R, 'one')).ret).toBe(TC_ACT_STOLEN);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 70);
    expect(x.run('tcpfo_sent', p(R + 3, 'two')).ret).toBe(TC_ACT_STOLEN);
    expect(x.run('tcpfo_xlate', sCopy(R, 'one')).ret).toBe(TC_ACT_REDIRECT);
    expect(x.run('tcpfo_sent', p(R + 3, 'two')).ret).toBe(TC_ACT_STOLEN);
    const released = x.mergeTake(key)!;
    expect(released).toMatchObject({ handover: 1, pending: [R + 6] });
    expect(released.waitMs).toBeLessThan(50); // counted from the release, not from the first wait
  });

  it('a range sent again with other bytes, or two waiting ranges sent as one, hands the connection over', () => {
    start();
    expect(x.run('tcpfo_sent', p(R, 'abc')).ret).toBe(TC_ACT_STOLEN);
    expect(x.run('tcpfo_sent', p(R, 'abd')).ret).toBe(TC_ACT_STOLEN);
    const snap = x.mergeTake(key)!;
    expect(snap.flags & 2).toBe(2);
    expect(snap.handover).toBe(3);
    start();
    expect(x.run('tcpfo_xlate', sCopy(R, 'abc')).ret).toBe(TC_ACT_SHOT);
    expect(x.run('tcpfo_xlate', sCopy(R + 3, 'def')).ret).toBe(TC_ACT_SHOT);
    expect(x.run('tcpfo_xlate', sCopy(R, 'abcdef')).ret).toBe(TC_ACT_OK); // S's TCP sent both in one
    expect(x.mergeTake(key)).toMatchObject({ handover: 2, ahead: 2, pending: [R + 3, R + 6] });
  });

  it('a frame from another MAC is not the secondary’s: up to the queue, the state untouched', () => {
    start();
    const before = x.counters().fromSecondary;
    expect(x.run('tcpfo_xlate', sCopy(R, 'forged', { srcMac: '02000000bbbb' })).ret).toBe(TC_ACT_OK);
    expect(x.counters().fromSecondary).toBe(before);
    expect(x.mergeTake(key)).toMatchObject({ handover: 1, relNxt: R, ahead: 0, pending: [] }); // taken by the bridge just now, nothing else
  });

  describe('the close', () => {
    /** The client's segment with `flags` at `seq`, acknowledging `ack`, as it reaches P (S's spaces). */
    const client = (seq: number, ack: number, flags: number) =>
      fromClientSide(frame({ seq, ack, window: 500, flags, tsval: 9, tsecr: X + 6, srcMac: '02000000cccc' }));
    /** Listed for the inbound translation too, and the pair told the client up to R (the egress program saw it leave). */
    const listed = () => {
      start();
      x.add(key, D, T, true, 7);
      expect(x.run('tcpfo_sent', sCopy(R, '', { flags: TCP_ACK_FLAG, ttl: 64 }), BRIDGE_MARK).ret).toBe(TC_ACT_OK);
      x.kernelEvents();
    };
    const ended = { kind: 'ended', ...key, dseq: D, reset: false };
    /** A connection the servers opened, listed for the inbound translation; its merged SYN (no ACK in it) left. */
    const listedServerOpened = () => {
      start(false);
      x.add(key, D, T, true, 7);
      const syn = frame({ seq: R - 1, ack: 0, window: 64, flags: TCP_SYN, tsval: X, tsecr: 0 });
      expect(x.run('tcpfo_sent', syn, BRIDGE_MARK).ret).toBe(TC_ACT_OK);
    };

    it('servers first: their FINs merge like bytes, then the client’s FIN passes translated; the bridge hears of the close once', () => {
      listed();
      const c0 = x.counters();
      expect(x.run('tcpfo_sent', p(R, 'bye', { flags: TCP_ACK_FLAG | TCP_FIN })).ret).toBe(TC_ACT_STOLEN);
      const r = x.run('tcpfo_xlate', sCopy(R, 'bye', { flags: TCP_ACK_FLAG | TCP_FIN }));
      expect(r.ret).toBe(TC_ACT_REDIRECT);
      const out = parse(r.packet);
      expect(out.has(TCP_FIN)).toBe(true);
      expect(out.seq).toBe(R);
      expect(out.payload.toString()).toBe('bye');
      expect(out.checksumValid()).toBe(true);
      // It leaves: the egress program notes how far the pair sent (its FIN counted).
      expect(x.run('tcpfo_sent', r.packet, BRIDGE_MARK).ret).toBe(TC_ACT_OK);
      expect(x.kernelEvents()).toEqual([]);
      // The client acknowledges the FIN and sends its own: moved into P's space for P's TCP.
      const fin = x.run('tcpfo_xlate', client(A, R + 4, TCP_ACK_FLAG | TCP_FIN));
      expect(fin.ret).toBe(TC_ACT_OK);
      expect(parse(fin.packet).ack).toBe((R + 4 + D) >>> 0);
      expect(parse(fin.packet).checksumValid()).toBe(true);
      expect(x.kernelEvents()).toEqual([ended]);
      // Sent again (the servers' ACK of it lost): translated again, told no more.
      expect(parse(x.run('tcpfo_xlate', client(A, R + 4, TCP_ACK_FLAG | TCP_FIN)).packet).ack).toBe((R + 4 + D) >>> 0);
      expect(x.kernelEvents()).toEqual([]);
      const c1 = x.counters();
      expect(c1.clientFins - c0.clientFins).toBe(2);
      expect(c1.ended - c0.ended).toBe(1);
      expect(x.mergeTake(key)).toMatchObject({ relNxt: R + 4, flags: expect.any(Number) });
    });

    it('the client first: its FIN passes, S’s FIN waits, P’s leaves and completes the close; the state says so to the bridge', () => {
      listed();
      expect(parse(x.run('tcpfo_xlate', client(A, R, TCP_ACK_FLAG | TCP_FIN)).packet).ack).toBe((R + D) >>> 0);
      expect(x.kernelEvents()).toEqual([]);
      expect(x.run('tcpfo_xlate', sCopy(R, '', { flags: TCP_ACK_FLAG | TCP_FIN, ack: A + 1 })).ret).toBe(TC_ACT_SHOT);
      const r = x.run('tcpfo_sent', p(R, '', { flags: TCP_ACK_FLAG | TCP_FIN, ack: A + 1 }));
      expect(r.ret).toBe(TC_ACT_OK);
      const out = parse(r.packet);
      expect(out.has(TCP_FIN)).toBe(true);
      expect(out.seq).toBe(R);
      expect(out.ack).toBe(A + 1);
      expect(x.kernelEvents()).toEqual([ended]);
      const KERNEL_FIN = 1 << 5;
      const KERNEL_FIN_CLIENT = 1 << 7;
      const snap = x.mergeTake(key)!;
      expect(snap.flags & (KERNEL_FIN | KERNEL_FIN_CLIENT)).toBe(KERNEL_FIN | KERNEL_FIN_CLIENT);
      expect(snap.relNxt).toBe(R + 1);
    });

    it('the client’s RST at the number the servers expect ends the connection here (told once); another passes and ends nothing; one of a connection the bridge took is the queue’s', () => {
      listed();
      const c0 = x.counters().clientResets;
      const off = x.run('tcpfo_xlate', client(A + 5, R, TCP_ACK_FLAG | TCP_RST));
      expect(off.ret).toBe(TC_ACT_OK);
      expect(parse(off.packet).ack).toBe((R + D) >>> 0); // translated: P's TCP answers it with a challenge ACK
      expect(x.kernelEvents()).toEqual([]);
      const exact = x.run('tcpfo_xlate', client(A, R, TCP_ACK_FLAG | TCP_RST));
      expect(parse(exact.packet).ack).toBe((R + D) >>> 0);
      expect(parse(exact.packet).checksumValid()).toBe(true);
      expect(x.kernelEvents()).toEqual([{ ...ended, reset: true }]);
      // Sent again: told no more.
      x.run('tcpfo_xlate', client(A, R, TCP_ACK_FLAG | TCP_RST));
      expect(x.kernelEvents()).toEqual([]);
      expect(x.counters().clientResets - c0).toBe(1);
      const KERNEL_RESET = 1 << 9;
      expect(x.mergeTake(key)!.flags & KERNEL_RESET).toBe(KERNEL_RESET);
      // A bare RST (no ACK) of a connection the bridge took: untouched, the queue's.
      const bare = client(A, 0, TCP_RST);
      expect(x.run('tcpfo_xlate', bare).packet.equals(bare)).toBe(true);
      // Of one the kernel merges: its ACK field is not moved (there is none).
      listed();
      expect(parse(x.run('tcpfo_xlate', bare).packet).ack).toBe(0);
      expect(x.kernelEvents()).toEqual([{ ...ended, reset: true }]);
    });

    it('a connection the servers opened, its client’s numbers in the upper half of the sequence space: its FIN passes here too (what the pair acknowledged is known from the first ACK, not from the SYN, which carries none)', () => {
      const AH = 0x9000_0000; // the client's ISN + 1: "before" 0 in serial arithmetic
      listedServerOpened();
      // The servers acknowledge the client's SYN-ACK; the second copy leaves.
      expect(x.run('tcpfo_sent', p(R, '', { ack: AH, window: 100 })).ret).toBe(TC_ACT_STOLEN);
      const ackOut = x.run('tcpfo_xlate', sCopy(R, '', { ack: AH, window: 80 }));
      expect(ackOut.ret).toBe(TC_ACT_REDIRECT);
      expect(x.run('tcpfo_sent', ackOut.packet, BRIDGE_MARK).ret).toBe(TC_ACT_OK);
      // The file and the servers' FIN, merged.
      expect(x.run('tcpfo_sent', p(R, 'file', { ack: AH, flags: TCP_ACK_FLAG | TCP_FIN })).ret).toBe(TC_ACT_STOLEN);
      const finOut = x.run('tcpfo_xlate', sCopy(R, 'file', { ack: AH, flags: TCP_ACK_FLAG | TCP_FIN }));
      expect(finOut.ret).toBe(TC_ACT_REDIRECT);
      expect(x.run('tcpfo_sent', finOut.packet, BRIDGE_MARK).ret).toBe(TC_ACT_OK);
      x.kernelEvents();
      // The client's FIN, acknowledging the servers': in the windows, moved into P's space here.
      const c0 = x.counters();
      const fin = x.run('tcpfo_xlate', client(AH, R + 5, TCP_ACK_FLAG | TCP_FIN));
      expect(fin.ret).toBe(TC_ACT_OK);
      expect(parse(fin.packet).ack).toBe((R + 5 + D) >>> 0);
      expect(x.counters().clientFins - c0.clientFins).toBe(1);
      expect(x.counters().outOfWindow - c0.outOfWindow).toBe(0);
      expect(x.kernelEvents()).toEqual([ended]);
    });

    it('the client’s SYN-ACK to a connection the servers open, in a layout Linux sends: its ACK and timestamp echo moved into P’s spaces here, not counted out of the windows; another layout is the bridge’s', () => {
      listedServerOpened();
      // MSS, SACK-permitted, timestamps (TSval 9, echoing the SYN's X), NOP, window scale 7.
      const linux = Buffer.from([2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0, 1, 3, 3, 7]);
      linux.writeUInt32BE(X, 12);
      const synAck = (opts: Buffer) =>
        fromClientSide(frame({ seq: 0x9000_0000 - 1, ack: R, window: 65535, flags: TCP_SYN | TCP_ACK_FLAG, opts }));
      const c0 = x.counters();
      const r = x.run('tcpfo_xlate', synAck(linux));
      expect(r.ret).toBe(TC_ACT_OK);
      const out = parse(r.packet);
      expect(out.ack).toBe((R + D) >>> 0);
      expect(out.timestamp()).toEqual({ tsval: 9, tsecr: (X + T) >>> 0 });
      expect(out.checksumValid()).toBe(true);
      const c1 = x.counters();
      expect(c1.translated - c0.translated).toBe(1);
      expect(c1.outOfWindow - c0.outOfWindow).toBe(0);
      // Windows' layout (MSS, NOP, window scale, NOP, NOP, SACK-permitted): untouched, the queue's.
      const other = synAck(Buffer.from([2, 4, 5, 0xb4, 1, 3, 3, 8, 1, 1, 4, 2]));
      const q = x.run('tcpfo_xlate', other);
      expect(q.ret).toBe(TC_ACT_OK);
      expect(q.packet.equals(other)).toBe(true);
      expect(x.counters().translated).toBe(c1.translated);
    });

    it('a FIN of one server only, the client’s FIN of a connection the bridge took, or outside the windows: the bridge’s', () => {
      listed();
      expect(x.run('tcpfo_sent', p(R, 'bye', { flags: TCP_ACK_FLAG | TCP_FIN })).ret).toBe(TC_ACT_STOLEN);
      // S's same bytes leave (its FIN may come after them); P's FIN waits.
      expect(x.run('tcpfo_xlate', sCopy(R, 'bye')).ret).toBe(TC_ACT_REDIRECT);
      // S goes on where P ended: to the queue, with its connection.
      expect(x.run('tcpfo_xlate', sCopy(R + 3, 'more')).ret).toBe(TC_ACT_OK);
      const KERNEL_FIN_PENDING = 1 << 6;
      const snap = x.mergeTake(key)!;
      expect(snap).toMatchObject({ handover: 2, ahead: 1, relNxt: R + 3, pending: [R + 4] });
      expect(snap.flags & KERNEL_FIN_PENDING).toBe(KERNEL_FIN_PENDING);
      const c0 = x.counters().clientFins;
      const taken = client(A, R, TCP_ACK_FLAG | TCP_FIN);
      const r = x.run('tcpfo_xlate', taken);
      expect(r.ret).toBe(TC_ACT_OK);
      expect(r.packet.equals(taken)).toBe(true); // untouched: the queue's
      listed();
      const far = client(A + 10_000_000, R, TCP_ACK_FLAG | TCP_FIN);
      expect(x.run('tcpfo_xlate', far).packet.equals(far)).toBe(true);
      expect(x.counters().clientFins).toBe(c0);
      expect(x.kernelEvents()).toEqual([]);
    });
  });

  it('the match sends P’s segment past the queue only in order, where it may wait or is S’s oldest copy', () => {
    start();
    expect(match(x, p(R, 'one'))).toBe(1);
    expect(match(x, p(R + 1, 'two'))).toBe(0); // not P's next
    expect(match(x, p(R, 'one', { flags: TCP_ACK_FLAG | TCP_URG }))).toBe(0);
    expect(match(x, p(R, 'one', { flags: TCP_ACK_FLAG | TCP_FIN }))).toBe(1); // a FIN merges like bytes
    expect(match(x, p(R, '', { flags: TCP_ACK_FLAG | TCP_FIN }))).toBe(1);
    expect(x.run('tcpfo_xlate', sCopy(R, 'abc')).ret).toBe(TC_ACT_SHOT); // S ahead by 3
    expect(match(x, p(R, 'abc', { flags: TCP_ACK_FLAG | TCP_FIN }))).toBe(0); // one longer than S's: the bridge's
    expect(match(x, p(R, 'ab'))).toBe(0); // would not line up: the bridge's
    expect(match(x, p(R, 'abc'))).toBe(1);
    x.mergeTake(key);
    expect(match(x, p(R, 'abc'))).toBe(0);
  });

  it('the secondary failed (alone): P’s segments of a connection merged here go to the queue, where the bridge turns it; the connections whose stolen segments the kernel keeps are listed, each once', () => {
    start();
    // Listed once, whatever an earlier connection on the same ports left there too.
    const mine = () => x.stashedConns().filter((k) => k.clientPort === CPORT && k.servicePort === SPORT);
    expect(x.run('tcpfo_sent', p(R, 'one')).ret).toBe(TC_ACT_STOLEN);
    expect(x.run('tcpfo_sent', p(R + 3, 'two')).ret).toBe(TC_ACT_STOLEN);
    expect(mine()).toEqual([key]);
    expect(match(x, p(R + 6, 'three'))).toBe(1);
    x.setAlone(true);
    try {
      expect(match(x, p(R + 6, 'three'))).toBe(0);
      expect(x.run('tcpfo_skips_queue', p(R + 6, 'three')).ret).toBe(0);
      // A SYN-ACK is not this rule's (the handshake's rule: its flag).
      expect(x.run('tcpfo_skips_queue', p(R, '', { flags: TCP_ACK_FLAG | TCP_SYN })).ret).toBe(0);
    } finally {
      x.setAlone(false);
    }
    expect(match(x, p(R + 6, 'three'))).toBe(1);
    expect(x.mergeTake(key)!.stashed).toHaveLength(2);
  });

  it('the secondary failed: a batch of primary-only entries (one system call) releases P’s segments of connections merged here at once, translated; the match lets them past', () => {
    start();
    expect(x.run('tcpfo_sent', p(R, 'hello')).ret).toBe(TC_ACT_STOLEN);
    const other = { ...key, clientPort: CPORT + 1 };
    const entry = (c: typeof key) => ({ c, dseq: D, dts: T, timestamps: true, wscaleP: 7, wscaleS: 7 });
    expect(x.primaryOnlyMany([entry(key), entry(other)])).toBe(2);
    try {
      expect(match(x, p(R + 5, 'world'))).toBe(1);
      const r = x.run('tcpfo_sent', p(R + 5, 'world'));
      expect(r.ret).toBe(TC_ACT_OK);
      const out = parse(r.packet);
      expect(out.seq).toBe(R + 5);
      expect(out.timestamp()).toEqual({ tsval: X + 5, tsecr: 9 });
      expect(out.payload.toString()).toBe('world');
      expect(out.checksumValid()).toBe(true);
      expect(x.released(other)).toEqual({ segments: 0, bytes: 0 });
    } finally {
      x.remove(other);
    }
  });

  it('keeps a client’s answers in order: while a segment the queue took on its own account waits, its others go there too, uncounted; other clients’ pass', () => {
    start();
    const other = ipv4('198.51.100.99');
    expect(orderSlot(other)).not.toBe(orderSlot(CLIENT));
    const otherKey = { ...key, client: other };
    x.remove(otherKey);
    x.primaryOnly(otherKey, 0, 0, true, 7, 7);
    const otherSeg = frame({
      seq: 1,
      ack: 2,
      window: 3,
      flags: TCP_ACK_FLAG | TCP_PSH,
      tsval: 4,
      tsecr: 5,
      payload: Buffer.from('a'),
      client: other,
    });
    // The rules: the first match lets past, the second marks (1) or counts (0) what the first did not.
    const rules = (seg: Buffer): 'past' | 'waits' | 'own' =>
      x.run('tcpfo_primary_only', seg).ret ? 'past' : x.run('tcpfo_order_only', seg).ret ? 'waits' : 'own';
    // The counts are the mapped map's: the bridge's writes are stores, and the match reads them.
    expect(x.orderMapped()).toBe(true);
    x.setOrderDone(x.orderQueued()!);
    // A slot holds its client's answers for a minute here: nothing below depends on the test's pace.
    expect(x.setOrderHold(60_000)).toBe(true);
    const q0 = x.orderQueued()![orderSlot(CLIENT)]!;
    expect(rules(p(R, 'one'))).toBe('past');
    // An earlier answer of the client goes to the queue on its own account (urgent data: the bridge's), counted.
    expect(rules(p(R, 'bye', { flags: TCP_ACK_FLAG | TCP_URG }))).toBe('own');
    expect(x.orderQueued()![orderSlot(CLIENT)]).toBe((q0 + 1) >>> 0);
    // The next, which the kernel would release, goes to the queue too, to wait: not counted.
    expect(x.run('tcpfo_skips_queue', p(R, 'one')).ret).toBe(1);
    expect(rules(p(R, 'one'))).toBe('waits');
    expect(rules(p(R, 'one'))).toBe('waits');
    expect(rules(p(R, 'bye', { flags: TCP_ACK_FLAG | TCP_URG }))).toBe('own');
    expect(x.orderQueued()![orderSlot(CLIENT)]).toBe((q0 + 2) >>> 0);
    // A pure ACK the kernel merges passes whatever the order (the last ACK of a handshake the servers opened).
    expect(rules(p(R, ''))).toBe('past');
    // A pure ACK the queue takes (urgent: the bridge's) of a connection merged in the kernel is marked, not
    // counted: its handshake is long done, nothing a client orders by.
    expect(x.run('tcpfo_skips_queue', p(R, '', { flags: TCP_ACK_FLAG | TCP_URG })).ret).toBe(0);
    expect(rules(p(R, '', { flags: TCP_ACK_FLAG | TCP_URG }))).toBe('waits');
    expect(x.orderQueued()![orderSlot(CLIENT)]).toBe((q0 + 2) >>> 0);
    // Of a connection the kernel does not know (the bridge merges it) it is counted.
    x.remove(key);
    expect(rules(p(R, ''))).toBe('own');
    expect(x.orderQueued()![orderSlot(CLIENT)]).toBe((q0 + 3) >>> 0);
    start();
    // Another client's answers do not wait.
    expect(rules(otherSeg)).toBe('past');
    // One verdict short of those counted: still waiting; all: the kernel's again, whatever still waits uncounted.
    const done = x.orderQueued()!;
    done[orderSlot(CLIENT)] = (done[orderSlot(CLIENT)]! - 1) >>> 0;
    x.setOrderDone(done);
    expect(rules(p(R, 'one'))).toBe('waits');
    x.setOrderDone(x.orderQueued()!);
    expect(rules(p(R, 'one'))).toBe('past');
    // A segment the kernel would not release is never marked, whatever the counts.
    expect(x.run('tcpfo_order_only', p(R, 'bye', { flags: TCP_ACK_FLAG | TCP_URG })).ret).toBe(0);
    // That one set the counts apart again: the slot holds for as long as the bridge says (0: for ever), from then.
    expect(rules(p(R, 'one'))).toBe('waits');
    x.setOrderHold(0);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    expect(rules(p(R, 'one'))).toBe('waits');
    x.setOrderHold(2);
    expect(rules(p(R, 'one'))).toBe('past');
    x.setOrderHold(60_000);
    x.setOrderDone(x.orderQueued()!);
    x.remove(otherKey);
  });
});

describe('P’s SYN-ACKs the kernel holds for S’s', () => {
  it('are listed, however many (several batches of the map), only while younger than the age asked, each with the ACK that names its SYN', () => {
    const x = InboundXlate.loadOnly(1024, VIP, [SPORT]);
    try {
      const n = 2500;
      for (let i = 0; i < n; i++) {
        const ip = serverSynAck(20_000 + i, 1_000_000, 5_000 + i);
        expect(x.run('tcpfo_sent', Buffer.concat([eth(P_MAC), ip])).ret).toBe(TC_ACT_STOLEN);
      }
      const held = x.heldHandshakes(60_000);
      expect(held).toHaveLength(n);
      expect(new Set(held.map((h) => h.clientPort)).size).toBe(n);
      for (const h of held) {
        expect(h).toMatchObject({ client: SYN_CLIENT, servicePort: SPORT });
        expect(h.ack).toBe(5_000 + h.clientPort - 20_000);
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
      expect(x.heldHandshakes(1)).toEqual([]);
    } finally {
      x.close();
    }
  });
});

describe('a connection the servers open (FTP’s active mode): both SYNs merged in the kernel', () => {
  /** Linux's SYN options: MSS, SACK-permitted, timestamps (TSval `tsval`, no echo), NOP, window scale. */
  const linuxSyn = (mss: number, tsval: number, wscale: number) => {
    const o = Buffer.from([2, 4, 0, 0, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, wscale]);
    o.writeUInt16BE(mss, 2);
    o.writeUInt32BE(tsval >>> 0, 8);
    return o;
  };
  const ISN_P = 0x9000_0000;
  const ISN_S = 0x1234_5678;
  const pSyn = (o: Partial<Parameters<typeof frame>[0]> = {}) =>
    frame({ seq: ISN_P, ack: 0, window: 64240, flags: TCP_SYN, opts: linuxSyn(1460, 50_000, 7), ...o });
  const sSyn = (o: Partial<Parameters<typeof frame>[0]> = {}) =>
    frame({
      seq: ISN_S,
      ack: 0,
      window: 29200,
      flags: TCP_SYN,
      opts: linuxSyn(1400, 90_000, 7),
      srcMac: S_MAC,
      ttl: 1,
      ...o,
    });
  const loaded = () => {
    const x = InboundXlate.loadOnly(1024, VIP, [SPORT]);
    x.setPeer(Buffer.from(S_MAC, 'hex'));
    x.mergeHandshakes(true);
    return x;
  };
  /** What the client gets as the merged SYN: S's ISN, TSval and scale; the smaller MSS and window. */
  const merged = (f: Buffer) => {
    const t = parse(f);
    expect(t.flags).toBe(TCP_SYN);
    expect(t.seq).toBe(ISN_S);
    expect(t.window).toBe(29200);
    expect(t.checksumValid()).toBe(true);
    const opts = t.options();
    if (opts instanceof WireError) throw opts;
    expect(opts).toContainEqual({ kind: 'mss', mss: 1400 });
    expect(opts).toContainEqual({ kind: 'timestamp', tsval: 90_000, tsecr: 0 });
    expect(opts).toContainEqual({ kind: 'wscale', shift: 7 });
  };
  /** The event the bridge hears: a handshake of two SYNs, with both ISNs. */
  const heard = (x: InboundXlate) => {
    const ev = x.kernelEvents();
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({ kind: 'handshake', syn: true, ack: 0, p: { isn: ISN_P }, s: { isn: ISN_S } });
  };

  it('P’s first: it skips the queue whatever the order and is held (listed, to be sent again should the secondary fail); S’s leaves as the merged SYN; the client’s SYN-ACK is translated', () => {
    const x = loaded();
    try {
      // An earlier answer of the client waits in the queue: a SYN passes all the same.
      expect(x.run('tcpfo_order_only', frame({ seq: 1, ack: 2, window: 3, flags: TCP_ACK_FLAG | TCP_URG })).ret).toBe(
        0,
      );
      expect(x.run('tcpfo_primary_only', pSyn()).ret).toBe(1);
      expect(x.run('tcpfo_sent', pSyn()).ret).toBe(TC_ACT_STOLEN);
      // Listed as a SYN: should the secondary fail now, the bridge sends it again, rebuilt as P's TCP sent it.
      const held = x.heldHandshakes(60_000);
      expect(held).toHaveLength(1);
      expect(held[0]).toMatchObject({ syn: true, ack: 0, clientPort: CPORT, servicePort: SPORT });
      const again = parseIpv4Tcp(serverSynAgain(held[0]!, VIP));
      if (again instanceof WireError) throw again;
      const orig = parse(pSyn());
      expect(again.tcp.seq).toBe(orig.seq);
      expect(again.tcp.flags).toBe(orig.flags);
      expect(again.tcp.window).toBe(orig.window);
      expect(again.tcp.options()).toEqual(orig.options());
      expect(again.tcp.checksumValid()).toBe(true);
      const r = x.run('tcpfo_xlate', sSyn());
      expect(r.ret).toBe(TC_ACT_REDIRECT);
      merged(r.packet);
      heard(x);
      // S's sent again: merged already, up to the queue; P's sent again: the queue's too.
      expect(x.run('tcpfo_xlate', sSyn()).ret).toBe(TC_ACT_OK);
      expect(x.run('tcpfo_skips_queue', pSyn()).ret).toBe(0);
      // The client's SYN-ACK (its ISN 777) acknowledges S's ISN: P's TCP gets P's.
      const synAck = fromClientSide(
        frame({ seq: 777, ack: ISN_S + 1, window: 65535, flags: TCP_SYN | TCP_ACK_FLAG, opts: linuxSyn(1460, 5, 7) }),
      );
      const t = x.run('tcpfo_xlate', synAck);
      expect(t.ret).toBe(TC_ACT_OK);
      expect(parse(t.packet).ack).toBe(ISN_P + 1);
    } finally {
      x.close();
    }
  });

  it('S’s first: up to the queue, recorded; P’s then merges as it leaves, in S’s numbers', () => {
    const x = loaded();
    try {
      // The secondary's segments are timed as they come (a silent heartbeat path is told from a dead node by
      // them); a frame from another MAC is none of its.
      expect(x.secondarySilentMs()).toBeNull();
      expect(x.run('tcpfo_xlate', sSyn({ srcMac: P_MAC })).ret).toBe(TC_ACT_OK);
      expect(x.secondarySilentMs()).toBeNull();
      expect(x.run('tcpfo_xlate', sSyn()).ret).toBe(TC_ACT_OK);
      expect(x.secondarySilentMs()).toBeGreaterThanOrEqual(0);
      expect(x.secondarySilentMs()).toBeLessThan(1000);
      expect(x.kernelEvents()).toEqual([]);
      expect(x.run('tcpfo_skips_queue', pSyn()).ret).toBe(1);
      const r = x.run('tcpfo_sent', pSyn());
      expect(r.ret).toBe(TC_ACT_OK);
      merged(r.packet);
      heard(x);
    } finally {
      x.close();
    }
  });

  it('two SYN-ACKs merge only if recorded within 250 ms of each other (sent for the same cause), in either order: else the later one goes to the queue, and P’s answers follow it there', () => {
    /** A SYN-ACK to the client's SYN (its ISN 776) in Linux's layout, echoing the client's TSval `echo`. */
    const synAck = (isn: number, tsval: number, echo: number, s: boolean) => {
      const opts = linuxSyn(s ? 1400 : 1460, tsval, 7);
      opts.writeUInt32BE(echo, 12);
      return frame({
        seq: isn,
        ack: 777,
        window: s ? 29200 : 64240,
        flags: TCP_SYN | TCP_ACK_FLAG,
        opts,
        ...(s ? { srcMac: S_MAC, ttl: 1 } : {}),
      });
    };
    for (const [apartMs, sFirst] of [
      [0, false],
      [0, true],
      [400, false],
      [400, true],
    ] as const) {
      const x = loaded();
      try {
        // S's answer to the SYN the client sent again (echo 1700), P's to the first (700): a server's
        // request keeps echoing the SYN that made it, so echoes never tell which two belong together.
        const sAck = synAck(ISN_S, 91_000, 1700, true);
        const pAck = synAck(ISN_P, 50_000, 700, false);
        if (sFirst) expect(x.run('tcpfo_xlate', sAck).ret).toBe(TC_ACT_OK);
        else {
          expect(x.run('tcpfo_skips_queue', pAck).ret).toBe(1);
          expect(x.run('tcpfo_sent', pAck).ret).toBe(TC_ACT_STOLEN);
        }
        if (apartMs) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, apartMs);
        if (sFirst) {
          // S's recorded too long ago: P's goes to the queue, whose bridge has S's answers sent since.
          expect(x.run('tcpfo_skips_queue', pAck).ret).toBe(apartMs ? 0 : 1);
          if (!apartMs) expect(x.run('tcpfo_sent', pAck).ret).toBe(TC_ACT_OK);
        } else {
          expect(x.run('tcpfo_xlate', sAck).ret).toBe(apartMs ? TC_ACT_OK : TC_ACT_REDIRECT);
        }
        const ev = x.kernelEvents();
        if (apartMs) {
          expect(ev).toEqual([]);
          // P's answers go to the queue from now on, where the bridge pairs the newest of both.
          expect(x.run('tcpfo_skips_queue', synAck(ISN_P, 51_000, 700, false)).ret).toBe(0);
        } else {
          // Merged as they are: the offset from the two TSvals each server sent.
          expect(ev).toHaveLength(1);
          expect(ev[0]).toMatchObject({ kind: 'handshake', p: { tsval: 50_000 }, s: { tsval: 91_000 } });
        }
      } finally {
        x.close();
      }
    }
  });

  it('an entry of a SYN stands a second: a new connection on the same ports never merges with an old one’s', () => {
    const x = loaded();
    try {
      // S's SYN of a connection whose P's SYN went to the queue: its entry stays behind.
      expect(x.run('tcpfo_xlate', sSyn()).ret).toBe(TC_ACT_OK);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1100);
      // A second later P's SYN of a new connection on those ports is held for its own S's, not merged with the old.
      expect(x.run('tcpfo_skips_queue', pSyn()).ret).toBe(1);
      expect(x.run('tcpfo_sent', pSyn()).ret).toBe(TC_ACT_STOLEN);
      expect(x.kernelEvents()).toEqual([]);
      const r = x.run('tcpfo_xlate', sSyn());
      expect(r.ret).toBe(TC_ACT_REDIRECT);
      heard(x);
    } finally {
      x.close();
    }
  });
});
