/** ACKs, windows and the client's segments (merge/ack.ts): the merged ACK, hostile and blind input, the kernel's translation of the client's common segments. */
import { describe, expect, it } from 'vitest';
import { seqAdd, seqSub } from '../../../bridge/wire/seq.js';
import { TCP_ACK_FLAG, TCP_FIN, TCP_RST, TCP_SYN } from '../../../bridge/wire/tcp.js';
import { clientSeg, CLIENT, CPORT, Pair, SPORT, V4, V6, type RecordingSink } from '../../../rig/in-process/harness.js';
import type { InboundOffload } from '../../../bridge/primary/merger.js';
import type { KernelMergeInit, KernelMergeState } from '../../../bridge/primary/merge/kernel.js';
import { kernelDigest } from '../../../bridge/io/xlate.js';
import { B, eachFamily, established, ISN_P, ISN_S, refill } from './fixtures.js';

eachFamily((fam) => {
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
      const c = pair.merger.find(fam.client, CPORT, SPORT)!;
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
        expect(pair.merger.find(fam.client, CPORT, SPORT)?.phase).toBe('merging');
      }
      // Still merged: bytes go out as before.
      const id = pair.fromP(pair.p.data(B('still'), cack));
      pair.fromS(pair.s.data(B('still'), cack));
      expect(pair.sink.fate(id)).toBe('accept');
      pair.fromClient(clientSeg({ seq: cack, ack: 0, flags: TCP_RST }));
      expect(pair.merger.find(fam.client, CPORT, SPORT)?.phase).toBe('closed');
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
      const c = pair.merger.find(fam.client, CPORT, SPORT)!;
      expect(c.hasAckClient).toBe(false);
      expect(c.finClient).toBe(false);
    });

    it('a spoofed SYN and a blind ACK do not make the entry established: it expires at the handshake timeout', () => {
      const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { handshakeTimeoutMs: 10_000 });
      const cisn = pair.handshake();
      // The attacker never saw the SYN-ACK: its ACK numbers are guesses.
      for (const ack of [1, ISN_S, ISN_S + 2, ISN_S + 100_000])
        pair.fromClient(clientSeg({ seq: cisn + 1, ack, flags: TCP_ACK_FLAG }));
      expect(pair.merger.find(fam.client, CPORT, SPORT)?.established).toBe(false);
      pair.now = 10_001;
      expect(pair.merger.poll(pair.now)).toBe(1);
      expect(pair.merger.connections).toBe(0);
    });

    it('a blind FIN does not half-close the connection (window updates go on)', () => {
      const { pair, cack } = established();
      pair.fromP(pair.p.ack(cack));
      pair.fromS(pair.s.ack(cack));
      pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 50_000, flags: TCP_ACK_FLAG | TCP_FIN }));
      expect(pair.merger.find(fam.client, CPORT, SPORT)?.finClient).toBe(false);
      pair.fromClient(clientSeg({ seq: cack, ack: ISN_S + 1, flags: TCP_ACK_FLAG | TCP_FIN }));
      expect(pair.merger.find(fam.client, CPORT, SPORT)?.finClient).toBe(true);
    });
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
    digest?: (bytes: Buffer) => bigint;
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

  it('an IPv6 connection stays with the queue: the kernel’s maps key IPv4, so the offload is never asked', () => {
    const off = new FakeOffload();
    const calls: string[] = [];
    const spy = new Proxy(off, {
      get(t, name, r) {
        const v = Reflect.get(t, name, r) as unknown;
        return typeof v === 'function' && name !== 'watch' && name !== 'key' && name !== 'client'
          ? (...a: unknown[]) => (calls.push(String(name)), (v as (...x: unknown[]) => unknown).apply(t, a))
          : v;
      },
    });
    const pair = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, {}, spy, V6);
    const cack = seqAdd(pair.handshake(), 1);
    const id = pair.fromP(pair.p.data(B('abcdef'), cack));
    pair.fromS(pair.s.data(B('abcdef'), cack));
    pair.fromClient(pair.clientSeg({ seq: cack, ack: ISN_S + 7, flags: TCP_ACK_FLAG }));
    pair.fromP(pair.p.dataAt(seqAdd(ISN_P, 1), B('abcdef'), cack)); // a retransmission: what did the client acknowledge?
    pair.merger.batchEnd(pair.now);
    pair.merger.secondaryFailed();
    pair.fromP(pair.p.data(B('g'), cack));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.sink.stream(ISN_S).toString()).toBe('abcdefg');
    expect(calls).toEqual([]);
    // The same steps over IPv4 do ask it (the spy sees calls).
    const pair4 = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, {}, spy, V4);
    pair4.handshake();
    expect(calls).toContain('add');
  });

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

  /** The kernel's state after it dropped S's copies `ranges` (S first) and let the connection go: their digests, not their bytes. */
  const droppedS =
    (ranges: string[]) =>
    (init: KernelMergeInit): KernelMergeState => {
      const pending: number[] = [];
      let end = init.relNxt;
      for (const r of ranges) pending.push((end = seqAdd(end, r.length)));
      const digests = Buffer.from(new BigUint64Array(ranges.map((r) => kernelDigest(B(r)))).buffer);
      return { ...init, flags: (1 << 2) | (1 << 3) | (1 << 4), handover: 2, ahead: 2, pending, digests, stashed: [] };
    };

  /** A connection the kernel merges, handed over with S's copies of `ranges` dropped there; P's `answer` reaches the bridge. */
  function afterDroppedS(ranges: string[], answer: string) {
    const off = new KernelOffload(droppedS(ranges));
    off.digest = kernelDigest;
    const pair = new Pair({ isn: ISN_P, ts: 50_000 }, { isn: ISN_S, ts: 90_000 }, {}, off);
    off.watch(pair.sink);
    const cack = seqAdd(pair.handshake(), 1);
    pair.fromP(pair.p.data(B(answer), cack));
    return pair;
  }

  it('compares P’s bytes with S’s copies the kernel dropped, by their digests: the same go out, merged', () => {
    const pair = afterDroppedS(['ans', 'wer'], 'answer');
    expect(pair.sink.stream(ISN_S).toString()).toBe('answer');
    expect(pair.merger.stats).toMatchObject({ digestsCompared: 2, digestMismatches: 0, divergences: 0 });
    expect(pair.merger.phases().merging).toBe(1);
  });

  it('finds other bytes where S’s copy was dropped in the kernel: a divergence, the connection degraded', () => {
    const pair = afterDroppedS(['ans', 'wer'], 'answeR');
    expect(pair.merger.stats).toMatchObject({ digestsCompared: 2, digestMismatches: 1, divergences: 1 });
    expect(pair.merger.phases().degraded).toBe(1);
    // P's bytes went out as P produced them (primary-only from here on).
    expect(pair.sink.stream(ISN_S).toString()).toBe('answeR');
  });

  it('compares only the dropped ranges P’s segment covers whole (a range cut otherwise is not compared, as a lost diverted copy is not)', () => {
    const pair = afterDroppedS(['answ', 'er'], 'ans');
    expect(pair.merger.stats.digestsCompared).toBe(0);
    const pair2 = afterDroppedS(['an', 'swer'], 'anX');
    expect(pair2.merger.stats).toMatchObject({ digestsCompared: 1, digestMismatches: 0, divergences: 0 });
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
