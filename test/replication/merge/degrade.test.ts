/** When a connection goes on with the primary alone: divergence, the secondary's failure (§6), a live secondary that lost a connection (merge/expiry.ts). */
import { describe, expect, it } from 'vitest';
import { seqAdd } from '../../../bridge/wire/seq.js';
import { TCP_ACK_FLAG, TCP_RST, TCP_SYN } from '../../../bridge/wire/tcp.js';
import { CLIENT, clientSeg, CPORT, Pair, SPORT } from '../../../rig/in-process/harness.js';
import { B, eachFamily, established, ISN_P, ISN_S, tcpOf } from './fixtures.js';

eachFamily((fam) => {
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
      expect(pair.merger.divergedConnections()).toEqual([
        { client: fam.client, clientPort: CPORT, servicePort: SPORT },
      ]);
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
      expect(tcpOf(inbound.out!).ack).toBe(ISN_P + 11);
    });
  });

  describe('secondary failure in steps (beginAlone, goAlone)', () => {
    it('a connection whose segment of P’s comes before its step turns then: out at once, not held; the steps skip it', () => {
      const { pair, cack } = established();
      const held = pair.fromP(pair.p.data(B('before'), cack));
      expect(pair.sink.fate(held)).toBeUndefined();
      pair.merger.beginAlone();
      const next = pair.fromP(pair.p.data(B(' after'), cack));
      expect(pair.sink.fate(held)).toBe('accept');
      expect(pair.sink.fate(next)).toBe('accept');
      expect(pair.sink.stream(ISN_S).toString()).toBe('before after');
      expect(pair.merger.stats.aloneTurns).toMatchObject({ steps: 0, asNeeded: 1 });
      expect(pair.merger.goAlone(Infinity)).toBe(true);
      expect(pair.merger.stats.aloneTurns).toMatchObject({ steps: 0, asNeeded: 1 });
      expect(pair.merger.phases().degraded).toBe(1);
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
      expect(tcpOf(pair.sink.acceptedPacket(again)!).seq).toBe(ISN_P); // Δseq 0: P's own numbers
      expect(pair.merger.stats.secondarySilent).toBe(1);
      expect(pair.merger.phases().degraded).toBe(1);
      expect(pair.merger.divergedConnections()).toEqual([
        { client: fam.client, clientPort: CPORT, servicePort: SPORT },
      ]);
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
      expect(tcpOf(pair.sink.acceptedPacket(next)!).ack).toBe(cack + 10);
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
});

describe('the connections the kernel names first (its maps key IPv4)', () => {
  it('the connections named first turn in the first step (unknown ones ignored), and not again in the pass that follows', () => {
    const { pair, cack } = established();
    const held = pair.fromP(pair.p.data(B('kept'), cack));
    const ref = { client: CLIENT, service: 0, clientPort: CPORT, servicePort: SPORT };
    pair.merger.beginAlone([{ ...ref, clientPort: CPORT + 1 }, ref]);
    expect(pair.merger.goAlone(1)).toBe(false);
    expect(pair.sink.fate(held)).toBe('accept');
    expect(pair.merger.stats.aloneTurns).toMatchObject({ steps: 1, asNeeded: 0 });
    expect(pair.merger.goAlone(Infinity)).toBe(true);
    expect(pair.merger.stats.aloneTurns).toMatchObject({ steps: 1, asNeeded: 0 });
  });
});
