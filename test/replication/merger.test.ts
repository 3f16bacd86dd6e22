/** The merger, case by case as the paper names them (§3–§8), plus what DESIGN.md adds. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { seqAdd, seqSub } from '../../bridge/wire/seq.js';
import { fold, pseudoHeaderSum } from '../../bridge/wire/checksum.js';
import { WireError } from '../../bridge/wire/error.js';
import { buildIpv4Tcp, parseIpv4Tcp, TCP_ACK_FLAG, TCP_ECE, TCP_FIN, TCP_RST, TCP_SYN } from '../../bridge/wire/tcp.js';
import { A_P, clientSeg, CLIENT, CPORT, Pair, SPORT, VIP, type RecordingSink } from '../../rig/in-process/harness.js';
import type { InboundOffload } from '../../bridge/primary/merger.js';
import type { KernelMergeInit, KernelMergeState } from '../../bridge/primary/merge/kernel.js';
import { packSynOpts, unpackSynOpts } from '../../bridge/primary/merge/conn.js';

const B = (s: string) => Buffer.from(s);
/** A test packet edited by hand gets its checksums filled in again (the merger verifies them). */
function refill(pkt: Buffer): void {
  const p = parseIpv4Tcp(pkt);
  if (p instanceof WireError) throw p;
  p.ip.fillChecksum();
  p.tcp.fillChecksum();
}
const ISN_P = 1_000_000;
const ISN_S = 7_000_000;

function established(
  p: Partial<ConstructorParameters<typeof Pair>[0]> = {},
  s: Partial<ConstructorParameters<typeof Pair>[1]> = {},
) {
  const pair = new Pair({ isn: ISN_P, ts: 50_000, ...p }, { isn: ISN_S, ts: 90_000, ...s });
  const cisn = pair.handshake();
  return { pair, cack: seqAdd(cisn, 1) };
}

describe('handshake (§7.1)', () => {
  it('holds P’s SYN-ACK until S’s arrives, then releases it in S’s spaces with merged options', () => {
    const pair = new Pair(
      { isn: ISN_P, ts: 50_000, mss: 1460, wscale: 7 },
      { isn: ISN_S, ts: 90_000, mss: 1452, wscale: 9 },
    );
    pair.fromClient(clientSeg({ seq: 5000, ack: 0, flags: TCP_SYN }));
    const id = pair.fromP(pair.p.synAck(5000, 65000));
    expect(pair.sink.fate(id)).toBeUndefined();
    pair.fromS(pair.s.synAck(5000, 64000));
    expect(pair.sink.fate(id)).toBe('accept');
    const out = pair.sink.toClient.at(-1)!;
    expect(out.checksumOk).toBe(true);
    expect(out.repr.seq).toBe(ISN_S);
    expect(out.repr.ack).toBe(5001);
    expect(out.repr.window).toBe(64000);
    expect(out.repr.flags).toBe(TCP_SYN | TCP_ACK_FLAG);
    expect(out.repr.options).toEqual([
      { kind: 'mss', mss: 1452 },
      { kind: 'sack-permitted' },
      { kind: 'timestamp', tsval: 90_000, tsecr: 777 },
      { kind: 'wscale', shift: 9 },
    ]);
    const c = pair.merger.find(CLIENT, CPORT, SPORT)!;
    expect(c.deltaSeq).toBe((ISN_P - ISN_S) >>> 0);
    expect(c.tsOffset).toBe(50_000 - 90_000 + 2 ** 32);
    expect(pair.merger.stats.handshakes).toBe(1);
  });

  it('a SYN-ACK P sends again after the merge goes out with the same merged options and window (kept packed, without the SYNs)', () => {
    const pair = new Pair(
      { isn: ISN_P, ts: 50_000, mss: 1460, wscale: 7 },
      { isn: ISN_S, ts: 90_000, mss: 1452, wscale: 9 },
    );
    pair.fromClient(clientSeg({ seq: 5000, ack: 0, flags: TCP_SYN }));
    pair.fromP(pair.p.synAck(5000, 65000));
    pair.fromS(pair.s.synAck(5000, 64000));
    const first = pair.sink.toClient.at(-1)!.repr;
    const c = pair.merger.find(CLIENT, CPORT, SPORT)!;
    expect([c.synP, c.synS]).toEqual([null, null]);
    const id = pair.fromP(pair.p.synAck(5000, 65000));
    expect(pair.sink.fate(id)).toBe('accept');
    const again = pair.sink.toClient.at(-1)!.repr;
    expect([again.seq, again.window, again.options]).toEqual([first.seq, first.window, first.options]);
  });

  it('a merged, idle connection keeps no object for its rarely set fields; one comes with the first such value and goes when all are back to their defaults', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S });
    pair.handshake();
    const c = pair.merger.find(CLIENT, CPORT, SPORT)!;
    expect([c.heldSyn, c.heldSynAt, c['rare']]).toEqual([null, null, null]);
    c.stallAt = 5;
    c.finClient = true;
    expect([c.stallAt, c.finClient, c.closedAt]).toEqual([5, true, null]);
    c.stallAt = null;
    expect(c['rare']).not.toBeNull();
    c.finClient = false;
    expect([c.stallAt, c.finClient, c['rare']]).toEqual([null, false, null]);
  });

  it('packs a SYN’s options into one small integer and back, for every MSS, window scale, SACK and ECN', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: -1, max: 14 }),
        fc.boolean(),
        fc.boolean(),
        (mss, wscale, sackOk, ecn) => {
          const w = packSynOpts({ isn: 0, mss, wscale, sackOk, ts: null, tsecr: null, ecn, window: 0 });
          expect(w).toBeGreaterThan(0);
          expect(w).toBeLessThan(2 ** 23);
          expect(unpackSynOpts(w)).toEqual({ mss, wscale, sackOk, ecn });
        },
      ),
    );
    expect(unpackSynOpts(0)).toBeNull();
  });

  it('releases at once when S’s SYN-ACK came first', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S });
    pair.fromS(pair.s.synAck(5000));
    const id = pair.fromP(pair.p.synAck(5000));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.sink.toClient[0]!.repr.seq).toBe(ISN_S);
  });

  it('offers SACK, timestamps and window scaling only when both servers do', () => {
    const pair = new Pair({ isn: 1, ts: 5 }, { isn: 2, ts: null, sack: false, wscale: null });
    pair.fromP(pair.p.synAck(5000));
    pair.fromS(pair.s.synAck(5000));
    const out = pair.sink.toClient[0]!;
    expect(out.checksumOk).toBe(true);
    expect(out.repr.options).toEqual([{ kind: 'mss', mss: 1460 }]);
    expect(pair.merger.find(CLIENT, CPORT, SPORT)!.tsOn).toBe(false);
  });

  it('segments the merger builds echo the client’s timestamp, whatever its clock (not 0 when it is past 2^31)', () => {
    const echo = 3_000_000_000; // the client's TSval, "before" 0 in serial arithmetic
    const pair = new Pair({ isn: ISN_P, ts: 50_000, echo }, { isn: ISN_S, ts: 90_000, echo });
    pair.fromClient(
      clientSeg({ seq: 5000, ack: 0, flags: TCP_SYN, options: [{ kind: 'timestamp', tsval: echo, tsecr: 0 }] }),
    );
    pair.fromP(pair.p.synAck(5000));
    pair.fromS(pair.s.synAck(5000));
    const cack = 5001;
    // A prefix sent early is built by the merger (not one of P's segments).
    pair.now = 100;
    pair.fromP(pair.p.data(Buffer.alloc(3000, 1), cack));
    pair.fromS(pair.s.data(Buffer.alloc(1000, 1), cack));
    pair.merger.poll(110);
    const built = pair.sink.toClient.filter((t) => t.id === -1 && t.repr.payload.length);
    expect(built.length).toBeGreaterThan(0);
    for (const b of built)
      expect(b.repr.options.find((o) => o.kind === 'timestamp')).toMatchObject({ tsecr: (echo + 1) >>> 0 });
  });

  it('clears ECE unless both servers agreed to ECN', () => {
    const pair = new Pair({ isn: 1 }, { isn: 2 });
    const synAck = pair.p.synAck(5000);
    synAck.writeUInt8(synAck.readUInt8(33) | TCP_ECE, 33); // P says yes to ECN, S does not
    refill(synAck);
    pair.fromP(synAck);
    pair.fromS(pair.s.synAck(5000));
    expect(pair.sink.toClient[0]!.repr.flags & TCP_ECE).toBe(0);
    expect(pair.sink.toClient[0]!.checksumOk).toBe(true);
  });

  it('passes the client’s SYN to P unchanged and translates its handshake ACK', () => {
    const { pair } = established();
    const r = pair.fromClient(
      clientSeg({
        seq: 5001,
        ack: ISN_S + 1,
        flags: TCP_ACK_FLAG,
        options: [{ kind: 'timestamp', tsval: 1, tsecr: 90_000 }],
      }),
    );
    const out = r.out!;
    expect(out.readUInt32BE(20 + 8)).toBe(ISN_P + 1);
    expect(out.readUInt32BE(20 + 20 + 6)).toBe(50_000); // TSecr moved into P's clock
  });
});

