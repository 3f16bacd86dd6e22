/** Connections adopted when the roles swap after a failure (merge/adopted.ts). */
import { describe, expect, it } from 'vitest';
import { buildIpv4Tcp, TCP_ACK_FLAG, TCP_RST } from '../../../bridge/wire/tcp.js';
import { CLIENT, CPORT, Pair, SPORT, VIP } from '../../../rig/in-process/harness.js';
import { B, established, ISN_P, ISN_S } from './fixtures.js';

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
