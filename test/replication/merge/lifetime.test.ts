/** A connection's entry from start to end (merger.ts, merge/expiry.ts): termination (§8), unknown connections, the table's bounds. */
import { describe, expect, it } from 'vitest';
import { seqAdd, seqSub } from '../../../bridge/wire/seq.js';
import { buildIpv4Tcp, TCP_ACK_FLAG, TCP_FIN, TCP_RST, TCP_SYN } from '../../../bridge/wire/tcp.js';
import { A_P, clientSeg, CLIENT, CPORT, Pair, SPORT, VIP } from '../../../rig/in-process/harness.js';
import { B, established, ISN_P, ISN_S, refill } from './fixtures.js';

describe('termination (§8)', () => {
  it('servers close first: P’s FIN waits for S’s FIN at the same offset', () => {
    const { pair, cack } = established();
    pair.fromS(pair.s.data(B('bye'), cack));
    pair.fromP(pair.p.data(B('bye'), cack));
    const fin = pair.fromP(pair.p.fin(cack));
    expect(pair.sink.fate(fin)).toBeUndefined();
    pair.fromS(pair.s.fin(cack));
    expect(pair.sink.fate(fin)).toBe('accept');
    const r = pair.sink.toClient.find((t) => t.id === fin)!;
    expect(r.repr.flags & TCP_FIN).toBeTruthy();
    expect(r.repr.seq).toBe(ISN_S + 4);
    // The client's FIN: exactly one ACK of it reaches the client, whatever the
    // servers' windows say (a second would meet a closed socket and draw a reset).
    pair.fromClient(clientSeg({ seq: 5001, ack: ISN_S + 5, flags: TCP_FIN | TCP_ACK_FLAG }));
    const before = pair.sink.toClient.length;
    pair.fromS(pair.s.ack(5002, 500));
    pair.fromP(pair.p.ack(5002, 500)); // the merged ACK of the FIN goes out
    pair.fromS(pair.s.ack(5002, 60_000)); // then both windows open
    const update = pair.fromP(pair.p.ack(5002, 60_000));
    expect(pair.sink.fate(update)).toBe('drop');
    expect(pair.sink.toClient.slice(before).filter((t) => t.repr.ack === 5002)).toHaveLength(1);
    // Then the connection lingers, and expires.
    expect(pair.merger.connections).toBe(1);
    pair.now = 60_001 + 1;
    expect(pair.merger.poll(pair.now)).toBe(1);
    expect(pair.merger.connections).toBe(0);
  });

  it('client closes first: half-closed, server data still merged, then the servers’ FIN', () => {
    const { pair, cack } = established();
    const finIn = pair.fromClient(clientSeg({ seq: 5001, ack: ISN_S + 1, flags: TCP_FIN | TCP_ACK_FLAG }));
    expect(finIn.out!.readUInt32BE(28)).toBe(ISN_P + 1);
    const fin = cack + 1;
    const d = pair.fromP(pair.p.data(B('late'), fin));
    expect(pair.sink.fate(d)).toBeUndefined();
    pair.fromS(pair.s.data(B('late'), fin));
    expect(pair.sink.fate(d)).toBe('accept');
    const f = pair.fromP(pair.p.fin(fin));
    pair.fromS(pair.s.fin(fin));
    expect(pair.sink.fate(f)).toBe('accept');
    expect(pair.sink.stream(ISN_S).toString()).toBe('late');
  });

  it('a FIN at different offsets on P and S is a divergence', () => {
    const { pair, cack } = established();
    pair.fromS(pair.s.data(B('ab'), cack));
    pair.fromS(pair.s.fin(cack));
    const f = pair.fromP(pair.p.data(B('abc'), cack, 500, TCP_ACK_FLAG | TCP_FIN));
    expect(pair.sink.fate(f)).toBe('accept'); // degraded: P alone decides
    expect(pair.merger.stats.divergences).toBe(1);
  });

  it('P’s stream ending where S’s goes on (P’s server died?) holds P’s FIN for earlyEndGraceMs, then counts as a divergence', () => {
    const pair = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, { earlyEndGraceMs: 3000 });
    const cack = seqAdd(pair.handshake(), 1);
    const fin = pair.fromP(pair.p.data(B('abc'), cack, 500, TCP_ACK_FLAG | TCP_FIN));
    pair.fromS(pair.s.data(B('abcdef'), cack));
    expect(pair.sink.fate(fin)).toBeUndefined(); // held: the client sees no end of stream
    expect(pair.merger.stats.divergences).toBe(0);
    pair.now = 2000;
    pair.merger.poll(pair.now);
    expect(pair.sink.fate(fin)).toBeUndefined();
    pair.now = 3001;
    pair.merger.poll(pair.now);
    expect(pair.merger.stats.divergences).toBe(1);
    expect(pair.sink.fate(fin)).toBe('accept'); // degraded: P alone decides
  });

  it('expires half-open connections and drops what they held', () => {
    const pair = new Pair({ isn: 1 }, { isn: 2 }, { secondarySilenceMs: 60_000 });
    const id = pair.fromP(pair.p.synAck(5000));
    pair.now = 30_001;
    expect(pair.merger.poll(pair.now)).toBe(1);
    expect(pair.sink.fate(id)).toBe('drop');
  });

  it('holds P’s RST until S resets too, then the client gets it in S’s space (an abort, SO_LINGER 0)', () => {
    const { pair, cack } = established();
    const rst = pair.fromP(pair.p.data(Buffer.alloc(0), cack, 0, TCP_RST | TCP_ACK_FLAG));
    expect(pair.sink.fate(rst)).toBeUndefined();
    pair.fromS(pair.s.data(Buffer.alloc(0), cack, 0, TCP_RST | TCP_ACK_FLAG));
    expect(pair.sink.fate(rst)).toBe('accept');
    const out = pair.sink.toClient.at(-1)!;
    expect(out.repr.flags & TCP_RST).toBe(TCP_RST);
    expect(out.repr.seq).toBe(ISN_S + 1);
    expect(out.checksumOk).toBe(true);
    expect(pair.merger.phases().closed).toBe(1);
  });
});