describe('server-initiated connection (§7.2)', () => {
  it('merges the two SYNs from the same local port and translates the peer’s SYN-ACK', () => {
    const pair = new Pair({ isn: 300 }, { isn: 900 });
    const id = pair.fromP(pair.p.syn(29200));
    expect(pair.sink.fate(id)).toBeUndefined();
    pair.fromS(pair.s.syn(28000));
    const out = pair.sink.toClient[0]!;
    expect(out.repr.flags).toBe(TCP_SYN);
    expect(out.repr.seq).toBe(900);
    expect(out.repr.window).toBe(28000);
    const synAck = pair.fromClient(clientSeg({ seq: 4000, ack: 901, flags: TCP_SYN | TCP_ACK_FLAG }));
    expect(synAck.out!.readUInt32BE(20 + 8)).toBe(301);
  });

  it('sends the handshake’s last ACK once both servers acknowledged the peer’s SYN-ACK, whatever the ISN', () => {
    for (const peerIsn of [4000, 0x80000000 + 4000, 0xfffffff0]) {
      const pair = new Pair({ isn: 300 }, { isn: 900 });
      pair.fromP(pair.p.syn());
      pair.fromS(pair.s.syn());
      pair.fromClient(clientSeg({ seq: peerIsn, ack: 901, flags: TCP_SYN | TCP_ACK_FLAG }));
      const ackP = pair.fromP(pair.p.ack(seqAdd(peerIsn, 1)));
      expect(pair.sink.fate(ackP)).toBe('drop'); // S has not acknowledged yet: the minimum is nothing
      pair.fromS(pair.s.ack(seqAdd(peerIsn, 1)));
      const last = pair.sink.toClient.at(-1)!;
      expect(last.repr.flags).toBe(TCP_ACK_FLAG);
      expect(last.repr.ack).toBe(seqAdd(peerIsn, 1));
      expect(last.repr.seq).toBe(901);
    }
  });
});

describe('merging data (§3.2–§3.4, Figure 2)', () => {
  it('releases P’s segment only when S produced the same bytes, split differently', () => {
    const { pair, cack } = established();
    const id = pair.fromP(pair.p.data(B('abcd'), cack));
    pair.fromS(pair.s.data(B('ab'), cack));
    expect(pair.sink.fate(id)).toBeUndefined(); // bytes c, d not produced by S yet
    pair.fromS(pair.s.data(B('cd'), cack));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.sink.stream(ISN_S).toString()).toBe('abcd');
    const r = pair.sink.toClient.find((t) => t.repr.payload.length)!;
    expect(r.repr.seq).toBe(ISN_S + 1);
    expect(r.checksumOk).toBe(true);
    expect(r.repr.options).toContainEqual(expect.objectContaining({ kind: 'timestamp', tsval: 90_000 + 1 - 1 + 0 }));
  });

  it('releases several P segments at once when S sends them as one', () => {
    const { pair, cack } = established();
    const a = pair.fromP(pair.p.data(B('ab'), cack));
    const b = pair.fromP(pair.p.data(B('cd'), cack));
    pair.fromS(pair.s.data(B('abcd'), cack));
    expect([pair.sink.fate(a), pair.sink.fate(b)]).toEqual(['accept', 'accept']);
    expect(pair.sink.stream(ISN_S).toString()).toBe('abcd');
  });

  it('releases at once when S was ahead', () => {
    const { pair, cack } = established();
    pair.fromS(pair.s.data(B('hello'), cack));
    const id = pair.fromP(pair.p.data(B('hello'), cack));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.merger.queued().storedBytes).toBe(0);
  });

  it('sends the minimum of both ACKs and both windows, rescaled to S’s window scale', () => {
    const { pair } = established({ wscale: 7 }, { wscale: 9 });
    const id = pair.fromP(pair.p.data(B('x'), 5010, 1000)); // P: ack 5010, window 1000 << 7 = 128000
    pair.fromS(pair.s.data(B('x'), 5005, 200)); // S: ack 5005, window 200 << 9 = 102400
    expect(pair.sink.fate(id)).toBe('accept');
    const r = pair.sink.toClient.find((t) => t.id === id)!;
    expect(r.repr.ack).toBe(5005);
    expect(r.repr.window).toBe(200);
  });
});

describe('acknowledgements', () => {
  it('absorbs P’s ACK while S lags, and sends one when S catches up (S missed the client segment)', () => {
    const { pair } = established();
    const id = pair.fromP(pair.p.ack(5011));
    expect(pair.sink.fate(id)).toBe('drop');
    expect(pair.sink.sent).toHaveLength(0);
    pair.fromS(pair.s.ack(5011));
    expect(pair.sink.sent).toHaveLength(1);
    const a = pair.sink.toClient.at(-1)!;
    expect(a.repr.ack).toBe(5011);
    expect(a.repr.seq).toBe(ISN_S + 1);
    expect(a.checksumOk).toBe(true);
  });

  it('forwards P’s ACK when P is the one lagging or equal (P missed the client segment)', () => {
    const { pair } = established();
    pair.fromS(pair.s.ack(5011));
    expect(pair.sink.sent).toHaveLength(0); // P has not acked: nothing may go out (min)
    const id = pair.fromP(pair.p.ack(5011));
    expect(pair.sink.fate(id)).toBe('accept');
    const a = pair.sink.toClient.at(-1)!;
    expect(a.repr.ack).toBe(5011);
    expect(a.repr.seq).toBe(ISN_S + 1);
    expect(a.checksumOk).toBe(true);
  });

  it('forwards the lagging side’s duplicate ACKs with SACK blocks (fast retransmit)', () => {
    const { pair } = established();
    pair.fromS(pair.s.ack(5011));
    pair.fromP(pair.p.ack(5011));
    const before = pair.sink.toClient.length;
    const sack = [{ kind: 'sack' as const, blocks: [[6011, 7011]] as Array<[number, number]> }];
    const dup = pair.fromP(pair.p.ack(5011, 500, sack));
    expect(pair.sink.fate(dup)).toBe('accept');
    expect(pair.sink.toClient.length).toBe(before + 1);
    // Only P holds 6011–7011 so far: the dup ACK goes out, the block does not
    // (the client would stop retransmitting bytes S may lack).
    expect(pair.sink.toClient.at(-1)!.repr.options.find((o) => o.kind === 'sack')).toBeUndefined();
    // S reports the same block: both hold it, the client hears it.
    pair.fromS(pair.s.ack(5011, 500, sack));
    const dup2 = pair.fromP(pair.p.ack(5011, 500, sack));
    expect(pair.sink.fate(dup2)).toBe('accept');
    expect(pair.sink.toClient.at(-1)!.repr.options).toContainEqual({ kind: 'sack', blocks: [[6011, 7011]] });
    expect(pair.sink.toClient.at(-1)!.checksumOk).toBe(true);
  });

  it('tells the client only what both servers hold: SACK blocks intersected, D-SACKs and one-sided blocks dropped', () => {
    const { pair } = established();
    // P has everything up to 8000; S up to 5011, plus 6000–7000 and 7500–9000.
    pair.fromP(pair.p.ack(8000, 500, [{ kind: 'sack', blocks: [[4000, 4500]] }])); // a D-SACK below its ACK
    pair.fromS(
      pair.s.ack(5011, 500, [
        {
          kind: 'sack',
          blocks: [
            [6000, 7000],
            [7500, 9000],
          ],
        },
      ]),
    );
    const c = pair.merger.find(CLIENT, CPORT, SPORT)!;
    expect(pair.merger.mergedSack(c)).toEqual([
      [6000, 7000],
      [7500, 8000],
    ]);
    // The ACK built for S's dup ACK carries exactly those.
    const last = pair.sink.toClient.at(-1)!;
    expect(last.repr.ack).toBe(5011);
    expect(last.repr.options).toContainEqual({
      kind: 'sack',
      blocks: [
        [6000, 7000],
        [7500, 8000],
      ],
    });
  });

  it('absorbs one server’s ACK that moves nothing', () => {
    const { pair } = established();
    const a = pair.fromP(pair.p.ack(5001));
    expect(pair.sink.fate(a)).toBe('drop');
    pair.fromS(pair.s.ack(5011)); // S ahead: the merged ACK stays
    expect(pair.sink.sent).toHaveLength(0);
  });

  it('answers a client’s keepalive or zero-window probe once both servers answered it (same ACK, same window)', () => {
    const { pair } = established();
    for (let probe = 0; probe < 3; probe++) {
      // Each server answers the probe (seq one below what it expects) with its ACK: neither alone goes out.
      const a = pair.fromP(pair.p.ack(5001));
      expect(pair.sink.fate(a)).toBe('drop');
      expect(pair.sink.sent).toHaveLength(probe);
      pair.fromS(pair.s.ack(5001));
      expect(pair.sink.sent).toHaveLength(probe + 1);
      const out = pair.sink.toClient.at(-1)!;
      expect(out.repr.ack).toBe(5001);
      expect(out.repr.flags).toBe(TCP_ACK_FLAG);
      expect(out.checksumOk).toBe(true);
    }
    // P answering second: its own ACK goes out.
    pair.fromS(pair.s.ack(5001));
    const b = pair.fromP(pair.p.ack(5001));
    expect(pair.sink.fate(b)).toBe('accept');
  });

  it('reopens a zero window whose update the client never got: the answers to its probe carry the open window', () => {
    const { pair } = established();
    pair.fromP(pair.p.ack(5001, 0));
    pair.fromS(pair.s.ack(5001, 0));
    const zero = pair.sink.toClient.at(-1)!;
    expect(zero.repr.window).toBe(0);
    // P's window update is lost on the way; the client probes; both answer with the open window.
    const a = pair.fromP(pair.p.ack(5001, 0));
    expect(pair.sink.fate(a)).toBe('drop');
    pair.fromS(pair.s.ack(5001, 400));
    const b = pair.fromP(pair.p.ack(5001, 300));
    expect(pair.sink.fate(b)).toBe('accept');
    expect(pair.sink.toClient.at(-1)!.repr.window).toBeGreaterThan(0);
  });
});

