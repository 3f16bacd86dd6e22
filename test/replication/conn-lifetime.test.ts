/**
 * A connection's entry ends with the connection, in every role and state:
 * closed by both FINs in either order, reset by the client or aborted by the
 * servers, merged, degraded or born while the primary was alone. An ended
 * entry lingers lingerMs for late segments, counts as closed, gives its
 * place to a new connection when the table is full, and a new SYN on its
 * ports starts a new connection.
 */
import { describe, expect, it } from 'vitest';
import { seqAdd } from '../../bridge/wire/seq.js';
import { buildIpv4Tcp, TCP_ACK_FLAG, TCP_FIN, TCP_RST, TCP_SYN } from '../../bridge/wire/tcp.js';
import { clientSeg, CLIENT, CPORT, Pair, SPORT, VIP } from '../../rig/in-process/harness.js';

const ISN_P = 1_000_000;
const ISN_S = 7_000_000;
const CISN = 5000;
const LINGER = 2000;

type Mode = 'merged' | 'alone';

/** An established connection that carried 5 bytes to the client, which acknowledged them. */
function open(mode: Mode, cfg = {}) {
  const pair = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, { lingerMs: LINGER, ...cfg });
  if (mode === 'alone') pair.merger.secondaryFailed();
  pair.fromClient(clientSeg({ seq: CISN, ack: 0, flags: TCP_SYN }));
  pair.fromP(pair.p.synAck(CISN));
  if (mode === 'merged') pair.fromS(pair.s.synAck(CISN));
  const isn = mode === 'merged' ? ISN_S : ISN_P;
  const cack = seqAdd(CISN, 1);
  pair.fromClient(clientSeg({ seq: cack, ack: isn + 1, flags: TCP_ACK_FLAG }));
  pair.fromP(pair.p.data(Buffer.from('hello'), cack));
  if (mode === 'merged') pair.fromS(pair.s.data(Buffer.from('hello'), cack));
  pair.fromClient(clientSeg({ seq: cack, ack: isn + 6, flags: TCP_ACK_FLAG }));
  return { pair, cack, isn };
}

/** Both servers send a FIN (or an abort). */
function serversSend(pair: Pair, mode: Mode, make: (side: Pair['p']) => Buffer): void {
  pair.fromP(make(pair.p));
  if (mode === 'merged') pair.fromS(make(pair.s));
}

/** Entries left after `ms` more of polling, once a second, as the shell does. */
function leftAfter(pair: Pair, ms: number): number {
  const until = pair.now + ms;
  while (pair.now < until) {
    pair.now += 250;
    pair.merger.poll(pair.now);
  }
  return pair.merger.connections;
}

