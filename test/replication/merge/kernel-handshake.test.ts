/**
 * A handshake the kernel merged (native/bpf/handshake.h), heard by the
 * merger through the ring buffer's events (bridge/io/xlate.ts
 * parseKernelEvents): the connection's record must be the one the
 * queue's merge of the same two SYN-ACKs makes, and what the kernel is
 * told to merge next the same. A close that passed in the kernel, heard
 * the same way, ends the connection; one the bridge takes half-way on
 * goes on from the kernel's state.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KERNEL_EVENT_BYTES, parseKernelEvents } from '../../../bridge/io/xlate.js';
import {
  KERNEL_FIN,
  KERNEL_FIN_CLIENT,
  KERNEL_FIN_PENDING,
  KERNEL_HANDOVER_REASONS,
  KERNEL_RESET,
  kernelInit,
  type KernelMergeInit,
  type KernelMergeState,
} from '../../../bridge/primary/merge/kernel.js';
import type { InboundOffload, PrimaryOnlyEntry } from '../../../bridge/primary/merge/types.js';
import { seqAdd } from '../../../bridge/wire/seq.js';
import { WireError } from '../../../bridge/wire/error.js';
import {
  buildIpv4Tcp,
  parseIpv4Tcp,
  TCP_ACK_FLAG,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_URG,
} from '../../../bridge/wire/tcp.js';
import { B } from './fixtures.js';
import { CLIENT, clientSeg, CPORT, Pair, SPORT, VIP, type SideSpec } from '../../../rig/in-process/harness.js';

/** An offload whose kernel merges every connection it is given (the queue's handshake) and hands nothing back. */
function kernelOffload(): InboundOffload & { inits: KernelMergeInit[] } {
  const inits: KernelMergeInit[] = [];
  return {
    inits,
    add: () => {},
    primaryOnly: () => true,
    mergeStart: (_c, init) => {
      inits.push(init);
      return true;
    },
    mergeTake: (): KernelMergeState | null => null,
    remove: () => {},
    seen: () => null,
  };
}

const SYNL_SACK = 1;
const SYNL_TS = 2;
const SYNL_WS = 4;

/** The kernel's event (struct kernel_event of EV_HANDSHAKE, little-endian host) for P's and S's SYN-ACKs (or SYNs). */
function eventOf(pSynAck: Buffer, sSynAck: Buffer, le = true): Buffer {
  const read = (pkt: Buffer) => {
    const t = parseIpv4Tcp(pkt);
    if (t instanceof WireError) throw t;
    const opts = t.tcp.options();
    if (opts instanceof WireError) throw opts;
    let mss = 0;
    let ws = -1;
    let sack = false;
    let ts: { tsval: number; tsecr: number } | null = null;
    for (const o of opts) {
      if (o.kind === 'mss') mss = o.mss;
      else if (o.kind === 'wscale') ws = o.shift;
      else if (o.kind === 'sack-permitted') sack = true;
      else if (o.kind === 'timestamp') ts = { tsval: o.tsval, tsecr: o.tsecr };
    }
    return {
      seq: t.tcp.seq,
      ack: t.tcp.ack,
      window: t.tcp.window,
      mss,
      ws,
      sack,
      ts,
      syn: !(t.tcp.flags & TCP_ACK_FLAG),
    };
  };
  const p = read(pSynAck);
  const s = read(sSynAck);
  const b = eventHead(EV_HANDSHAKE, le);
  const u32 = (v: number, at: number) => (le ? b.writeUInt32LE(v >>> 0, at) : b.writeUInt32BE(v >>> 0, at));
  const u16 = (v: number, at: number) => (le ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at));
  u32(p.seq, 16);
  u32(s.seq, 20);
  u32(s.ack, 24);
  u32(p.ts?.tsval ?? 0, 28);
  u32(s.ts?.tsval ?? 0, 32);
  u32(s.ts?.tsecr ?? 0, 36);
  u16(p.mss, 40);
  u16(s.mss, 42);
  u16(p.window, 44);
  u16(s.window, 46);
  b[48] = Math.max(p.ws, 0);
  b[49] = Math.max(s.ws, 0);
  b[50] = (s.sack ? SYNL_SACK : 0) | (s.ts ? SYNL_TS : 0) | (s.ws >= 0 ? SYNL_WS : 0);
  b[51] = s.syn ? 1 : 0;
  return b;
}

const EV_HANDSHAKE = 1;
const EV_ENDED = 2;