describe('loss (§4)', () => {
  it('P misses S’s segment: S’s bytes past the hole prove it produced it, so P’s segment goes out', () => {
    const { pair, cack } = established();
    const id = pair.fromP(pair.p.data(B('0123456789'), cack));
    const sStart = pair.s.nxt;
    pair.fromS(pair.s.data(B('01234'), cack), true); // lost between S and P
    expect(pair.sink.fate(id)).toBeUndefined();
    pair.fromS(pair.s.data(B('56789'), cack)); // S's sequence number is past the hole
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.sink.stream(ISN_S).toString()).toBe('0123456789');
    // Once the client acknowledged the bytes, S's retransmission of the hole changes nothing.
    pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 11, flags: TCP_ACK_FLAG }));
    pair.fromS(pair.s.dataAt(sStart, B('01234'), cack));
    expect(pair.sink.toClient.filter((t) => t.repr.payload.length)).toHaveLength(1);
    expect(pair.merger.queued()).toEqual({ storedBytes: 0, heldSegments: 0 });
  });

  it('a released segment lost to the client: S’s retransmission of it goes out (P’s timer is not trusted)', () => {
    const { pair, cack } = established();
    const id = pair.fromP(pair.p.data(B('abcdef'), cack));
    pair.fromS(pair.s.data(B('abcdef'), cack));
    expect(pair.sink.fate(id)).toBe('accept'); // ... and lost on the way to the client
    // The client acknowledged only the first two bytes; S's timer fires.
    pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 3, flags: TCP_ACK_FLAG }));
    pair.fromS(pair.s.dataAt(ISN_S + 1, B('abcdef'), cack));
    const re = pair.sink.toClient.filter((t) => t.id === -1 && t.repr.payload.length);
    expect(re.map((t) => [t.repr.seq, t.repr.payload.toString()])).toEqual([[ISN_S + 3, 'cdef']]);
    expect(re[0]!.checksumOk).toBe(true);
    expect(pair.merger.stats.secondaryRetransmissions).toBe(1);
  });

  it('no deadlock when a prefix sent early is lost: S’s retransmission refills it while P’s segment stays held', () => {
    // The stall seen under 1 % loss: P's 6000-byte segment is held (and Linux
    // will not retransmit a segment still in a host queue); S's small window
    // let out a prefix, which the client never got; S's RTO fires.
    const { pair, cack } = established();
    const data = Buffer.alloc(6000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    pair.now = 100;
    const id = pair.fromP(pair.p.data(data, cack));
    pair.fromS(pair.s.data(data.subarray(0, 2880), cack));
    pair.merger.poll(105); // prefix [0, 2880) out early — lost
    expect(pair.merger.stats.prefixReleases).toBe(1);
    pair.fromS(pair.s.dataAt(ISN_S + 1, data.subarray(0, 1440), cack)); // S's RTO, cwnd 1
    const re = pair.sink.toClient.filter((t) => t.id === -1 && t.repr.payload.length).slice(-1)[0]!;
    expect([re.repr.seq, re.repr.payload.length]).toEqual([ISN_S + 1, 1440]);
    // The client acknowledges, S goes on; the held segment goes out once S covers it.
    pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 1441, flags: TCP_ACK_FLAG }));
    pair.fromS(pair.s.dataAt(ISN_S + 1441, data.subarray(1440, 2880), cack));
    pair.fromS(pair.s.dataAt(ISN_S + 2881, data.subarray(2880), cack));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.sink.stream(ISN_S).equals(data)).toBe(true);
  });

  it('S resetting while a held segment is stalled leaves no timer behind (found by the fuzzer: a crash in poll)', () => {
    const { pair, cack } = established();
    pair.now = 100;
    pair.fromP(pair.p.data(Buffer.alloc(3000, 1), cack));
    pair.fromS(pair.s.data(Buffer.alloc(1000, 1), cack)); // partly covered: the stall clock runs
    expect(pair.merger.nextTimeout()).toBe(105);
    pair.fromS(pair.s.data(Buffer.alloc(0), cack, 0, TCP_RST | TCP_ACK_FLAG)); // S aborts: degrade
    expect(pair.merger.phases().degraded).toBe(1);
    expect(pair.merger.nextTimeout()).toBeNull();
    expect(() => pair.merger.poll(200)).not.toThrow();
  });

  it('still compares the bytes around a hole', () => {
    const { pair, cack } = established();
    pair.fromP(pair.p.data(B('0123456789'), cack));
    pair.fromS(pair.s.data(B('01234'), cack), true);
    pair.fromS(pair.s.data(B('5678X'), cack));
    expect(pair.merger.stats.divergences).toBe(1);
  });

  it('a large held P segment S covers only in part (small window after loss): the covered part goes out after stallMs', () => {
    const { pair, cack } = established();
    const data = Buffer.alloc(6000, 7);
    pair.now = 100;
    const id = pair.fromP(pair.p.data(data, cack)); // one 6000-byte GSO segment from P
    pair.fromS(pair.s.data(data.subarray(0, 1440), cack)); // S sends one segment and waits for the client's ACK
    expect(pair.merger.nextTimeout()).toBe(105);
    pair.merger.poll(104);
    expect(pair.sink.sent).toHaveLength(0);
    pair.merger.poll(105);
    expect(pair.merger.stats.prefixReleases).toBe(1);
    expect(pair.merger.nextTimeout()).toBeNull();
    const early = pair.sink.toClient.filter((t) => t.id === -1 && t.repr.payload.length);
    expect(early.map((t) => [t.repr.seq, t.repr.payload.length])).toEqual([[ISN_S + 1, 1440]]);
    expect(early[0]!.checksumOk).toBe(true);
    // The client acknowledges; S sends the rest; the held segment goes out
    // without the prefix already sent (no byte twice on the link).
    pair.fromS(pair.s.data(data.subarray(1440), cack));
    expect(pair.sink.fate(id)).toBe('accept');
    const rest = pair.sink.toClient.find((t) => t.id === id)!;
    expect([rest.repr.seq, rest.repr.payload.length]).toEqual([ISN_S + 1441, 6000 - 1440]);
    expect(rest.checksumOk).toBe(true);
    expect(pair.merger.stats.prefixBytesTrimmed).toBe(1440);
    expect(pair.sink.stream(ISN_S).equals(data)).toBe(true);
  });

  it('S retransmitting bytes we already have while P’s segment is held releases the matched prefix', () => {
    const { pair, cack } = established();
    const data = Buffer.from('0123456789');
    const id = pair.fromP(pair.p.data(data, cack));
    pair.fromS(pair.s.data(data.subarray(0, 4), cack));
    expect(pair.merger.stats.prefixReleases).toBe(0); // normal: more of S's bytes are on their way
    pair.fromS(pair.s.dataAt(ISN_S + 1, data.subarray(0, 4), cack)); // S's RTO fired
    expect(pair.merger.stats.prefixReleases).toBe(1);
    expect(pair.sink.fate(id)).toBeUndefined();
    expect(pair.sink.stream(ISN_S).toString()).toBe('0123');
  });

  it('a merged segment lost on its way to the client: P’s retransmission goes out at once', () => {
    const { pair, cack } = established();
    const pStart = pair.p.nxt;
    pair.fromP(pair.p.data(B('abc'), cack));
    pair.fromS(pair.s.data(B('abc'), cack));
    const re = pair.fromP(pair.p.dataAt(pStart, B('abc'), cack));
    expect(pair.sink.fate(re)).toBe('accept');
    expect(pair.merger.stats.retransmissions).toBe(1);
    const r = pair.sink.toClient.find((t) => t.id === re)!;
    expect(r.repr.seq).toBe(ISN_S + 1);
    expect(r.checksumOk).toBe(true);
    // S's retransmission of the same bytes changes nothing.
    pair.fromS(pair.s.dataAt(ISN_S + 1, B('abc'), cack));
    expect(pair.sink.stream(ISN_S).toString()).toBe('abc');
  });

  it('P’s retransmission of bytes the client acknowledged meanwhile is dropped, not sent (a closed client would answer with a RST)', () => {
    const { pair, cack } = established();
    const pStart = pair.p.nxt;
    pair.fromP(pair.p.data(B('abcdef'), cack));
    pair.fromS(pair.s.data(B('abcdef'), cack));
    pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 7, flags: TCP_ACK_FLAG }));
    const before = pair.sink.toClient.length;
    const re = pair.fromP(pair.p.dataAt(pStart, B('abcdef'), cack)); // P's timer fired before the ACK reached it
    expect(pair.sink.fate(re)).toBe('drop');
    expect(pair.sink.toClient).toHaveLength(before);
    expect(pair.merger.stats.drops['client-acknowledged']).toBe(1);
    // Bytes the client has not acknowledged still go out.
    pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 3, flags: TCP_ACK_FLAG })); // an old ACK changes nothing
    const re2 = pair.fromP(pair.p.dataAt(pStart, B('abcdef'), cack));
    expect(pair.sink.fate(re2)).toBe('drop');
    pair.fromP(pair.p.data(B('gh'), cack));
    pair.fromS(pair.s.data(B('gh'), cack));
    const re3 = pair.fromP(pair.p.dataAt(pStart, B('abcdefgh'), cack));
    expect(pair.sink.fate(re3)).toBe('accept');
  });

  it('P’s retransmission reaching past what was released: only the part the client has not acknowledged goes out', () => {
    const { pair, cack } = established();
    const pStart = pair.p.nxt;
    pair.fromP(pair.p.data(B('abcdef'), cack));
    pair.fromS(pair.s.data(B('abcdef'), cack));
    pair.fromP(pair.p.data(B('ghij'), cack)); // held: S has not produced it yet
    pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 5, flags: TCP_ACK_FLAG }));
    const before = pair.sink.toClient.length;
    const re = pair.fromP(pair.p.dataAt(pStart, B('abcdefghij'), cack));
    expect(pair.sink.fate(re)).toBe('drop');
    const sent = pair.sink.toClient.slice(before).filter((t) => t.repr.payload.length);
    expect(sent.map((t) => [t.repr.seq, t.repr.payload.toString()])).toEqual([[ISN_S + 5, 'ef']]);
    expect(sent[0]!.checksumOk).toBe(true);
  });

  it('P’s held segment is released once when its copy and S’s arrive in either order after a loss', () => {
    const { pair, cack } = established();
    pair.fromS(pair.s.data(B('m'), cack), true); // S's copy lost
    const id = pair.fromP(pair.p.data(B('m'), cack));
    expect(pair.sink.fate(id)).toBeUndefined();
    pair.fromS(pair.s.dataAt(ISN_S + 1, B('m'), cack));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.sink.toClient.filter((t) => t.repr.payload.length).length).toBe(1);
  });
});

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

