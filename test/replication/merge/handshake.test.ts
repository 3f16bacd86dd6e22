/** The handshake merged (§7): both SYN-ACKs, the offsets, the options the client is told (merge/handshake.ts). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { seqAdd } from '../../../bridge/wire/seq.js';
import { TCP_ACK_FLAG, TCP_ECE, TCP_SYN } from '../../../bridge/wire/tcp.js';
import { clientSeg, CPORT, Pair, SPORT, V4 } from '../../../rig/in-process/harness.js';
import { packSynOpts, SYN_PAIR_MS, unpackSynOpts } from '../../../bridge/primary/merge/conn.js';
import { eachFamily, established, ISN_P, ISN_S, refill } from './fixtures.js';

eachFamily((fam) => {
  /** The IP header's length: where the TCP header starts. */
  const IP = fam === V4 ? 20 : 40;

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
      const c = pair.merger.find(fam.client, CPORT, SPORT)!;
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
      const c = pair.merger.find(fam.client, CPORT, SPORT)!;
      expect([c.synP, c.synS]).toEqual([null, null]);
      const id = pair.fromP(pair.p.synAck(5000, 65000));
      expect(pair.sink.fate(id)).toBe('accept');
      const again = pair.sink.toClient.at(-1)!.repr;
      expect([again.seq, again.window, again.options]).toEqual([first.seq, first.window, first.options]);
    });

    it('a merged, idle connection keeps no object for its rarely set fields; one comes with the first such value and goes when all are back to their defaults', () => {
      const pair = new Pair({ isn: ISN_P }, { isn: ISN_S });
      pair.handshake();
      const c = pair.merger.find(fam.client, CPORT, SPORT)!;
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
            const w = packSynOpts({ isn: 0, mss, wscale, sackOk, ts: null, tsecr: null, ecn, window: 0, at: 0 });
            expect(w).toBeGreaterThan(0);
            expect(w).toBeLessThan(2 ** 23);
            expect(unpackSynOpts(w)).toEqual({ mss, wscale, sackOk, ecn });
          },
        ),
      );
      expect(unpackSynOpts(0)).toBeNull();
    });

    it('two SYN-ACKs that answer different SYNs (S’s copy of the client’s first was lost) are not paired: P’s answer to the SYN sent again is, and the client’s echo is a TSval each server sent', () => {
      // P answered the client's first SYN (its TSval 700) at 1,000 ms; S's copy of it was dropped (a full
      // accept queue), and S answered the SYN sent again (TSval 1700) at 2,000.
      const pair = new Pair({ isn: ISN_P, ts: 50_000, echo: 700 }, { isn: ISN_S, ts: 91_000, echo: 1700 });
      pair.now = 1_000;
      const id1 = pair.fromP(pair.p.synAck(5000));
      pair.now = 2_000;
      pair.fromS(pair.s.synAck(5000));
      // A second apart: not paired, nothing goes out.
      expect(pair.sink.fate(id1)).toBeUndefined();
      expect(pair.sink.toClient).toHaveLength(0);
      // P answers the SYN sent again too; its request still echoes the first SYN.
      pair.now = 2_001;
      pair.p.ts = 51_001;
      const id2 = pair.fromP(pair.p.synAck(5000));
      expect(pair.sink.fate(id1)).toBe('drop');
      expect(pair.sink.fate(id2)).toBe('accept');
      const c = pair.merger.find(fam.client, CPORT, SPORT)!;
      expect(c.tsOffset).toBe((51_001 - 91_000) >>> 0);
      // The client gets S's TSval; its echo in P's space is P's newest.
      expect(pair.sink.toClient).toHaveLength(1);
      expect(pair.sink.toClient[0]!.repr.options).toContainEqual({ kind: 'timestamp', tsval: 91_000, tsecr: 700 });
    });

    it('whatever the order and spacing of the SYN-ACKs: merged only from two that came within SYN_PAIR_MS, the client told S’s newest TSval, P’s newest its echo in P’s space', () => {
      fc.assert(
        fc.property(
          fc.array(fc.record({ p: fc.boolean(), gap: fc.integer({ min: 0, max: 1500 }) }), {
            minLength: 1,
            maxLength: 8,
          }),
          (answers) => {
            const pair = new Pair({ isn: ISN_P, ts: 50_000, echo: 700 }, { isn: ISN_S, ts: 91_000, echo: 700 });
            const t0 = 10_000;
            let now = t0;
            let newest: { p: number | null; s: number | null } = { p: null, s: null };
            const at: { p: number | null; s: number | null } = { p: null, s: null };
            let mergedAt = -1;
            for (const [i, a] of answers.entries()) {
              now += a.gap;
              pair.now = now;
              // Each server's clock ticks with the bridge's (both 1 ms); a TSval is the clock at sending.
              const srv = a.p ? pair.p : pair.s;
              srv.ts = (a.p ? 50_000 : 91_000) + (now - t0);
              if (a.p) pair.fromP(pair.p.synAck(5000));
              else pair.fromS(pair.s.synAck(5000));
              if (mergedAt >= 0) continue;
              newest = { ...newest, [a.p ? 'p' : 's']: srv.ts };
              at[a.p ? 'p' : 's'] = now;
              if (pair.sink.toClient.length) mergedAt = i;
              const close = at.p !== null && at.s !== null && Math.abs(at.p - at.s) <= SYN_PAIR_MS;
              expect(pair.sink.toClient.length > 0).toBe(close);
            }
            if (mergedAt < 0) return;
            const c = pair.merger.find(fam.client, CPORT, SPORT)!;
            expect(c.tsOffset).toBe((newest.p! - newest.s!) >>> 0);
            expect(pair.sink.toClient[0]!.repr.options).toContainEqual({
              kind: 'timestamp',
              tsval: newest.s,
              tsecr: 700,
            });
          },
        ),
      );
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
      expect(pair.merger.find(fam.client, CPORT, SPORT)!.tsOn).toBe(false);
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
      synAck.writeUInt8(synAck.readUInt8(IP + 13) | TCP_ECE, IP + 13); // P says yes to ECN, S does not
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
      expect(out.readUInt32BE(IP + 8)).toBe(ISN_P + 1);
      expect(out.readUInt32BE(IP + 20 + 6)).toBe(50_000); // TSecr moved into P's clock
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
      expect(synAck.out!.readUInt32BE(IP + 8)).toBe(301);
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
});