/** A kernel_event's connection (client, service, ports) and kind; its body zero. */
function eventHead(kind: number, le = true): Buffer {
  const b = Buffer.alloc(KERNEL_EVENT_BYTES);
  b.writeUInt32BE(CLIENT, 0);
  b.writeUInt32BE(VIP, 4);
  b.writeUInt16BE(CPORT, 8);
  b.writeUInt16BE(SPORT, 10);
  if (le) b.writeUInt32LE(kind, 12);
  else b.writeUInt32BE(kind, 12);
  return b;
}

/** The kernel's end of a connection (EV_ENDED) with Δseq `dseq`: both FINs, or the client's RST. */
function endedOf(dseq: number, le = true, reset = false): Buffer {
  const b = eventHead(EV_ENDED, le);
  const how = reset ? 2 : 1;
  if (le) {
    b.writeUInt32LE(dseq >>> 0, 16);
    b.writeUInt32LE(how, 20);
  } else {
    b.writeUInt32BE(dseq >>> 0, 16);
    b.writeUInt32BE(how, 20);
  }
  return b;
}

const CLIENT_ISN = 5000;

/** The handshakes among the kernel's events in `buf`. */
function handshakeEvents(buf: Buffer, le = true) {
  return parseKernelEvents(buf, le).flatMap((e) => (e.kind === 'handshake' ? [e] : []));
}

/** The queue's merge of the handshake, and the kernel's, of the same two SYN-ACKs (`syn`: SYNs, the servers open it). */
function both(p: SideSpec, s: SideSpec, winP: number, winS: number, le = true, syn = false) {
  const off = kernelOffload();
  const viaKernel = new Pair(p, s, {}, off);
  const open = (side: Pair['p'], win: number) => (syn ? side.syn(win) : side.synAck(CLIENT_ISN, win));
  const [h] = handshakeEvents(eventOf(open(viaKernel.p, winP), open(viaKernel.s, winS), le), le);
  expect(h!.syn).toBe(syn);
  viaKernel.merger.kernelHandshake(h!, 0);
  // The queue's pair got its SYN-ACKs with the same windows.
  const q = new Pair(p, s, {}, kernelOffload());
  q.fromP(open(q.p, winP));
  q.fromS(open(q.s, winS));
  return { queue: q, kernel: viaKernel, off };
}

const side = (isn: number): fc.Arbitrary<SideSpec> =>
  fc.record({
    isn: fc.constant(isn),
    ts: fc.option(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { nil: null }),
    mss: fc.integer({ min: 536, max: 9000 }),
    wscale: fc.option(fc.integer({ min: 0, max: 14 }), { nil: null }),
    sack: fc.boolean(),
  });