describe('divergence', () => {
  it('different bytes at the same offset: the client gets P’s bytes only, the connection degrades', () => {
    const { pair, cack } = established();
    const id = pair.fromP(pair.p.data(B('time=100'), cack));
    pair.fromS(pair.s.data(B('time=101'), cack));
    expect(pair.merger.stats.divergences).toBe(1);
    expect(pair.events[0]).toMatch(/degraded/);
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.sink.stream(ISN_S).toString()).toBe('time=100');
    // From now on P alone: its next segment goes out at once, S's are dropped.
    const next = pair.fromP(pair.p.data(B(' more'), cack));
    expect(pair.sink.fate(next)).toBe('accept');
    pair.fromS(pair.s.data(B(' MORE'), cack));
    expect(pair.sink.stream(ISN_S).toString()).toBe('time=100 more');
    expect(pair.merger.stats.drops['degraded-diverted']).toBe(1);
    // Listed for the secondary (which must close it, not continue it, after a takeover).
    expect(pair.merger.divergedConnections()).toEqual([{ client: CLIENT, clientPort: CPORT, servicePort: SPORT }]);
  });

  it('a secondary reset or failure degrades without listing the connection as diverged', () => {
    const { pair, cack } = established();
    pair.fromS(pair.s.data(Buffer.alloc(0), cack, 0, TCP_RST | TCP_ACK_FLAG));
    expect(pair.merger.phases().degraded).toBe(1);
    expect(pair.merger.divergedConnections()).toEqual([]);
  });
});

describe('secondary failure (§6)', () => {
  it('flushes held segments and keeps subtracting Δseq', () => {
    const { pair, cack } = established();
    const held = pair.fromP(pair.p.data(B('unmatched'), cack));
    pair.merger.secondaryFailed();
    expect(pair.sink.fate(held)).toBe('accept');
    const next = pair.fromP(pair.p.data(B('!'), cack));
    expect(pair.sink.fate(next)).toBe('accept');
    expect(pair.sink.stream(ISN_S).toString()).toBe('unmatched!');
    const inbound = pair.fromClient(clientSeg({ seq: 5001, ack: ISN_S + 11, flags: TCP_ACK_FLAG }));
    expect(inbound.out!.readUInt32BE(28)).toBe(ISN_P + 11);
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

describe('wrap-around', () => {
  it('merges across the 2^32 wrap of sequence numbers and timestamps', () => {
    const { pair, cack } = established({ isn: 0xfffffff0, ts: 0xfffffffe }, { isn: 0xfffffffa, ts: 0xffffffff });
    const data = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
    const ids = [pair.fromP(pair.p.data(data.subarray(0, 20), cack)), pair.fromP(pair.p.data(data.subarray(20), cack))];
    pair.fromS(pair.s.data(data.subarray(0, 7), cack));
    pair.fromS(pair.s.data(data.subarray(7), cack));
    expect(ids.map((i) => pair.sink.fate(i))).toEqual(['accept', 'accept']);
    expect(pair.sink.stream(0xfffffffa).toString()).toBe(data.toString());
    for (const t of pair.sink.toClient) expect(t.checksumOk).toBe(true);
  });
});

describe('property: any split and interleaving gives the client one exact stream', () => {
  it('holds for random segmentations on P and S and random arrival order', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 400 }),
        fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 1, maxLength: 30 }),
        fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 1, maxLength: 30 }),
        fc.array(fc.boolean(), { maxLength: 80 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (bytes, pCuts, sCuts, order, isnP, isnS) => {
          const data = Buffer.from(bytes);
          const pair = new Pair({ isn: isnP }, { isn: isnS });
          pair.handshake();
          const cack = 5001;
          const split = (cuts: number[]) => {
            const out: Buffer[] = [];
            let i = 0;
            let k = 0;
            while (i < data.length) {
              const n = cuts[k++ % cuts.length]!;
              out.push(data.subarray(i, i + n));
              i += n;
            }
            return out;
          };
          const pq = split(pCuts).map((b) => pair.p.data(b, cack));
          const sq = split(sCuts).map((b) => pair.s.data(b, cack));
          let k = 0;
          while (pq.length || sq.length) {
            const takeP = sq.length === 0 || (pq.length > 0 && (order[k++] ?? true));
            if (takeP) pair.fromP(pq.shift()!);
            else pair.fromS(sq.shift()!);
          }
          expect(pair.sink.stream(isnS).equals(data)).toBe(true);
          for (const t of pair.sink.toClient) expect(t.checksumOk).toBe(true);
          expect(pair.merger.queued()).toEqual({ storedBytes: 0, heldSegments: 0 });
          expect(pair.merger.stats.divergences).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('never releases a byte S has not produced', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 2, maxLength: 200 }), fc.integer({ min: 1, max: 199 }), (bytes, sLen) => {
        const data = Buffer.from(bytes);
        const n = Math.min(sLen, data.length - 1);
        const pair = new Pair({ isn: 10 }, { isn: 20 });
        pair.handshake();
        pair.fromP(pair.p.data(data, 5001));
        pair.fromS(pair.s.data(data.subarray(0, n), 5001));
        expect(pair.sink.toClient.filter((t) => t.repr.payload.length).length).toBe(0);
        expect(VIP).toBeGreaterThan(0);
      }),
      { numRuns: 100 },
    );
  });
});