describe('unknown connections', () => {
  it('never lets P’s raw sequence numbers out', () => {
    const pair = new Pair({ isn: 1 }, { isn: 2 });
    const id = pair.fromP(pair.p.data(B('x'), 5001));
    expect(pair.sink.fate(id)).toBe('drop');
    expect(pair.merger.stats.drops['unknown-connection']).toBe(1);
  });
});

describe('bounds: a SYN flood cannot starve established connections', () => {
  /** A SYN-ACK to client port `port`, as P's or S's TCP sends it. */
  const synAck = (port: number, isn: number) =>
    buildIpv4Tcp(
      { src: VIP, dst: CLIENT },
      {
        srcPort: SPORT,
        dstPort: port,
        seq: isn,
        ack: 1,
        flags: TCP_SYN | TCP_ACK_FLAG,
        window: 100,
        urgent: 0,
        options: [{ kind: 'mss', mss: 1460 }],
        payload: Buffer.alloc(0),
      },
    );
  /** S's SYN-ACK diverted to P (the merger only reads the client from the divert option, given here). */
  const fromS = (pair: Pair, port: number, isn: number) => {
    const pkt = synAck(port, isn);
    pkt.writeUInt32BE(A_P, 16);
    refill(pkt);
    pair.merger.fromSecondary(999_000 + port, pkt, CLIENT, pair.now);
  };

  it('beyond maxConnections a new connection takes the oldest half-open entry’s place; the established one keeps working', () => {
    const pair = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, { maxConnections: 3 });
    const cack = seqAdd(pair.handshake(), 1);
    pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 1, flags: TCP_ACK_FLAG }));
    const first = pair.fromP(synAck(50001, 10));
    pair.fromP(synAck(50002, 10));
    const third = pair.fromP(synAck(50003, 10));
    expect(pair.sink.fate(first)).toBe('drop'); // the oldest half-open, its SYN-ACK let go
    expect(pair.sink.fate(third)).toBeUndefined(); // held for S's, as usual
    expect(pair.merger.stats.evictedHalfOpen).toBe(1);
    expect(pair.merger.stats.drops['table-full']).toBe(0);
    fromS(pair, 50004, 20); // S's side of a fourth is only kept aside, until P's comes
    expect(pair.merger.connections).toBe(3);
    const id = pair.fromP(pair.p.data(B('still here'), cack));
    pair.fromS(pair.s.data(B('still here'), cack));
    expect(pair.sink.fate(id)).toBe('accept');
  });

  it('S’s SYN-ACKs with no SYN-ACK of P’s (forged with the secondary’s address) never enter the table; bounded, forgotten, counted', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { maxPendingHandshakes: 16, handshakeTimeoutMs: 2000 });
    for (let port = 40_000; port < 42_000; port++) fromS(pair, port, port * 7);
    expect(pair.merger.connections).toBe(0);
    expect(pair.merger.stats.drops['unmatched-syn']).toBe(2000 - 16);
    // The 16 newest are kept: P's SYN-ACK for one of them merges at once.
    const id = pair.fromP(synAck(41_999, 10));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.merger.phases().merging).toBe(1);
    // The rest are forgotten after the handshake timeout.
    pair.now = 2001;
    pair.merger.poll(pair.now);
    expect(pair.merger.stats.drops['unmatched-syn']).toBe(2000 - 1);
    const late = pair.fromP(synAck(41_998, 10));
    expect(pair.sink.fate(late)).toBeUndefined(); // waits for S's again
  });

  it('a SYN-ACK forged with the secondary’s address that answers another SYN (another client ISN) never sets Δseq; the genuine one does', () => {
    for (const pFirst of [true, false]) {
      const pair = new Pair({ isn: ISN_P }, { isn: ISN_S });
      pair.fromClient(clientSeg({ seq: 5000, ack: 0, flags: TCP_SYN }));
      const forged = new Pair({ isn: 123_456 }, { isn: 654_321 });
      let id: number;
      if (pFirst) {
        id = pair.fromP(pair.p.synAck(5000));
        pair.fromS(forged.s.synAck(9999)); // acknowledges 10000, not 5001
      } else {
        pair.fromS(forged.s.synAck(9999));
        id = pair.fromP(pair.p.synAck(5000));
      }
      expect(pair.sink.fate(id)).toBeUndefined();
      expect(pair.merger.stats.drops['unmatched-syn']).toBe(1);
      pair.fromS(pair.s.synAck(5000));
      expect(pair.sink.fate(id)).toBe('accept');
      expect(pair.merger.find(CLIENT, CPORT, SPORT)!.deltaSeq).toBe(seqSub(ISN_P, ISN_S));
    }
  });

  it('a RST from the secondary’s address outside S’s send window changes nothing; S’s own abort does', () => {
    const { pair, cack } = established();
    pair.fromP(pair.p.data(B('hello'), cack));
    pair.fromS(pair.s.data(B('hello'), cack));
    for (const seq of [ISN_S + 10_000, ISN_S - 10_000, (ISN_S + 2 ** 31) >>> 0, 12345]) {
      pair.fromS(
        buildIpv4Tcp(
          { src: VIP, dst: CLIENT },
          {
            srcPort: SPORT,
            dstPort: CPORT,
            seq,
            ack: cack,
            flags: TCP_RST | TCP_ACK_FLAG,
            window: 0,
            urgent: 0,
            options: [],
            payload: Buffer.alloc(0),
          },
        ),
      );
    }
    expect(pair.merger.stats.drops['out-of-window']).toBe(4);
    expect(pair.merger.phases().merging).toBe(1);
    pair.fromS(pair.s.data(Buffer.alloc(0), cack, 0, TCP_RST | TCP_ACK_FLAG)); // at S's next number
    expect(pair.merger.phases().merging).toBe(0);
  });

  it('holds at most maxPendingHandshakes SYN-ACKs in the kernel’s queue', () => {
    const pair = new Pair({ isn: 1 }, { isn: 2 }, { maxPendingHandshakes: 2 });
    const a = pair.fromP(synAck(50001, 10));
    pair.fromP(synAck(50002, 10));
    const c = pair.fromP(synAck(50003, 10));
    expect(pair.sink.fate(a)).toBeUndefined();
    expect(pair.sink.fate(c)).toBe('drop');
    fromS(pair, 50001, 20); // one merges: room again
    expect(pair.sink.fate(a)).toBe('accept');
    const d = pair.fromP(synAck(50003, 10));
    expect(pair.sink.fate(d)).toBeUndefined();
    expect(pair.merger.queued().heldSegments).toBe(2);
  });

  it('forgets an established connection idle for idleTimeoutMs, releasing nothing it should not', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { idleTimeoutMs: 60_000, secondarySilenceMs: 600_000 });
    const cack = seqAdd(pair.handshake(), 1);
    pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 1, flags: TCP_ACK_FLAG }));
    const held = pair.fromP(pair.p.data(B('never covered'), cack)); // S never produces it
    pair.now = 59_000;
    expect(pair.merger.poll(pair.now)).toBe(0);
    pair.now = 120_001;
    expect(pair.merger.poll(pair.now)).toBe(1);
    expect(pair.merger.connections).toBe(0);
    expect(pair.sink.fate(held)).toBe('drop'); // its verdict is given: nothing stays queued in the kernel
  });

  it('forgets merged handshakes the client never acknowledged (spoofed SYNs) after handshakeTimeoutMs, not established ones', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { handshakeTimeoutMs: 10_000 });
    const cack = seqAdd(pair.handshake(), 1);
    pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 1, flags: TCP_ACK_FLAG }));
    for (const port of [50001, 50002]) {
      pair.fromP(synAck(port, 10));
      fromS(pair, port, 20);
    }
    expect(pair.merger.phases().merging).toBe(3);
    pair.now = 10_001;
    expect(pair.merger.poll(pair.now)).toBe(2);
    expect(pair.merger.connections).toBe(1);
    expect(pair.merger.find(CLIENT, CPORT, SPORT)?.established).toBe(true);
  });
});