describe('a handshake merged in the kernel', () => {
  it('starts the same record the queue’s merge of the same SYN-ACKs (or SYNs: the servers open it) makes: offsets, options, what the client was told', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        side(0),
        fc.integer({ min: 1, max: 65535 }),
        fc.integer({ min: 1, max: 65535 }),
        fc.boolean(),
        fc.boolean(),
        (isnP, isnS, spec, winP, winS, le, syn) => {
          // Both servers offer the same options (the kernel merges only then); numbers differ.
          const p = { ...spec, isn: isnP };
          const ts = spec.ts ?? null;
          const s = { ...spec, isn: isnS, ts: ts === null ? null : (ts + 12345) >>> 0 };
          const { queue, kernel, off } = both(p, s, winP, winS, le, syn);
          const cq = queue.merger.find(CLIENT, CPORT, SPORT)!;
          const ck = kernel.merger.find(CLIENT, CPORT, SPORT)!;
          expect(ck.phase).toBe('merging');
          expect(ck.inKernel).toBe(true);
          const fields = [
            'deltaSeq',
            'tsOffset',
            'tsOn',
            'wsP',
            'wsS',
            'isn',
            'relNxt',
            'synOptsP',
            'synOptsS',
          ] as const;
          for (const f of [
            ...fields,
            'ackSent',
            'ackSentValid',
            'edgeSent',
            'tsvalP',
            'tsvalS',
            'tsecr',
            'synWinP',
            'synWinS',
            'hasAckP',
            'hasAckS',
            'winP',
            'winS',
          ] as const)
            expect(ck[f], f).toBe(cq[f]);
          // What the kernel merges from: the same as the queue's merge hands it.
          expect(kernelInit(ck)).toEqual(kernelInit(cq));
          // The kernel made its own entries: the bridge asks for none.
          expect(off.inits).toEqual([]);
          expect(kernel.merger.stats.kernelHandshakes).toBe(1);
          expect(kernel.sink.toClient).toEqual([]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('then merges the connection’s data as any other, and a record still in its handshake gives way to it', () => {
    const p = { isn: 1_000_000, ts: 50_000 };
    const s = { isn: 7_000_000, ts: 90_000 };
    const pair = new Pair(p, s, {}, kernelOffload());
    // P's SYN-ACK sent again reached the queue (held) before the kernel's event was heard.
    const held = pair.fromP(pair.p.synAck(CLIENT_ISN));
    const [h] = handshakeEvents(eventOf(pair.p.synAck(CLIENT_ISN), pair.s.synAck(CLIENT_ISN)));
    pair.merger.kernelHandshake(h!, 0);
    expect(pair.sink.fate(held)).toBe('drop');
    pair.merger.kernelHandshake(h!, 1); // heard twice: kept
    expect(pair.merger.connections).toBe(1);
    const c = pair.merger.find(CLIENT, CPORT, SPORT)!;
    expect(c.inKernel).toBe(true);
    // A FIN of P's reaches the queue: the kernel hands the connection over (mergeTake: nothing held there).
    const cack = seqAdd(CLIENT_ISN, 1);
    pair.fromP(pair.p.data(B('bye'), cack));
    pair.fromS(pair.s.data(B('bye'), cack));
    expect(pair.sink.stream(7_000_000).toString()).toBe('bye');
  });

  it('counts against the table: the oldest half-open entry makes room; with none, the kernel’s entries go and it is not served', () => {
    const removed: number[] = [];
    const off = { ...kernelOffload(), remove: (c: { clientPort: number }) => void removed.push(c.clientPort) };
    const pair = new Pair({ isn: 1_000_000, ts: 50_000 }, { isn: 7_000_000, ts: 90_000 }, { maxConnections: 1 }, off);
    const event = (port: number) => {
      const e = eventOf(pair.p.synAck(CLIENT_ISN), pair.s.synAck(CLIENT_ISN));
      e.writeUInt16BE(port, 8);
      return handshakeEvents(e)[0]!;
    };
    pair.merger.kernelHandshake(event(40001), 0);
    // Half-open (the client never acknowledged): evicted for the next one.
    pair.merger.kernelHandshake(event(40002), 1);
    expect(pair.merger.connections).toBe(1);
    expect(pair.merger.stats.evictedHalfOpen).toBe(1);
    expect(pair.merger.find(CLIENT, 40002, SPORT)).toBeDefined();
    expect(removed).toEqual([40001]);
    // Established (the kernel saw the client's ACK): nothing to evict.
    off.seen = () => ({ packets: 1, ackMax: 7_000_001, nxtMax: CLIENT_ISN + 1 });
    pair.merger.kernelHandshake(event(40003), 2);
    expect(pair.merger.find(CLIENT, 40003, SPORT)).toBeUndefined();
    expect(pair.merger.stats.drops['table-full']).toBe(1);
    expect(removed).toEqual([40001, 40003]);
  });

  it('reads events in the host’s byte order, several at once, and nothing from a short tail', () => {
    const pair = new Pair({ isn: 1, ts: 2 }, { isn: 3, ts: 4 });
    const e = eventOf(pair.p.synAck(CLIENT_ISN), pair.s.synAck(CLIENT_ISN), false);
    const two = handshakeEvents(Buffer.concat([e, e, e.subarray(0, 20)]), false);
    expect(two).toHaveLength(2);
    expect(two[0]).toMatchObject({ client: CLIENT, service: VIP, clientPort: CPORT, servicePort: SPORT, ack: 5001 });
    expect(two[0]!.p).toMatchObject({ isn: 1, tsval: 2, mss: 1460, wscale: 7, sackOk: true });
    expect(two[0]!.s).toMatchObject({ isn: 3, tsval: 4 });
  });

  it('reads a close the kernel told, in either byte order, among handshakes; skips a kind it does not know', () => {
    const pair = new Pair({ isn: 1, ts: 2 }, { isn: 3, ts: 4 });
    for (const le of [true, false]) {
      const hs = eventOf(pair.p.synAck(CLIENT_ISN), pair.s.synAck(CLIENT_ISN), le);
      const odd = eventHead(99, le);
      const ev = parseKernelEvents(
        Buffer.concat([hs, endedOf(0xfedc_ba98, le), odd, endedOf(7, le, true), hs.subarray(0, 30)]),
        le,
      );
      expect(ev.map((e) => e.kind)).toEqual(['handshake', 'ended', 'ended']);
      expect(ev[1]).toEqual({
        kind: 'ended',
        client: CLIENT,
        service: VIP,
        clientPort: CPORT,
        servicePort: SPORT,
        dseq: 0xfedc_ba98,
        reset: false,
      });
      expect(ev[2]).toMatchObject({ dseq: 7, reset: true });
    }
  });
});

describe('a close that passed in the kernel', () => {
  const P = { isn: 1_000_000, ts: 50_000 };
  const S = { isn: 7_000_000, ts: 90_000 };
  /** The kernel's state of a connection taken after S's ISN + `sent` was released, with `more`. */
  const taken = (sent: number, more: Partial<KernelMergeState>): KernelMergeState => ({
    flags: 0,
    handover: 1,
    ahead: 0,
    pending: [],
    stashed: [],
    relNxt: S.isn + sent,
    ackP: CLIENT_ISN + 1,
    ackS: CLIENT_ISN + 1,
    winP: 64_000,
    winS: 64_000,
    ackSent: CLIENT_ISN + 1,
    edgeSent: CLIENT_ISN + 64_001,
    tsvalMax: 90_000,
    tsecr: 777,
    ...more,
  });
  const heard = (pair: Pair, buf: Buffer, now: number) => {
    for (const e of parseKernelEvents(buf)) {
      if (e.kind === 'handshake') pair.merger.kernelHandshake(e, now);
      else pair.merger.kernelEnded(e, now);
    }
  };

  it('ends the connection: it lingers, then it and its kernel entries go; an end of another connection on the same ports does nothing', () => {
    const removed: number[] = [];
    const off = { ...kernelOffload(), remove: (c: { clientPort: number }) => void removed.push(c.clientPort) };
    const pair = new Pair(P, S, { lingerMs: 2000 }, off);
    heard(pair, eventOf(pair.p.synAck(CLIENT_ISN), pair.s.synAck(CLIENT_ISN)), 0);
    const c = pair.merger.find(CLIENT, CPORT, SPORT)!;
    expect(c.inKernel).toBe(true);
    heard(pair, endedOf(c.deltaSeq + 1), 10);
    expect(c.closedAt).toBeNull();
    heard(pair, endedOf(c.deltaSeq), 20);
    expect(c.closedAt).toBe(20);
    expect(pair.merger.stats.kernelCloses).toBe(1);
    pair.merger.poll(1500);
    expect(pair.merger.connections).toBe(1);
    pair.merger.poll(3100);
    expect(pair.merger.connections).toBe(0);
    expect(removed).toEqual([CPORT]);
  });

  it('the client’s RST ended it in the kernel: closed, it lingers, then goes; taken after that, closed at once', () => {
    const pair = new Pair(P, S, { lingerMs: 2000 }, kernelOffload());
    heard(pair, eventOf(pair.p.synAck(CLIENT_ISN), pair.s.synAck(CLIENT_ISN)), 0);
    const c = pair.merger.find(CLIENT, CPORT, SPORT)!;
    heard(pair, endedOf(c.deltaSeq, true, true), 10);
    expect(c.phase).toBe('closed');
    expect(c.finClient).toBe(false);
    expect(c.closedAt).toBe(10);
    pair.merger.poll(3100);
    expect(pair.merger.connections).toBe(0);
    // The bridge takes one the client's RST ended in the kernel (its event not heard yet): closed.
    const off = { ...kernelOffload(), mergeTake: () => taken(1, { flags: KERNEL_RESET }) };
    const viaKernel = new Pair(P, S, {}, off);
    heard(viaKernel, eventOf(viaKernel.p.synAck(CLIENT_ISN), viaKernel.s.synAck(CLIENT_ISN)), 0);
    viaKernel.fromClient(clientSeg({ seq: CLIENT_ISN + 1, ack: 7_000_001, flags: TCP_ACK_FLAG }));
    const t = viaKernel.merger.find(CLIENT, CPORT, SPORT)!;
    expect(t.phase).toBe('closed');
    expect(t.closedAt).not.toBeNull();
  });

  it('taken by the bridge after both FINs passed there: ended at once', () => {
    const off = { ...kernelOffload(), mergeTake: () => taken(5, { flags: KERNEL_FIN | KERNEL_FIN_CLIENT }) };
    const viaKernel = new Pair(P, S, {}, off);
    heard(viaKernel, eventOf(viaKernel.p.synAck(CLIENT_ISN), viaKernel.s.synAck(CLIENT_ISN)), 0);
    // A stray segment of the client reaches the queue: the bridge takes the connection.
    viaKernel.fromClient(clientSeg({ seq: CLIENT_ISN + 2, ack: 7_000_005, flags: TCP_ACK_FLAG }));
    const c = viaKernel.merger.find(CLIENT, CPORT, SPORT)!;
    expect(c.inKernel).toBe(false);
    expect(c).toMatchObject({ finClient: true, finReleased: true, finS: 7_000_004 });
    expect(c.closedAt).not.toBeNull();
  });

  it('taken with S’s FIN waiting (dropped in the kernel): P’s FIN, from its TCP, goes to the client; without the FIN noted it would be held as an early end of P’s stream', () => {
    for (const flags of [KERNEL_FIN_PENDING, 0]) {
      const off = {
        ...kernelOffload(),
        mergeTake: () => taken(1, { flags, ahead: 2, pending: [7_000_005] }),
      };
      const pair = new Pair(P, S, {}, off);
      heard(pair, eventOf(pair.p.synAck(CLIENT_ISN), pair.s.synAck(CLIENT_ISN)), 0);
      // P's "bye" and FIN in one segment, as S's was: to the queue (the bridge takes the connection).
      const id = pair.fromP(pair.p.data(B('bye'), CLIENT_ISN + 1, 500, TCP_ACK_FLAG | TCP_FIN));
      const c = pair.merger.find(CLIENT, CPORT, SPORT)!;
      if (flags) {
        expect(pair.sink.fate(id)).toBe('accept');
        expect(c.phase).toBe('merging');
        expect(c.finReleased).toBe(true);
      } else {
        expect(pair.sink.fate(id)).toBeUndefined();
        expect(c.finReleased).toBe(false);
      }
    }
  });

  /** An offload whose batch of primary-only entries takes `took(n)` of n (a full map: fewer), and counts single entries. */
  const aloneOffload = (took: (n: number) => number) => {
    const batches: PrimaryOnlyEntry[][] = [];
    let single = 0;
    const off = {
      ...kernelOffload(),
      primaryOnly: () => {
        single++;
        return true;
      },
      primaryOnlyMany: (list: readonly PrimaryOnlyEntry[]) => {
        batches.push([...list]);
        return took(list.length);
      },
      mergeTake: () => taken(1, {}),
    };
    return { off, batches, single: () => single };
  };

  it('the secondary fails: each connection the kernel merges goes primary-only there in the first step, in one batch, with its offsets; the steps then take its state and list it no second time', () => {
    const { off, batches, single } = aloneOffload((n) => n);
    const pair = new Pair(P, S, {}, off);
    heard(pair, eventOf(pair.p.synAck(CLIENT_ISN), pair.s.synAck(CLIENT_ISN)), 0);
    const c = pair.merger.find(CLIENT, CPORT, SPORT)!;
    expect(c.inKernel).toBe(true);
    pair.merger.beginAlone();
    expect(batches).toHaveLength(0);
    // The first step: the batch, before any turn.
    expect(pair.merger.goAlone(0)).toBe(false);
    expect(batches).toHaveLength(1);
    expect(c.phase).toBe('merging');
    expect(batches[0]).toEqual([
      {
        c: expect.objectContaining({ client: CLIENT, clientPort: CPORT, servicePort: SPORT }),
        dseq: c.deltaSeq,
        dts: c.tsOffset,
        timestamps: c.tsOn,
        wscaleP: c.wsP,
        wscaleS: c.wsS,
      },
    ]);
    expect(c.releasedByKernel).toBe(true);
    expect(pair.merger.goAlone(Infinity)).toBe(true);
    expect(c.phase).toBe('degraded');
    expect(c.releasedByKernel).toBe(true);
    expect(single()).toBe(0);
    expect(pair.merger.stats.aloneTurns).toEqual({ inKernelAtOnce: 1, steps: 1, asNeeded: 0 });
  });

  it('the secondary fails with the kernel’s map full: the connections it did not take get their entry one by one, as the steps reach them', () => {
    const { off, single } = aloneOffload(() => 0);
    const pair = new Pair(P, S, {}, off);
    heard(pair, eventOf(pair.p.synAck(CLIENT_ISN), pair.s.synAck(CLIENT_ISN)), 0);
    pair.merger.beginAlone();
    const c = pair.merger.find(CLIENT, CPORT, SPORT)!;
    expect(pair.merger.goAlone(Infinity)).toBe(true);
    expect(single()).toBe(1);
    expect(c.releasedByKernel).toBe(true);
    expect(pair.merger.stats.aloneTurns.inKernelAtOnce).toBe(0);
  });

  it('the secondary fails while P’s FIN waits in the kernel for S’s: the stashed FIN leaves at once, in the client’s space', () => {
    let pFin: Buffer | null = null;
    const off = {
      ...kernelOffload(),
      mergeTake: () => taken(1, { flags: KERNEL_FIN_PENDING, ahead: 1, pending: [7_000_002], stashed: [pFin!] }),
    };
    const pair = new Pair(P, S, {}, off);
    heard(pair, eventOf(pair.p.synAck(CLIENT_ISN), pair.s.synAck(CLIENT_ISN)), 0);
    pFin = pair.p.fin(CLIENT_ISN + 1);
    pair.merger.secondaryFailed();
    const out = pair.sink.sent.flatMap((b) => {
      const t = parseIpv4Tcp(b);
      return t instanceof WireError ? [] : [t.tcp];
    });
    expect(out).toHaveLength(1);
    const t = out[0]!;
    expect(t.has(TCP_FIN)).toBe(true);
    expect(t.seq).toBe(7_000_001);
    expect(t.checksumValid()).toBe(true);
  });
});

describe('a connection the bridge took returns to the kernel', () => {
  const P = { isn: 1_000_000, ts: 50_000 };
  const S = { isn: 7_000_000, ts: 90_000 };
  const ACKS_AND_SENT = (1 << 2) | (1 << 3) | (1 << 4);
  /**
   * A kernel that keeps what it was last told (mergeStart, mergeResume) and
   * answers a take with it, as if nothing of the connection had reached it
   * since, and says it let the connection go for `handover`
   * (KERNEL_HANDOVER_REASONS); `returns` records each resume.
   */
  function kernel(handover = 1, state: Partial<KernelMergeState> = {}) {
    let last: KernelMergeInit | null = null;
    const returns: KernelMergeInit[] = [];
    const takes: number[] = [];
    const off: InboundOffload = {
      ...kernelOffload(),
      mergeStart: (_c, init) => {
        last = init;
        return true;
      },
      mergeResume: (_c, init) => {
        last = init;
        returns.push(init);
        return true;
      },
      mergeTake: (): KernelMergeState | null => {
        if (!last) return null;
        takes.push(last.relNxt);
        return { ...last, flags: ACKS_AND_SENT, handover, ahead: 0, pending: [], stashed: [], ...state };
      },
    };
    return { off, returns, takes };
  }
  /** A pair whose handshake the kernel merged (the bridge heard of it only), and its connection. */
  function kernelPair(handover = 1, state: Partial<KernelMergeState> = {}) {
    const k = kernel(handover, state);
    const pair = new Pair(P, S, {}, k.off);
    for (const e of parseKernelEvents(eventOf(pair.p.synAck(CLIENT_ISN), pair.s.synAck(CLIENT_ISN))))
      if (e.kind === 'handshake') pair.merger.kernelHandshake(e, 0);
    const c = pair.merger.find(CLIENT, CPORT, SPORT)!;
    // The kernel made its entries itself (no mergeStart): the fake kernel learns them here.
    k.off.mergeStart({ client: CLIENT, service: VIP, clientPort: CPORT, servicePort: SPORT }, kernelInit(c)!);
    return { ...k, pair, c };
  }
  /** The same, taken by the bridge as a client's segment reached its queue. */
  function takenPair(handover = 1) {
    const t = kernelPair(handover);
    t.pair.fromClient(clientSeg({ seq: CLIENT_ISN + 1, ack: S.isn + 1, flags: TCP_ACK_FLAG }));
    expect(t.c.inKernel).toBe(false);
    return t;
  }

  it('taken by a server’s segment, the client’s ACKs never seen by the bridge (the kernel translated them): it returns all the same', () => {
    const { pair, c, returns } = kernelPair();
    // Urgent: a segment the programs do not merge, so it reaches the queue.
    const id = pair.fromP(pair.p.data(B('hi'), CLIENT_ISN + 1, 500, TCP_ACK_FLAG | TCP_PSH | TCP_URG));
    expect(c.inKernel).toBe(false);
    expect(c.established).toBe(false);
    pair.fromS(pair.s.data(B('hi'), CLIENT_ISN + 1, 500, TCP_ACK_FLAG | TCP_PSH | TCP_URG));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.merger.batchEnd(1)).toBe(1);
    expect(returns[0]).toMatchObject({ relNxt: S.isn + 3 });
  });

  it('at the end of a batch, with nothing waiting: from where the bridge stands, and a segment that reaches the queue after takes it back', () => {
    const { pair, c, returns, takes } = takenPair();
    expect(pair.merger.batchEnd(1)).toBe(1);
    expect(c.inKernel).toBe(true);
    expect(pair.merger.stats.kernelReturns).toBe(1);
    expect(returns[0]).toMatchObject({ relNxt: S.isn + 1, dseq: c.deltaSeq, acksKnown: true, timestamps: true });
    // Only connections the batch touched: the next batch returns none.
    expect(pair.merger.batchEnd(2)).toBe(0);
    // P's answer reaches the queue (it passed the programs before the return): the bridge takes it
    // again, holds it for S's copy, and keeps it while it waits.
    const id = pair.fromP(pair.p.data(B('hello'), CLIENT_ISN + 1));
    expect(c.inKernel).toBe(false);
    expect(takes).toHaveLength(2);
    // Each take counted by what brought it: the client's ACK first, then P's answer.
    expect(pair.merger.stats.kernelTakes).toEqual({ 'client/ack': 1, 'p/data': 1 });
    expect(pair.sink.fate(id)).toBeUndefined();
    expect(pair.merger.batchEnd(3)).toBe(0);
    // S's copy releases it: nothing waits, and the connection returns past the answer, told what the client was.
    pair.fromS(pair.s.data(B('hello'), CLIENT_ISN + 1));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.merger.batchEnd(4)).toBe(1);
    expect(returns[1]).toMatchObject({ relNxt: S.isn + 6, ackSent: c.ackSent, edgeSent: c.edgeSent });
    expect(returns[1]!.tsvalMax).toBeGreaterThanOrEqual(returns[0]!.tsvalMax);
  });

  it('not while something waits or is under way: S’s bytes ahead, P’s held, a SACK block, a FIN; nor once the secondary failed', () => {
    const ahead = takenPair();
    ahead.pair.fromS(ahead.pair.s.data(B('early'), CLIENT_ISN + 1));
    expect(ahead.pair.merger.batchEnd(1)).toBe(0);
    // P catches up: released, nothing waits.
    ahead.pair.fromP(ahead.pair.p.data(B('early'), CLIENT_ISN + 1));
    expect(ahead.pair.merger.batchEnd(2)).toBe(1);

    const held = takenPair();
    held.pair.fromP(held.pair.p.data(B('late'), CLIENT_ISN + 1));
    expect(held.pair.merger.batchEnd(1)).toBe(0);

    const sack = takenPair();
    sack.pair.fromS(
      sack.pair.s.ack(CLIENT_ISN + 1, 500, [{ kind: 'sack', blocks: [[CLIENT_ISN + 10, CLIENT_ISN + 20]] }]),
    );
    expect(sack.c.sackS.length).toBeGreaterThan(0);
    expect(sack.pair.merger.batchEnd(1)).toBe(0);

    const fin = takenPair();
    fin.pair.fromS(fin.pair.s.fin(CLIENT_ISN + 1));
    fin.pair.fromP(fin.pair.p.fin(CLIENT_ISN + 1));
    expect(fin.c.finReleased).toBe(true);
    expect(fin.pair.merger.batchEnd(1)).toBe(0);

    const alone = takenPair();
    alone.pair.merger.secondaryFailed();
    expect(alone.pair.merger.batchEnd(1)).toBe(0);
    expect(alone.returns).toHaveLength(0);
  });

  it('taken as the secondary fails: counted as such', () => {
    const { pair, c } = kernelPair();
    pair.merger.secondaryFailed();
    expect(c.inKernel).toBe(false);
    expect(pair.merger.stats.kernelTakes).toEqual({ alone: 1 });
  });

  it('let go for a segment larger than the kernel merges (a jumbo-frame LAN): counted as such, and back at the batch’s end like any other', () => {
    const { pair, c, returns } = takenPair(KERNEL_HANDOVER_REASONS.indexOf('large'));
    expect(pair.merger.stats.kernelHandovers).toEqual({ large: 1 });
    // The kernel had let it go already: not a take of the bridge's.
    expect(pair.merger.stats.kernelTakes).toEqual({});
    const id = pair.fromP(pair.p.data(Buffer.alloc(3000, 1), CLIENT_ISN + 1));
    pair.fromS(pair.s.data(Buffer.alloc(3000, 1), CLIENT_ISN + 1));
    expect(pair.sink.fate(id)).toBe('accept');
    // Its next answers may be small: it returns (keeping it in the bridge cost a mixed workload twice the round trip).
    expect(pair.merger.batchEnd(1)).toBe(1);
    expect(returns).toHaveLength(1);
    expect(c.inKernel).toBe(true);
  });

  it('not returned while S has not acknowledged what P did: the bridge keeps it and bounds S’s silence; returned once S’s ACK caught up', () => {
    const { pair, c } = takenPair();
    // The client's request: P acknowledges it, S not yet; nothing of the servers' waits.
    pair.fromP(pair.p.ack(CLIENT_ISN + 11));
    expect(pair.merger.batchEnd(1)).toBe(0);
    expect(c.inKernel).toBe(false);
    expect(c.waitsForS()).toBe(true);
    // S's ACK comes: nothing waits, and the connection goes back.
    pair.fromS(pair.s.ack(CLIENT_ISN + 11));
    expect(pair.merger.batchEnd(2)).toBe(1);
    expect(c.inKernel).toBe(true);
    // S silent (its ACK never comes): after limits.secondary_silence_ms the connection goes on alone.
    const silent = takenPair();
    silent.pair.fromP(silent.pair.p.ack(CLIENT_ISN + 11));
    expect(silent.pair.merger.batchEnd(1)).toBe(0);
    silent.pair.merger.poll(2_000); // the wait is seen
    const before = silent.pair.sink.toClient.length;
    silent.pair.merger.poll(20_000); // and has lasted
    expect(silent.pair.events.filter((e) => e.includes('no progress')).length).toBe(1);
    expect(silent.c.phase).toBe('degraded');
    // The client hears P's ACK at once (an upload's client would otherwise wait for its timer).
    const prompt = silent.pair.sink.toClient.slice(before).map((r) => r.repr);
    expect(prompt).toHaveLength(1);
    expect(prompt[0]).toMatchObject({ ack: CLIENT_ISN + 11, payload: Buffer.alloc(0) });
  });

  it('taken after waiting for S in the kernel: S’s silence counts from when the wait began there, not from the take', () => {
    const lag = (waitMs: number) => {
      const { pair, c } = kernelPair(KERNEL_HANDOVER_REASONS.indexOf('ack-lag'), { waitMs });
      // The client's request, acknowledged by P only: P's ACK reaches the queue and the bridge takes the connection.
      pair.now = 10_000;
      pair.fromP(pair.p.ack(CLIENT_ISN + 11));
      expect(c.inKernel).toBe(false);
      pair.merger.poll(10_010);
      pair.merger.poll(10_600);
      return c.phase;
    };
    // S had not caught up for 1.5 s when taken: 600 ms later it has been silent past the 2 s limit.
    expect(lag(1500)).toBe('degraded');
    // Taken as the wait began: not yet.
    expect(lag(0)).toBe('merging');
  });

  it('a RST of S’s outside its window (forged from its MAC) moves neither S’s ACK nor its TSval', () => {
    const { pair, c } = takenPair();
    const ackS = c.ackS;
    const tsvalS = c.tsvalS;
    const forged = buildIpv4Tcp(
      { src: VIP, dst: CLIENT },
      {
        srcPort: SPORT,
        dstPort: CPORT,
        seq: S.isn + 0x4000_0000,
        ack: CLIENT_ISN + 0x3000_0000,
        flags: TCP_RST | TCP_ACK_FLAG,
        window: 500,
        urgent: 0,
        options: [{ kind: 'timestamp', tsval: S.ts + 0x1000_0000, tsecr: 0x2000_0000 }],
        payload: Buffer.alloc(0),
      },
    );
    pair.fromS(forged);
    expect(c.phase).toBe('merging');
    expect(c.ackS).toBe(ackS);
    expect(c.tsvalS).toBe(tsvalS);
  });

  it('an offload without the return (or one that refuses it) keeps the connection in the queue', () => {
    const t = takenPair();
    const refused = new Pair(P, S, {}, { ...t.off, mergeResume: () => false });
    for (const e of parseKernelEvents(eventOf(refused.p.synAck(CLIENT_ISN), refused.s.synAck(CLIENT_ISN))))
      if (e.kind === 'handshake') refused.merger.kernelHandshake(e, 0);
    refused.fromClient(clientSeg({ seq: CLIENT_ISN + 1, ack: S.isn + 1, flags: TCP_ACK_FLAG }));
    expect(refused.merger.batchEnd(1)).toBe(0);
    expect(refused.merger.find(CLIENT, CPORT, SPORT)!.inKernel).toBe(false);
    expect(refused.merger.stats.kernelReturns).toBe(0);
  });
});