describe('hostile client input', () => {
  it('a SACK option whose length is not whole blocks is translated block-wise, not read past (found by the fuzzer: a crash)', () => {
    const { pair, cack } = established();
    const pkt = clientSeg({
      seq: cack,
      ack: ISN_S + 1,
      flags: TCP_ACK_FLAG,
      options: [{ kind: 'sack', blocks: [[ISN_S + 1, ISN_S + 2]] }],
    }); // padded to 12 bytes
    const at = pkt.indexOf(Buffer.from([5, 10]), 40); // kind 5 (SACK), length 10
    expect(at).toBeGreaterThan(0);
    pkt[at + 1] = 12; // 1.25 blocks
    refill(pkt);
    let out: Buffer | undefined;
    expect(() => (out = pair.fromClient(pkt).out)).not.toThrow();
    expect(out!.readUInt32BE(at + 2)).toBe(seqAdd(ISN_S + 1, ISN_P - ISN_S));
  });
});

describe('blind segments from spoofed clients change nothing (RFC 5961)', () => {
  it('a RST at a guessed sequence number leaves the connection merging; one at the exact next number closes it', () => {
    const { pair, cack } = established();
    pair.fromP(pair.p.ack(cack));
    pair.fromS(pair.s.ack(cack));
    for (const seq of [cack + 1, cack + 5000, cack - 1, 123_456_789]) {
      const r = pair.fromClient(clientSeg({ seq, ack: 0, flags: TCP_RST }));
      expect(pair.sink.fate(r.id)).toBe('accept'); // P's TCP sees it, and applies its own check
      expect(pair.merger.find(CLIENT, CPORT, SPORT)?.phase).toBe('merging');
    }
    // Still merged: bytes go out as before.
    const id = pair.fromP(pair.p.data(B('still'), cack));
    pair.fromS(pair.s.data(B('still'), cack));
    expect(pair.sink.fate(id)).toBe('accept');
    pair.fromClient(clientSeg({ seq: cack, ack: 0, flags: TCP_RST }));
    expect(pair.merger.find(CLIENT, CPORT, SPORT)?.phase).toBe('closed');
  });

  it('an ACK for bytes never sent does not count as the client’s: a later retransmission still goes out', () => {
    const { pair, cack } = established();
    const pStart = pair.p.nxt;
    pair.fromP(pair.p.data(B('abcdef'), cack));
    pair.fromS(pair.s.data(B('abcdef'), cack));
    // Blind: acknowledges far more than was released (an attacker's guess).
    pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 1_000_000, flags: TCP_ACK_FLAG }));
    const re = pair.fromP(pair.p.dataAt(pStart, B('abcdef'), cack));
    expect(pair.sink.fate(re)).toBe('accept');
    expect(pair.merger.stats.drops['client-acknowledged']).toBe(0);
    // The genuine ACK still counts.
    pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 7, flags: TCP_ACK_FLAG }));
    expect(pair.sink.fate(pair.fromP(pair.p.dataAt(pStart, B('abcdef'), cack)))).toBe('drop');
  });

  it('an ACK with a sequence number far outside the servers’ windows changes nothing', () => {
    const { pair, cack } = established();
    pair.fromP(pair.p.ack(cack));
    pair.fromS(pair.s.ack(cack));
    pair.fromP(pair.p.data(B('abcdef'), cack));
    pair.fromS(pair.s.data(B('abcdef'), cack));
    pair.fromClient(clientSeg({ seq: cack + 2 ** 30, ack: ISN_S + 7, flags: TCP_ACK_FLAG | TCP_FIN }));
    const c = pair.merger.find(CLIENT, CPORT, SPORT)!;
    expect(c.hasAckClient).toBe(false);
    expect(c.finClient).toBe(false);
  });

  it('a spoofed SYN and a blind ACK do not make the entry established: it expires at the handshake timeout', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { handshakeTimeoutMs: 10_000 });
    const cisn = pair.handshake();
    // The attacker never saw the SYN-ACK: its ACK numbers are guesses.
    for (const ack of [1, ISN_S, ISN_S + 2, ISN_S + 100_000])
      pair.fromClient(clientSeg({ seq: cisn + 1, ack, flags: TCP_ACK_FLAG }));
    expect(pair.merger.find(CLIENT, CPORT, SPORT)?.established).toBe(false);
    pair.now = 10_001;
    expect(pair.merger.poll(pair.now)).toBe(1);
    expect(pair.merger.connections).toBe(0);
  });

  it('a blind FIN does not half-close the connection (window updates go on)', () => {
    const { pair, cack } = established();
    pair.fromP(pair.p.ack(cack));
    pair.fromS(pair.s.ack(cack));
    pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 50_000, flags: TCP_ACK_FLAG | TCP_FIN }));
    expect(pair.merger.find(CLIENT, CPORT, SPORT)?.finClient).toBe(false);
    pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 1, flags: TCP_ACK_FLAG | TCP_FIN }));
    expect(pair.merger.find(CLIENT, CPORT, SPORT)?.finClient).toBe(true);
  });
});

