/**
 * The secondary's half-open sockets the pair will never merge (merger.ts
 * resetHalfOpenS): reset in S's stack, so that a later connection on the
 * same ports gets S's SYN-ACK. Left, such a socket answers the new SYN with
 * an ACK for the old one, and the new connection waits for a SYN-ACK of S's
 * that never comes (what the short soak met after a role swap).
 */
import { describe, expect, it } from 'vitest';
import { EARLY_SYNACK_MS } from '../../../bridge/primary/merger.js';
import { WireError } from '../../../bridge/wire/error.js';
import { parseIpTcp } from '../../../bridge/wire/ip.js';
import { TCP_ACK_FLAG, TCP_RST, TCP_SYN } from '../../../bridge/wire/tcp.js';
import { clientSeg, CPORT, Pair, SPORT, type Family } from '../../../rig/in-process/harness.js';
import { eachFamily, ISN_P, ISN_S } from './fixtures.js';

/** The resets the merger sent into S's stack: who to whom, and at what number. */
function resets(pair: Pair) {
  return pair.sink.toS.map((pkt) => {
    const p = parseIpTcp(pkt);
    if (p instanceof WireError) throw p;
    return {
      src: p.tcp.src,
      dst: p.tcp.dst,
      sport: p.tcp.srcPort,
      dport: p.tcp.dstPort,
      seq: p.tcp.seq,
      flags: p.tcp.flags,
      checksums: ('checksumValid' in p.ip ? p.ip.checksumValid() : true) && p.tcp.checksumValid(),
    };
  });
}

/** The RST that drops S's half-open socket of the client's connection whose ISN was `clientIsn`. */
const resetOf = (clientIsn: number, fam: Family) => ({
  src: fam.client,
  dst: fam.service,
  sport: CPORT,
  dport: SPORT,
  seq: clientIsn + 1,
  flags: TCP_RST,
  checksums: true,
});

/** Time passes in the merger's polls (its early SYN-ACKs are looked at once a second). */
function pollUntil(pair: Pair, until: number): void {
  for (let t = pair.now; t <= until; t += 100) pair.merger.poll((pair.now = t));
}

