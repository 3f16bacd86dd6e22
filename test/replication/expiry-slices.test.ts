/**
 * The merger's once-a-second pass over its table (silence, expiry) runs in
 * slices: a poll looks at the share of the table that the time since the
 * last one is of a second, so a table of 100,000 connections never stalls
 * the bridge for a whole pass; after a second or more, the whole table.
 */
import { describe, expect, it } from 'vitest';
import { Merger } from '../../bridge/primary/merger.js';
import { buildIpv4Tcp, TCP_ACK_FLAG, TCP_SYN } from '../../bridge/wire/tcp.js';
import { CLIENT, RecordingSink, serverSynAck, SPORT, VIP } from '../../rig/in-process/harness.js';

/** A merger with `n` connections in their handshake (P's SYN-ACK held), made at time 0. */
function table(n: number, handshakeTimeoutMs: number, sink = new RecordingSink()): Merger {
  const m = new Merger(
    { service: VIP, handshakeTimeoutMs, maxConnections: 2 * n, maxPendingHandshakes: 2 * n },
    sink,
    () => {},
    null,
  );
  for (let i = 0; i < n; i++) {
    const synAck = serverSynAck(20_000 + i, 1000, 5001);
    m.fromPrimary(i + 1, synAck, false, 0);
  }
  expect(m.connections).toBe(n);
  return m;
}

describe('the merger’s pass over its table', () => {
  it('polls 100 ms apart each look at a tenth of it: every expired entry goes within about a second, never all at once', () => {
    const m = table(1000, 1000);
    expect(m.poll(500)).toBe(0); // the first poll looks at everything: nothing has expired yet
    const removed: number[] = [];
    for (let t = 1100; t <= 2200; t += 100) removed.push(m.poll(t));
    // Each slice: a tenth (the first slice's time share is 600 ms: six tenths).
    expect(removed[0]).toBe(600);
    for (const r of removed.slice(1, 5)) expect(r).toBe(100);
    expect(m.connections).toBe(0);
    expect(removed.reduce((a, b) => a + b, 0)).toBe(1000);
  });

  it('a pass begun on an empty table ends: connections made later are looked at within about a second', () => {
    const sink = new RecordingSink();
    const m = new Merger(
      { service: VIP, handshakeTimeoutMs: 1000, maxConnections: 1000, maxPendingHandshakes: 1000 },
      sink,
      () => {},
      null,
    );
    expect(m.poll(0)).toBe(0);
    expect(m.poll(100)).toBe(0); // a pass over nothing
    for (let i = 0; i < 100; i++) {
      const synAck = buildIpv4Tcp(
        { src: VIP, dst: CLIENT },
        {
          srcPort: SPORT,
          dstPort: 30_000 + i,
          seq: 1000,
          ack: 5001,
          flags: TCP_SYN | TCP_ACK_FLAG,
          window: 64240,
          urgent: 0,
          options: [{ kind: 'mss', mss: 1460 }],
          payload: Buffer.alloc(0),
        },
      );
      m.fromPrimary(i + 1, synAck, false, 150);
    }
    let removed = 0;
    for (let t = 200; t <= 2400; t += 100) removed += m.poll(t);
    expect(removed).toBe(100);
    expect(m.connections).toBe(0);
  });

  it('a poll a second or more after the last looks at the whole table', () => {
    const m = table(500, 1000);
    expect(m.poll(100)).toBe(0);
    expect(m.poll(1200)).toBe(500);
    expect(m.connections).toBe(0);
  });

  it('the secondary’s failure in steps: each turns at most its share primary-only (here: P’s held SYN-ACKs released); the last step says it is done', () => {
    const sink = new RecordingSink();
    const m = table(1000, 60_000, sink);
    expect(sink.accepted).toHaveLength(0);
    m.beginAlone();
    expect(m.goAlone(300)).toBe(false);
    expect(sink.accepted).toHaveLength(300);
    expect(m.goAlone(300)).toBe(false);
    expect(sink.accepted).toHaveLength(600);
    expect(m.goAlone(Infinity)).toBe(true);
    expect(sink.accepted).toHaveLength(1000);
    expect(m.goAlone(10)).toBe(true);
    // All at once, as before.
    const sink2 = new RecordingSink();
    table(200, 60_000, sink2).secondaryFailed();
    expect(sink2.accepted).toHaveLength(200);
  });
});