describe('the kernel translating the client’s common segments (InboundOffload)', () => {
  /**
   * A stand-in for io/xlate.ts that behaves as native/xlate.bpf.c does: the
   * egress program's view (how far the bridge released, the ACK and window it
   * sent) from what went towards the client, and a client segment recorded
   * — serial maxima of its ACK and end — only inside the windows.
   */
  class FakeOffload implements InboundOffload {
    readonly entries = new Map<
      string,
      {
        dseq: number;
        dts: number;
        ts: boolean;
        wscale: number;
        seen: { packets: number; ageMs?: number; ackMax?: number; nxtMax?: number };
      }
    >();
    outOfWindow = 0;
    private sink: RecordingSink | null = null;
    /** What went towards the client (the egress program's view). */
    watch(sink: RecordingSink): this {
      this.sink = sink;
      return this;
    }
    key(c: { client: number; clientPort: number; servicePort: number }): string {
      return `${c.client}:${c.clientPort}:${c.servicePort}`;
    }
    add(
      c: { client: number; service: number; clientPort: number; servicePort: number },
      dseq: number,
      dts: number,
      ts: boolean,
      wscale: number,
    ): void {
      this.entries.set(this.key(c), { dseq, dts, ts, wscale, seen: { packets: 0 } });
    }
    mergeStart(_c: unknown, _init: KernelMergeInit): boolean {
      return false; // the kernel's merge: test/io/xlate-run.test.ts and the kernel-merge tests
    }
    mergeTake(): KernelMergeState | null {
      return null;
    }
    /** primaryOnly calls, with how many segments had gone towards the client by then. */
    readonly primaryOnlyCalls: Array<{
      dseq: number;
      dts: number;
      ts: boolean;
      wsP: number;
      wsS: number;
      sentBefore: number;
    }> = [];
    primaryOnly(_c: unknown, dseq: number, dts: number, ts: boolean, wsP: number, wsS: number): boolean {
      this.primaryOnlyCalls.push({ dseq, dts, ts, wsP, wsS, sentBefore: this.sink?.toClient.length ?? 0 });
      return true;
    }
    remove(c: { client: number; clientPort: number; servicePort: number }): void {
      this.entries.delete(this.key(c));
    }
    seen(c: { client: number; clientPort: number; servicePort: number }) {
      return this.entries.get(this.key(c))?.seen ?? null;
    }
    /** tcpfo_sent: snd_nxt, rcv_nxt, rcv_wnd from what left towards the client (no RSTs). */
    private sent(wscale: number): { sndNxt: number; rcvNxt: number; rcvWnd: number } | null {
      let r: { sndNxt: number; rcvNxt: number; rcvWnd: number } | null = null;
      for (const { repr } of this.sink!.toClient) {
        if (repr.flags & TCP_RST) continue;
        const syn = (repr.flags & TCP_SYN) !== 0;
        const end = seqAdd(repr.seq, repr.payload.length + (syn ? 1 : 0) + (repr.flags & TCP_FIN ? 1 : 0));
        r ??= { sndNxt: end, rcvNxt: repr.ack, rcvWnd: repr.window };
        if (seqSub(end, r.sndNxt) > 0 && seqSub(end, r.sndNxt) < 2 ** 31) r.sndNxt = end;
        if (repr.flags & TCP_ACK_FLAG && seqSub(repr.ack, r.rcvNxt) < 2 ** 31) {
          r.rcvNxt = repr.ack;
          r.rcvWnd = repr.window * 2 ** (syn ? 0 : wscale);
        }
      }
      return r;
    }
    /** The kernel translated a client segment from `seq`, acknowledging `ack` and ending at `nxt`. */
    client(ack: number, nxt: number, ageMs = 0, seq = nxt): void {
      const e = [...this.entries.values()][0]!;
      const s = this.sent(e.wscale);
      const win = Math.max(s?.rcvWnd ?? 0, 65535);
      const after = (a: number, b: number) => seqSub(a, b) > 0 && seqSub(a, b) < 2 ** 31;
      if (
        !s ||
        after(ack, s.sndNxt) ||
        seqSub(s.sndNxt, ack) > 65535 * 2 ** 14 ||
        after(seqSub(s.rcvNxt, win), nxt) ||
        after(seq, seqAdd(s.rcvNxt, win))
      ) {
        this.outOfWindow++;
        return;
      }
      const max = (old: number | undefined, v: number) => (old === undefined || after(v, old) ? v : old);
      e.seen = { packets: e.seen.packets + 1, ageMs, ackMax: max(e.seen.ackMax, ack), nxtMax: max(e.seen.nxtMax, nxt) };
    }
  }

  /** A merged connection through the kernel's translation, six bytes released; P's retransmission of them starts at pStart. */
  function sixBytesReleased() {
    const off = new FakeOffload();
    const pair = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, {}, off);
    off.watch(pair.sink);
    const cack = seqAdd(pair.handshake(), 1);
    const pStart = pair.p.nxt;
    pair.fromP(pair.p.data(B('abcdef'), cack));
    pair.fromS(pair.s.data(B('abcdef'), cack));
    return { off, pair, cack, pStart };
  }

  /** An offload whose kernel merges the connection and, when the bridge takes it, hands back `take(init)`. */
  class KernelOffload extends FakeOffload {
    init: KernelMergeInit | null = null;
    constructor(private readonly take: (init: KernelMergeInit) => KernelMergeState) {
      super();
    }
    override mergeStart(_c: unknown, init: KernelMergeInit): boolean {
      this.init = init;
      return true;
    }
    override mergeTake(): KernelMergeState | null {
      return this.init ? this.take(this.init) : null;
    }
  }

  /** The kernel's state after it stole P's `stolen` (its first arrival, in P's space) and let the connection go. */
  const stoleP =
    (stolen: Buffer[], len: number) =>
    (init: KernelMergeInit): KernelMergeState => ({
      ...init,
      flags: (1 << 2) | (1 << 3) | (1 << 4),
      handover: 2,
      ahead: 1,
      pending: [seqAdd(init.relNxt, len)],
      stashed: stolen,
    });

  it('merges P’s segments the kernel stole and kept as it takes the connection: S’s copy releases them at once, no retransmission of P’s needed', () => {
    const stolen: Buffer[] = [];
    const off = new KernelOffload(stoleP(stolen, 6));
    const pair = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, {}, off);
    off.watch(pair.sink);
    const cack = seqAdd(pair.handshake(), 1);
    expect(pair.merger.find(CLIENT, CPORT, SPORT)?.inKernel).toBe(true);
    // P's segment went to the kernel (stolen there, a copy kept with its sum partial, as P's TCP left it).
    const p = pair.p.data(B('answer'), cack);
    const partial = Buffer.from(p);
    partial.writeUInt16BE(0, 20 + 16); // the TCP sum: not final
    stolen.push(partial);
    // S's copy reaches the bridge (it did not line up in the kernel): both copies meet here.
    pair.fromS(pair.s.data(B('answer'), cack));
    expect(pair.sink.stream(ISN_S).toString()).toBe('answer');
    expect(pair.merger.stats.stashedTaken).toBe(1);
    // It left through the raw socket with a valid sum, no queue verdict for it.
    const out = pair.sink.toClient.at(-1)!;
    expect(out.checksumOk).toBe(true);
    expect(pair.sink.sent).toHaveLength(pair.sink.toClient.filter((r) => r.id === -1).length);
    // P's own retransmission of it, later, is not released twice.
    const before = pair.sink.toClient.length;
    pair.fromP(pair.p.dataAt(seqAdd(ISN_P, 1), B('answer'), cack));
    expect(pair.sink.stream(ISN_S).toString()).toBe('answer');
    expect(pair.sink.toClient.length - before).toBeLessThanOrEqual(1);
  });

  it('leaves out kept copies the client was sent already, and when the secondary fails sends the rest at once, primary-only', () => {
    const stolen: Buffer[] = [];
    const off = new KernelOffload(stoleP(stolen, 5));
    const pair = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, {}, off);
    off.watch(pair.sink);
    const cack = seqAdd(pair.handshake(), 1);
    // A stale copy from before relNxt (released long ago) and the one still waiting.
    stolen.push(pair.p.dataAt(ISN_P, B('x'), cack), pair.p.data(B('hello'), cack));
    pair.merger.secondaryFailed();
    expect(pair.merger.stats.stashedTaken).toBe(1);
    expect(pair.sink.stream(ISN_S).toString()).toBe('hello');
    expect(pair.merger.phases().degraded).toBe(1);
  });

  it('is handed a connection that diverges (P alone from then on), after P’s held bytes went out', () => {
    const off = new FakeOffload();
    const pair = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, {}, off);
    off.watch(pair.sink);
    const cack = seqAdd(pair.handshake(), 1);
    pair.fromP(pair.p.data(B('answer'), cack));
    pair.fromS(pair.s.data(B('answer'), cack));
    expect(off.primaryOnlyCalls).toEqual([]); // merged: the queue releases
    const held = pair.fromP(pair.p.data(B('time=100'), cack));
    pair.fromS(pair.s.data(B('time=101'), cack));
    expect(pair.sink.fate(held)).toBe('accept');
    expect(off.primaryOnlyCalls).toHaveLength(1);
    const call = off.primaryOnlyCalls[0]!;
    expect(call).toMatchObject({ dseq: seqSub(ISN_P, ISN_S), dts: seqSub(50_000, 90_000), ts: true });
    // The held segment had gone out (through the queue, marked) before the kernel took over.
    expect(pair.sink.stream(ISN_S).toString()).toBe('answertime=100');
    expect(call.sentBefore).toBe(pair.sink.toClient.length);
  });

  it('is handed every merged connection when the secondary fails, each once', () => {
    const off = new FakeOffload();
    const pair = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, {}, off);
    off.watch(pair.sink);
    const cack = seqAdd(pair.handshake(), 1);
    const held = pair.fromP(pair.p.data(B('unmatched'), cack));
    pair.merger.secondaryFailed();
    pair.merger.secondaryFailed();
    expect(pair.sink.fate(held)).toBe('accept');
    expect(off.primaryOnlyCalls).toHaveLength(1);
    expect(off.primaryOnlyCalls[0]).toMatchObject({
      dseq: seqSub(ISN_P, ISN_S),
      sentBefore: pair.sink.toClient.length,
    });
  });

  it('a connection begun alone, whose output the kernel releases, is not taken for half-open: the client’s ACK the kernel read back counts', () => {
    const off = new FakeOffload();
    const pair = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, { handshakeTimeoutMs: 1000 }, off);
    off.watch(pair.sink);
    pair.merger.secondaryFailed();
    pair.handshake();
    expect(off.primaryOnlyCalls).toHaveLength(1);
    // P sent 100 kB through the kernel; the client acknowledged it (far past anything the merger released).
    const e = [...off.entries.values()][0]!;
    e.seen = { packets: 80, ageMs: 0, ackMax: seqAdd(ISN_P, 100_001), nxtMax: 5001 };
    pair.now = 5000;
    e.seen = { ...e.seen, packets: 81 };
    pair.merger.poll(pair.now);
    expect(pair.merger.phases().degraded).toBe(1);
  });

  it('is told each merged connection’s offsets, and forgets it with the connection', () => {
    const off = new FakeOffload();
    const pair = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, { handshakeTimeoutMs: 10_000 }, off);
    off.watch(pair.sink);
    pair.handshake();
    expect([...off.entries.values()]).toEqual([
      { dseq: seqSub(ISN_P, ISN_S), dts: seqSub(50_000, 90_000), ts: true, wscale: 7, seen: { packets: 0 } },
    ]);
    pair.now = 10_001;
    expect(pair.merger.poll(pair.now)).toBe(1); // never acknowledged: a spoofed SYN's entry
    expect(off.entries.size).toBe(0);
  });

  it('a connection whose client the kernel alone heard is established, and stays (not expired at the handshake timeout)', () => {
    const off = new FakeOffload();
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { handshakeTimeoutMs: 10_000, idleTimeoutMs: 60_000 }, off);
    off.watch(pair.sink);
    const cisn = pair.handshake();
    off.client(ISN_S + 1, cisn + 1, 0);
    pair.now = 10_001;
    expect(pair.merger.poll(pair.now)).toBe(0);
    expect(pair.merger.find(CLIENT, CPORT, SPORT)?.established).toBe(true);
    // Idle by the kernel's clock too: 61 s since the kernel last heard the client.
    off.client(ISN_S + 1, cisn + 1, 61_000);
    pair.now = 20_000;
    expect(pair.merger.poll(pair.now)).toBe(0); // lastSeen from the kernel: 20,000 − 61,000 < 0: not later than ours
    pair.now = 70_002;
    expect(pair.merger.poll(pair.now)).toBe(1);
  });

  it('P’s retransmission of bytes the client acknowledged to the kernel is dropped (the ACK read back)', () => {
    const { off, pair, cack, pStart } = sixBytesReleased();
    off.client(ISN_S + 7, cack);
    const re = pair.fromP(pair.p.dataAt(pStart, B('abcdef'), cack));
    expect(pair.sink.fate(re)).toBe('drop');
    expect(pair.merger.stats.drops['client-acknowledged']).toBe(1);
  });

  it('an ACK the kernel saw beyond what was released (blind) is not taken: the retransmission still goes out', () => {
    const { off, pair, cack, pStart } = sixBytesReleased();
    off.client(ISN_S + 1_000_000, cack);
    expect(off.outOfWindow).toBe(1);
    const re = pair.fromP(pair.p.dataAt(pStart, B('abcdef'), cack));
    expect(pair.sink.fate(re)).toBe('accept');
  });

  it('four forged ACKs walking the sequence space (X + k·2³⁰) record nothing; the client’s own ACK is recorded after them', () => {
    const { off, pair, cack, pStart } = sixBytesReleased();
    // The worst case for the old serial maximum: it ends 2²⁹ ahead of every real ACK.
    const x = seqAdd(ISN_S + 7, 3 * 2 ** 29);
    for (let k = 0; k < 4; k++) off.client(seqAdd(x, k * 2 ** 30), cack);
    expect(off.outOfWindow).toBeGreaterThanOrEqual(3);
    off.client(ISN_S + 7, cack);
    const re = pair.fromP(pair.p.dataAt(pStart, B('abcdef'), cack));
    expect(pair.sink.fate(re)).toBe('drop'); // the client's real ACK was read back
    expect(pair.merger.stats.drops['client-acknowledged']).toBe(1);
  });

  it('a client sequence end read back outside the receive window is not taken (a forged exact RST must not follow)', () => {
    const off = new FakeOffload();
    const pair = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, {}, off);
    off.watch(pair.sink);
    const cack = seqAdd(pair.handshake(), 1);
    // An ACK the model records, with an end far outside the window (as an unchecked kernel would have).
    const e = [...off.entries.values()][0]!;
    e.seen = { packets: 1, ageMs: 0, ackMax: ISN_S + 1, nxtMax: seqAdd(cack, 2 ** 30) };
    const rst = clientSeg({ seq: seqAdd(cack, 2 ** 30), ack: 0, flags: TCP_RST });
    pair.fromClient(rst);
    expect(pair.merger.phases().closed).toBe(0);
  });
});