eachFamily((fam) => {
  describe('the secondary’s half-open sockets that are never merged', () => {
    it('S’s SYN-ACK that no SYN-ACK of P’s joins: reset once it has waited EARLY_SYNACK_MS since it first came; S sending it again does not restart the wait', () => {
      const pair = new Pair({ isn: ISN_P }, { isn: ISN_S });
      pair.fromS(pair.s.synAck(5000));
      pollUntil(pair, 1000);
      pair.fromS(pair.s.synAck(5000)); // S's timer: the same SYN-ACK again
      pollUntil(pair, EARLY_SYNACK_MS - 100);
      expect(pair.sink.toS).toEqual([]);
      pollUntil(pair, EARLY_SYNACK_MS + 1000);
      expect(resets(pair)).toEqual([resetOf(5000, fam)]);
      expect(pair.merger.stats.halfOpenResets).toBe(1);
      // Reset, it is no longer S's half: P's SYN-ACK now waits for a new one.
      const id = pair.fromP(pair.p.synAck(5000));
      expect(pair.sink.fate(id)).toBeUndefined();
      pair.fromS(pair.s.synAck(5000));
      expect(pair.sink.fate(id)).toBe('accept');
      expect(resets(pair)).toHaveLength(1);
    });

    it('P’s SYN-ACK joins it in time: merged, nothing reset, then or later', () => {
      const pair = new Pair({ isn: ISN_P }, { isn: ISN_S });
      pair.fromS(pair.s.synAck(5000));
      pollUntil(pair, EARLY_SYNACK_MS - 500);
      const id = pair.fromP(pair.p.synAck(5000));
      // Too long after S's to be paired with it (merge/conn.ts synsPaired): S's answer to the
      // client's SYN sent again, which P's answers too, is.
      expect(pair.sink.fate(id)).toBeUndefined();
      pair.fromS(pair.s.synAck(5000));
      expect(pair.sink.fate(id)).toBe('accept');
      pollUntil(pair, 10_000);
      // S's SYN-ACK of the merged connection sent again (the client's ACK was lost): S's socket is the replica.
      pair.fromS(pair.s.synAck(5000));
      pollUntil(pair, 20_000);
      expect(pair.sink.toS).toEqual([]);
      expect(pair.merger.stats.halfOpenResets).toBe(0);
    });

    it('while the primary serves alone: S’s SYN-ACK is reset at once (nothing new is merged)', () => {
      const pair = new Pair({ isn: ISN_P }, { isn: ISN_S });
      pair.merger.beginAlone();
      expect(pair.merger.goAlone(Infinity)).toBe(true);
      pair.fromS(pair.s.synAck(7000));
      expect(resets(pair)).toEqual([resetOf(7000, fam)]);
    });

    it('a connection begun while the primary served alone stays primary-only: S’s SYN-ACK of it, once S is back, is reset at once', () => {
      const pair = new Pair({ isn: ISN_P }, { isn: ISN_S });
      pair.merger.beginAlone();
      pair.merger.goAlone(Infinity);
      pair.fromClient(clientSeg({ seq: 5000, ack: 0, flags: TCP_SYN }));
      const id = pair.fromP(pair.p.synAck(5000));
      expect(pair.sink.fate(id)).toBe('accept');
      pair.merger.secondaryRejoined();
      expect(pair.merger.phases().degraded).toBe(1);
      pair.fromS(pair.s.synAck(5000));
      expect(resets(pair)).toEqual([resetOf(5000, fam)]);
    });

    it('a connection adopted untranslated (served alone before this bridge): S’s SYN-ACK of it is reset', () => {
      const pair = new Pair({ isn: ISN_P }, { isn: ISN_S });
      pair.merger.adopt([{ client: fam.client, clientPort: CPORT, servicePort: SPORT }], 0);
      pair.fromS(pair.s.synAck(9000));
      expect(resets(pair)).toEqual([resetOf(9000, fam)]);
    });

    it('S’s SYN of a connection the servers open is never reset (a RST would abort its connect): only forgotten after the handshake timeout', () => {
      const pair = new Pair({ isn: ISN_P }, { isn: ISN_S }, { handshakeTimeoutMs: 5000 });
      pair.fromS(pair.s.syn());
      pollUntil(pair, 4000);
      expect(pair.merger.stats.drops['unmatched-syn']).toBe(0);
      pollUntil(pair, 7000);
      expect(pair.merger.stats.drops['unmatched-syn']).toBe(1);
      expect(pair.sink.toS).toEqual([]);
      // Alone, or for a primary-only connection, a SYN is not reset either.
      pair.merger.beginAlone();
      pair.merger.goAlone(Infinity);
      pair.fromS(pair.s.syn());
      expect(pair.sink.toS).toEqual([]);
    });

    it('ports used again: S’s stale SYN-ACK (the old ISN) merges with nothing and is reset at its old number, before or after P’s; the new connection merges with S’s new one', () => {
      const pair = new Pair({ isn: ISN_P }, { isn: ISN_S });
      pair.fromS(pair.s.synAck(5000)); // a socket S keeps from a connection P never had
      const id = pair.fromP(pair.p.synAck(8000)); // the client's new connection on the same ports
      expect(pair.sink.fate(id)).toBeUndefined();
      expect(pair.merger.stats.drops['unmatched-syn']).toBe(1);
      expect(resets(pair)).toEqual([resetOf(5000, fam)]);
      // S's stale socket sends its SYN-ACK again before it got the RST: reset again, still not merged.
      pair.fromS(pair.s.synAck(5000));
      expect(pair.sink.fate(id)).toBeUndefined();
      expect(resets(pair)).toEqual([resetOf(5000, fam), resetOf(5000, fam)]);
      pollUntil(pair, EARLY_SYNACK_MS + 1000);
      expect(pair.sink.toS).toHaveLength(2);
      pair.fromS(pair.s.synAck(8000));
      expect(pair.sink.fate(id)).toBe('accept');
      expect(pair.sink.toClient.at(-1)!.repr.flags).toBe(TCP_SYN | TCP_ACK_FLAG);
    });
  });
});