describe('a connection’s entry ends with the connection', () => {
  for (const mode of ['merged', 'alone'] as const) {
    it(`${mode}: the client closes first, the servers follow — closed, then gone after the linger`, () => {
      const { pair, cack, isn } = open(mode);
      pair.fromClient(clientSeg({ seq: cack, ack: isn + 6, flags: TCP_ACK_FLAG | TCP_FIN }));
      serversSend(pair, mode, (s) => s.fin(cack + 1));
      pair.fromClient(clientSeg({ seq: cack + 1, ack: isn + 7, flags: TCP_ACK_FLAG }));
      expect(pair.merger.phases()).toEqual({ handshake: 0, merging: 0, degraded: 0, closed: 1 });
      expect(leftAfter(pair, LINGER - 500)).toBe(1);
      expect(leftAfter(pair, 1500)).toBe(0);
    });

    it(`${mode}: the servers close first, the client follows — gone after the linger`, () => {
      const { pair, cack, isn } = open(mode);
      serversSend(pair, mode, (s) => s.fin(cack));
      expect(pair.merger.phases().closed).toBe(0); // half-closed: the client may still send
      pair.now += 10_000;
      pair.fromClient(clientSeg({ seq: cack, ack: isn + 7, flags: TCP_ACK_FLAG | TCP_FIN }));
      expect(pair.merger.phases().closed).toBe(1);
      expect(leftAfter(pair, LINGER + 1000)).toBe(0);
    });

    it(`${mode}: the client resets (exactly) — gone after the linger; a blind RST ends nothing`, () => {
      const { pair, cack, isn } = open(mode);
      pair.fromClient(clientSeg({ seq: cack + 70_000, ack: 0, flags: TCP_RST }));
      expect(pair.merger.phases().closed).toBe(0);
      pair.fromClient(clientSeg({ seq: cack, ack: isn + 6, flags: TCP_RST }));
      expect(pair.merger.phases().closed).toBe(1);
      expect(leftAfter(pair, LINGER + 1000)).toBe(0);
    });

    it(`${mode}: the server application aborts (SO_LINGER 0) — the client gets one RST at once, the entry goes`, () => {
      const { pair, cack, isn } = open(mode);
      const before = pair.sink.toClient.length;
      serversSend(pair, mode, (s) => s.data(Buffer.alloc(0), cack, 0, TCP_RST | TCP_ACK_FLAG));
      const rsts = pair.sink.toClient.slice(before).filter((r) => r.repr.flags & TCP_RST);
      expect(rsts).toHaveLength(1);
      expect(rsts[0]!.repr.seq).toBe(isn + 6);
      expect(pair.merger.phases().closed).toBe(1);
      expect(leftAfter(pair, LINGER + 1000)).toBe(0);
    });
  }

  it('merged: S aborts first, then P — one RST, the entry ends', () => {
    const { pair, cack } = open('merged');
    const before = pair.sink.toClient.length;
    pair.fromS(pair.s.data(Buffer.alloc(0), cack, 0, TCP_RST | TCP_ACK_FLAG));
    pair.fromP(pair.p.data(Buffer.alloc(0), cack, 0, TCP_RST | TCP_ACK_FLAG));
    expect(pair.sink.toClient.slice(before).filter((r) => r.repr.flags & TCP_RST)).toHaveLength(1);
    expect(pair.merger.phases().closed).toBe(1);
  });

  it('merged: P aborts and S never answers — after the secondary’s silence the RST goes out, the entry ends', () => {
    const { pair, cack } = open('merged', { secondarySilenceMs: 1000 });
    const rst = pair.fromP(pair.p.data(Buffer.alloc(0), cack, 0, TCP_RST | TCP_ACK_FLAG));
    expect(pair.sink.fate(rst)).toBeUndefined();
    expect(leftAfter(pair, 2500)).toBe(1);
    expect(pair.sink.fate(rst)).toBe('accept');
    expect(pair.merger.phases().closed).toBe(1);
    expect(leftAfter(pair, LINGER + 1000)).toBe(0);
  });

  it('merged: the secondary fails while P’s RST waits for S’s — it goes out, the entry ends', () => {
    const { pair, cack } = open('merged');
    const rst = pair.fromP(pair.p.data(Buffer.alloc(0), cack, 0, TCP_RST | TCP_ACK_FLAG));
    pair.merger.secondaryFailed();
    expect(pair.sink.fate(rst)).toBe('accept');
    expect(pair.merger.phases().closed).toBe(1);
  });

  it('a full table: a new connection takes the place of the oldest ended entry, never of a live one', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { maxConnections: 16, lingerMs: 60_000 });
    pair.merger.secondaryFailed();
    let id = 1;
    const connect = (port: number) => {
      pair.merger.fromClient(id++, clientSeg({ seq: CISN, ack: 0, flags: TCP_SYN, srcPort: port }), pair.now);
      const synAck = buildIpv4Tcp(
        { src: VIP, dst: CLIENT },
        {
          srcPort: SPORT,
          dstPort: port,
          seq: ISN_P,
          ack: CISN + 1,
          flags: TCP_SYN | TCP_ACK_FLAG,
          window: 500,
          urgent: 0,
          options: [{ kind: 'mss', mss: 1460 }],
          payload: Buffer.alloc(0),
        },
      );
      const mine = id++;
      pair.merger.fromPrimary(mine, synAck, false, pair.now);
      // The client acknowledges the handshake: a live connection, never taken for a flood's.
      pair.merger.fromClient(
        id++,
        clientSeg({ seq: CISN + 1, ack: ISN_P + 1, flags: TCP_ACK_FLAG, srcPort: port }),
        pair.now,
      );
      return pair.sink.fate(mine);
    };
    for (let port = 1; port <= 16; port++) expect(connect(port)).toBe('accept');
    expect(connect(17)).toBe('drop'); // 16 live: full
    expect(pair.merger.stats.drops['table-full']).toBe(1);
    // Port 3 ends (the client resets exactly at P's ACK): its place is free for the next.
    pair.merger.fromClient(id++, clientSeg({ seq: CISN + 1, ack: 0, flags: TCP_RST, srcPort: 3 }), pair.now);
    expect(pair.merger.phases().closed).toBe(1);
    expect(connect(18)).toBe('accept');
    expect(pair.merger.stats.evictedClosed).toBe(1);
    expect(pair.merger.find(CLIENT, 3, SPORT)).toBeUndefined();
    expect(connect(19)).toBe('drop');
  });

  it('a table full of half-open entries (a SYN flood) takes the oldest unacknowledged one; a connection the client acknowledged stays', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { maxConnections: 16 });
    pair.merger.secondaryFailed();
    let id = 1;
    const connect = (port: number) => {
      const synAck = buildIpv4Tcp(
        { src: VIP, dst: CLIENT },
        {
          srcPort: SPORT,
          dstPort: port,
          seq: ISN_P,
          ack: CISN + 1,
          flags: TCP_SYN | TCP_ACK_FLAG,
          window: 500,
          urgent: 0,
          options: [{ kind: 'mss', mss: 1460 }],
          payload: Buffer.alloc(0),
        },
      );
      const mine = id++;
      pair.merger.fromPrimary(mine, synAck, false, pair.now);
      return pair.sink.fate(mine);
    };
    expect(connect(1)).toBe('accept');
    // Port 1's client acknowledges the handshake (through the queue here; the kernel's case is read back alike).
    pair.merger.fromClient(
      id++,
      clientSeg({ seq: CISN + 1, ack: ISN_P + 1, flags: TCP_ACK_FLAG, srcPort: 1 }),
      pair.now,
    );
    for (let port = 2; port <= 16; port++) expect(connect(port)).toBe('accept');
    for (let port = 17; port <= 40; port++) expect(connect(port)).toBe('accept');
    expect(pair.merger.stats.evictedHalfOpen).toBe(24);
    expect(pair.merger.stats.drops['table-full']).toBe(0);
    expect(pair.merger.connections).toBe(16);
    expect(pair.merger.find(CLIENT, 1, SPORT)).toBeDefined(); // established: kept
    expect(pair.merger.find(CLIENT, 2, SPORT)).toBeUndefined(); // the oldest half-open: gone
    expect(pair.merger.find(CLIENT, 40, SPORT)).toBeDefined();
  });

  it('a new SYN on the ports of an ended connection is a new connection (P’s TCP reuses a TIME-WAIT)', () => {
    const { pair, cack, isn } = open('merged');
    pair.fromClient(clientSeg({ seq: cack, ack: isn + 6, flags: TCP_ACK_FLAG | TCP_FIN }));
    serversSend(pair, 'merged', (s) => s.fin(cack + 1));
    expect(pair.merger.phases().closed).toBe(1);
    const p2 = new Pair({ isn: ISN_P + 500_000 }, { isn: ISN_S + 900_000 });
    const syn = CISN + 100_000;
    pair.fromClient(clientSeg({ seq: syn, ack: 0, flags: TCP_SYN }));
    const id = pair.fromP(p2.p.synAck(syn));
    expect(pair.sink.fate(id)).toBeUndefined(); // held for S's: a new handshake, not a retransmission
    pair.fromS(p2.s.synAck(syn));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.sink.toClient.at(-1)!.repr.seq).toBe(ISN_S + 900_000);
    expect(pair.merger.find(CLIENT, CPORT, SPORT)!.closedAt).toBeNull();
  });
});