describe('checksums are verified before the merger rewrites a segment', () => {
  const corrupt = (pkt: Buffer) => {
    pkt[pkt.length - 1] = pkt[pkt.length - 1]! ^ 0x20; // a payload bit flipped on the wire
    return pkt;
  };

  it('a corrupted client segment is dropped and counted, not translated with a valid sum', () => {
    const { pair, cack } = established();
    const r = pair.fromClient(
      corrupt(clientSeg({ seq: cack, ack: ISN_S + 1, flags: TCP_ACK_FLAG, payload: B('hello') })),
    );
    expect(pair.sink.fate(r.id)).toBe('drop');
    expect(pair.merger.stats.drops['bad-checksum']).toBe(1);
    // Verified by the NIC: taken as it is (the kernel already checked it).
    const ok = pair.merger;
    const id = 77_777;
    ok.fromClient(
      id,
      clientSeg({ seq: cack, ack: ISN_S + 1, flags: TCP_ACK_FLAG, payload: B('hello') }),
      pair.now,
      'verified',
    );
    expect(pair.sink.fate(id)).toBe('accept');
  });

  it('a corrupted segment of the secondary is not stored (it would read as a divergence)', () => {
    const { pair, cack } = established();
    const id = pair.fromP(pair.p.data(B('abc'), cack));
    const d = pair.diverter.divert(pair.s.data(B('abc'), cack), false) as Buffer;
    pair.merger.fromSecondary(88_888, corrupt(Buffer.from(d)), CLIENT, pair.now);
    expect(pair.merger.stats.drops['bad-checksum']).toBe(1);
    expect(pair.merger.stats.divergences).toBe(0);
    expect(pair.sink.fate(id)).toBeUndefined();
    pair.merger.fromSecondary(88_889, d, CLIENT, pair.now);
    expect(pair.sink.fate(id)).toBe('accept');
  });

  it('a segment of P’s with a partial checksum (offload pending) is not verified, and leaves with a complete one', () => {
    const { pair, cack } = established();
    const pkt = pair.p.data(B('abc'), cack);
    const p = parseIpv4Tcp(pkt) as Exclude<ReturnType<typeof parseIpv4Tcp>, WireError>;
    pkt.writeUInt16BE(0, 36);
    const partial = fold(pseudoHeaderSum(p.ip.src, p.ip.dst, 6, p.tcp.len));
    pkt.writeUInt16BE(partial, 36);
    const id = 99_999;
    pair.sink.markP(id);
    pair.merger.fromPrimary(id, pkt, false, pair.now, 'partial');
    pair.fromS(pair.s.data(B('abc'), cack));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.sink.toClient.at(-1)!.checksumOk).toBe(true);
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

describe('a live secondary that lost a connection (secondarySilenceMs)', () => {
  it('a SYN the secondary never answers: P’s SYN-ACK goes out primary-only after the silence, listed as diverged', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { secondarySilenceMs: 2000 });
    pair.fromClient(clientSeg({ seq: 5000, ack: 0, flags: TCP_SYN }));
    const synAck = pair.fromP(pair.p.synAck(5000));
    pair.now = 1000;
    const again = pair.fromP(pair.p.synAck(5000)); // P's TCP retransmits: the newest is held
    pair.merger.poll(pair.now);
    expect(pair.sink.fate(again)).toBeUndefined();
    pair.now = 2000;
    pair.merger.poll(pair.now);
    expect(pair.sink.fate(synAck)).toBe('drop');
    expect(pair.sink.fate(again)).toBe('accept');
    expect(pair.sink.acceptedPacket(again)!.readUInt32BE(24)).toBe(ISN_P); // Δseq 0: P's own numbers
    expect(pair.merger.stats.secondarySilent).toBe(1);
    expect(pair.merger.phases().degraded).toBe(1);
    expect(pair.merger.divergedConnections()).toEqual([{ client: CLIENT, clientPort: CPORT, servicePort: SPORT }]);
    expect(pair.events.at(-1)).toMatch(/did not answer the SYN/);
  });

  it('S’s socket vanished: P’s held bytes go out after the silence, the connection is diverged', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { secondarySilenceMs: 2000 });
    const cack = seqAdd(pair.handshake(), 1);
    const a = pair.fromP(pair.p.data(B('abc'), cack));
    pair.fromS(pair.s.data(B('abc'), cack));
    expect(pair.sink.fate(a)).toBe('accept');
    pair.now = 100;
    const held = pair.fromP(pair.p.data(B('def'), cack)); // S never produces it
    for (pair.now = 1000; pair.now < 3000; pair.now += 1000) pair.merger.poll(pair.now);
    expect(pair.sink.fate(held)).toBeUndefined(); // first seen waiting at 1000: not yet 2000 ms
    pair.now = 3000;
    pair.merger.poll(pair.now);
    expect(pair.sink.fate(held)).toBe('accept');
    expect(pair.sink.stream(ISN_S).toString()).toBe('abcdef');
    expect(pair.merger.stats.secondarySilent).toBe(1);
    expect(pair.merger.divergedConnections()).toHaveLength(1);
    expect(pair.events.at(-1)).toMatch(/no progress/);
  });

  it('a slow secondary that keeps making progress is waited for, however long the transfer', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { secondarySilenceMs: 2000 });
    const cack = seqAdd(pair.handshake(), 1);
    const chunks = ['one', 'two', 'six', 'ten', 'end'];
    const ids = chunks.map((c) => pair.fromP(pair.p.data(B(c), cack)));
    for (const c of chunks) {
      pair.now += 1500;
      pair.merger.poll(pair.now);
      pair.fromS(pair.s.data(B(c), cack)); // one chunk every 1.5 s: slow, never silent for 2 s
    }
    expect(ids.map((id) => pair.sink.fate(id))).toEqual(['accept', 'accept', 'accept', 'accept', 'accept']);
    expect(pair.merger.stats.secondarySilent).toBe(0);
    expect(pair.merger.phases().merging).toBe(1);
  });

  it('an upload S stopped acknowledging: the merged ACK is stuck until the silence, then P’s ACK goes out', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { secondarySilenceMs: 2000 });
    const cack = seqAdd(pair.handshake(), 1);
    pair.fromP(pair.p.ack(cack));
    pair.fromS(pair.s.ack(cack));
    const sent = pair.sink.sent.length;
    pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 1, flags: TCP_ACK_FLAG, payload: B('0123456789') }));
    pair.now = 10;
    const ack = pair.fromP(pair.p.ack(cack + 10)); // S's socket is gone: it never acknowledges
    expect(pair.sink.fate(ack)).toBe('drop');
    expect(pair.sink.sent.length).toBe(sent);
    for (pair.now = 1000; pair.now <= 3000; pair.now += 1000) pair.merger.poll(pair.now);
    expect(pair.merger.stats.secondarySilent).toBe(1);
    const next = pair.fromP(pair.p.ack(cack + 10));
    expect(pair.sink.fate(next)).toBe('accept');
    expect(pair.sink.acceptedPacket(next)!.readUInt32BE(28)).toBe(cack + 10);
  });

  it('S’s segments lost in the bridge’s own queue (overrun): the silence counts from the loss, and S’s resend finds the connection merging', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { secondarySilenceMs: 2000 });
    const cack = seqAdd(pair.handshake(), 1);
    pair.now = 100;
    const held = pair.fromP(pair.p.data(B('+PONG\r\n'), cack));
    pair.merger.poll(pair.now); // waiting from 100
    pair.now = 1500;
    pair.merger.secondaryUnseen(pair.now); // S's copy was dropped by the full queue
    for (pair.now = 1600; pair.now < 3500; pair.now += 100) pair.merger.poll(pair.now);
    expect(pair.sink.fate(held)).toBeUndefined(); // 3.3 s waiting, but only 1.9 s since the loss
    expect(pair.merger.stats.secondarySilent).toBe(0);
    pair.fromS(pair.s.data(B('+PONG\r\n'), cack)); // S's TCP sends it again
    expect(pair.sink.fate(held)).toBe('accept');
    expect(pair.merger.phases().merging).toBe(1);
    expect(pair.merger.divergedConnections()).toEqual([]);
  });

  it('S’s copy waiting unread in the bridge’s queue (a backlog): no silence is judged past what the merger has seen', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { secondarySilenceMs: 2000 });
    const cack = seqAdd(pair.handshake(), 1);
    const held = pair.fromP(pair.p.data(B('+PONG\r\n'), cack));
    pair.merger.poll(pair.now); // waiting from 0
    pair.merger.secondarySeenUntil(1500); // the queue holds what S sent after 1.5 s
    for (pair.now = 100; pair.now <= 6000; pair.now += 100) pair.merger.poll(pair.now);
    expect(pair.sink.fate(held)).toBeUndefined();
    expect(pair.merger.stats.secondarySilent).toBe(0);
    pair.merger.secondarySeenUntil(Infinity); // caught up: S really sent nothing
    pair.now += 100;
    pair.merger.poll(pair.now);
    expect(pair.sink.fate(held)).toBe('accept');
    expect(pair.merger.stats.secondarySilent).toBe(1);
  });

  it('a silence of S’s with no lag before it is judged at the configured bound', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { secondarySilenceMs: 2000 });
    const cack = seqAdd(pair.handshake(), 1);
    const id = pair.fromP(pair.p.data(B('one'), cack));
    for (pair.now = 100; pair.now <= 2200; pair.now += 100) pair.merger.poll(pair.now);
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.merger.stats.secondarySilent).toBe(1);
  });

  it('a loss does not excuse a socket that stays silent: degraded a silence after it', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { secondarySilenceMs: 2000 });
    const cack = seqAdd(pair.handshake(), 1);
    const held = pair.fromP(pair.p.data(B('abc'), cack));
    pair.merger.poll(pair.now);
    pair.merger.secondaryUnseen(500);
    pair.now = 2400;
    pair.merger.poll(pair.now);
    expect(pair.sink.fate(held)).toBeUndefined();
    pair.now = 2500;
    pair.merger.poll(pair.now);
    expect(pair.sink.fate(held)).toBe('accept');
    expect(pair.merger.stats.secondarySilent).toBe(1);
    expect(pair.merger.divergedConnections()).toHaveLength(1);
  });

  it('a SYN whose S answer the queue lost: judged from the loss, not from the held SYN-ACK', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { secondarySilenceMs: 2000 });
    pair.fromClient(clientSeg({ seq: 5000, ack: 0, flags: TCP_SYN }));
    const synAck = pair.fromP(pair.p.synAck(5000));
    pair.now = 1000;
    pair.merger.secondaryUnseen(pair.now);
    pair.now = 2500;
    pair.merger.poll(pair.now);
    expect(pair.sink.fate(synAck)).toBeUndefined();
    expect(pair.merger.stats.secondarySilent).toBe(0);
    pair.now = 3000;
    pair.merger.poll(pair.now);
    expect(pair.merger.stats.secondarySilent).toBe(1);
  });

  it('does nothing while the pair is degraded by a secondary failure (alone)', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { secondarySilenceMs: 2000 });
    pair.merger.secondaryFailed();
    const id = pair.fromP(pair.p.synAck(5000));
    expect(pair.sink.fate(id)).toBe('accept');
    pair.now = 5000;
    pair.merger.poll(pair.now);
    expect(pair.merger.stats.secondarySilent).toBe(0);
    expect(pair.merger.divergedConnections()).toEqual([]);
  });
});

describe('adopted connections (roles swapped after a failure)', () => {
  it('lets the segments of connections this node served alone pass unchanged; everything else stays fail-closed', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S });
    pair.merger.adopt([{ client: CLIENT, clientPort: CPORT, servicePort: SPORT }], 0);
    const own = pair.p.data(B('served alone'), 5001);
    const copy = Buffer.from(own);
    const id = pair.fromP(own);
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.sink.acceptedPacket(id)).toBeUndefined(); // not rewritten
    expect(own.equals(copy)).toBe(true);
    // Another connection nobody merged: dropped.
    const other = buildIpv4Tcp(
      { src: VIP, dst: CLIENT },
      {
        srcPort: SPORT,
        dstPort: CPORT + 1,
        seq: 1,
        ack: 1,
        flags: TCP_ACK_FLAG,
        window: 1,
        urgent: 0,
        options: [],
        payload: B('x'),
      },
    );
    expect(pair.sink.fate(pair.fromP(other))).toBe('drop');
    expect(pair.merger.stats.adopted).toBe(1);
    // Forgotten after its RST, and after the idle timeout.
    pair.fromP(pair.p.data(Buffer.alloc(0), 5001, 0, TCP_RST | TCP_ACK_FLAG));
    expect(pair.sink.fate(pair.fromP(pair.p.data(B('late'), 5001)))).toBe('drop');
  });

  it('a connection whose handshake straddled the promotion: S’s SYN-ACK for it makes no entry, P’s segments pass (found by the soak: a stall for good)', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S });
    // P's TCP answered the SYN before the rules were in; listed (adopted) after.
    pair.merger.adopt([{ client: CLIENT, clientPort: CPORT, servicePort: SPORT }], 0);
    expect(pair.merger.divergedConnections()).toEqual([]);
    pair.fromS(pair.s.synAck(5000)); // the new secondary's stack saw the same SYN
    expect(pair.merger.connections).toBe(0);
    const id = pair.fromP(pair.p.data(B('served alone'), 5001));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.sink.acceptedPacket(id)).toBeUndefined();
    // S's copy is in its own sequence space: the secondary must reset it, not
    // continue it, if it takes over (in the rig, where both nodes share one
    // kernel and so nearly one ISN, continuing it gave clients wrong bytes).
    expect(pair.merger.divergedConnections()).toEqual([{ client: CLIENT, clientPort: CPORT, servicePort: SPORT }]);
    expect(pair.events.at(-1)).toMatch(/secondary has a copy/);
    // Gone with the connection.
    pair.fromP(pair.p.data(Buffer.alloc(0), 5001, 0, TCP_RST | TCP_ACK_FLAG));
    expect(pair.merger.divergedConnections()).toEqual([]);
  });

  it('a connection merged through us and listed by the second listing (after the rules) stays merged, not adopted', () => {
    const { pair, cack } = established();
    pair.merger.adopt([{ client: CLIENT, clientPort: CPORT, servicePort: SPORT }], 0);
    expect(pair.merger.stats.adopted).toBe(0);
    const id = pair.fromP(pair.p.data(B('merged'), cack));
    expect(pair.sink.fate(id)).toBeUndefined(); // held for S, as any merged segment
    pair.fromS(pair.s.data(B('merged'), cack));
    expect(pair.sink.stream(ISN_S).toString()).toBe('merged');
  });

  it('the same when S’s half was already tracked (S’s SYN-ACK before the listing): P’s first segment removes it and passes', () => {
    const pair = new Pair({ isn: ISN_P }, { isn: ISN_S });
    pair.fromS(pair.s.synAck(5000));
    expect(pair.merger.phases().handshake).toBe(0); // kept aside until P's SYN-ACK: not in the table
    pair.merger.adopt([{ client: CLIENT, clientPort: CPORT, servicePort: SPORT }], 0);
    const id = pair.fromP(pair.p.data(B('served alone'), 5001));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.merger.connections).toBe(0);
    expect(pair.merger.divergedConnections()).toHaveLength(1);
    // A connection in the handshake that is not adopted stays fail-closed.
    const other = new Pair({ isn: ISN_P }, { isn: ISN_S });
    other.fromS(other.s.synAck(5000));
    expect(other.sink.fate(other.fromP(other.p.data(B('x'), 5001)))).toBe('drop');
  });
});
