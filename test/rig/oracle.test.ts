/** The transparency oracle itself must be able to fail. */
import { describe, expect, it } from 'vitest';
import { mac } from '../../net/addr.js';
import { emitEthernet, ETHERTYPE_IPV4 } from '../../bridge/wire/ethernet.js';
import { ipv4 } from '../../net/addr.js';
import { buildIpv4Tcp, TCP_ACK_FLAG, TCP_FIN, TCP_RST, TCP_SYN } from '../../bridge/wire/tcp.js';
import type { CapturedFrame } from '../../rig/capture.js';
import { checkTransparency, framesAroundRst } from '../../rig/oracle.js';
import { halfOpenReset } from '../../bridge/primary/prompts.js';

const VIP = '192.0.2.100';
const frame = (seq: number, flags: number, payload = Buffer.alloc(0), corrupt = false, ack = 1): CapturedFrame => {
  const ip = buildIpv4Tcp(
    { src: ipv4(VIP), dst: ipv4('192.0.2.10') },
    {
      srcPort: 7000,
      dstPort: 40000,
      seq,
      ack,
      flags,
      window: 100,
      urgent: 0,
      options: flags & TCP_SYN ? [{ kind: 'mss', mss: 1460 }] : [],
      payload,
    },
  );
  if (corrupt) ip.writeUInt8(ip.readUInt8(ip.length - 1) ^ 0xff, ip.length - 1);
  const data = emitEthernet(mac('02:00:00:00:00:01'), mac('02:00:00:00:00:02'), ETHERTYPE_IPV4, ip);
  return { time: 0, data, originalLength: data.length };
};

/** A frame from the client (port 40000) to the service. */
const fromClient = (seq: number, ack: number, flags: number): CapturedFrame => {
  const ip = buildIpv4Tcp(
    { src: ipv4('192.0.2.10'), dst: ipv4(VIP) },
    { srcPort: 40000, dstPort: 7000, seq, ack, flags, window: 100, urgent: 0, options: [], payload: Buffer.alloc(0) },
  );
  const data = emitEthernet(mac('02:00:00:00:00:02'), mac('02:00:00:00:00:01'), ETHERTYPE_IPV4, ip);
  return { time: 0, data, originalLength: data.length };
};

describe('transparency oracle', () => {
  it('a client RST after its close that answers a stale segment (an exact copy, or data it already acknowledged) is the network’s doing, not a problem; any other client RST is', () => {
    // The service sends "abc" and its FIN; the client closes last (its FIN is seq 1), and the service's ACK of it (ack 2) ends it.
    const ackOfFin = () => frame(1005, TCP_ACK_FLAG, Buffer.alloc(0), false, 2); // ack 2: past the client's FIN
    const base = [
      frame(1000, TCP_SYN | TCP_ACK_FLAG),
      frame(1001, TCP_ACK_FLAG, Buffer.from('abc')),
      frame(1004, TCP_ACK_FLAG | TCP_FIN),
      fromClient(1, 1005, TCP_ACK_FLAG | TCP_FIN),
    ];
    const dup = checkTransparency([...base, ackOfFin(), ackOfFin(), fromClient(2, 0, TCP_RST)], VIP, 7000, {
      maxSpan: 1 << 20,
    });
    expect(dup.problems).toEqual([]);
    expect(dup.rstAfterClose).toBe(1);
    // A late original (held back by a reordering link) of bytes the client already acknowledged, segmented differently.
    const late = checkTransparency(
      [...base, ackOfFin(), frame(1002, TCP_ACK_FLAG, Buffer.from('bc')), fromClient(2, 0, TCP_RST)],
      VIP,
      7000,
      { maxSpan: 1 << 20 },
    );
    expect(late.problems).toEqual([]);
    expect(late.rstAfterClose).toBe(1);
    // Data reaching past what the client acknowledged is not stale.
    const past = checkTransparency(
      [...base, ackOfFin(), frame(1004, TCP_ACK_FLAG, Buffer.from('de')), fromClient(2, 0, TCP_RST)],
      VIP,
      7000,
      { maxSpan: 1 << 20 },
    );
    expect(past.problems.some((p) => p.startsWith('RST from the client'))).toBe(true);
    // The first ACK of the client's FIN answered with a RST: not stale (no copy, no data).
    const first = checkTransparency([...base, ackOfFin(), fromClient(2, 0, TCP_RST)], VIP, 7000, { maxSpan: 1 << 20 });
    expect(first.problems.some((p) => p.startsWith('RST from the client'))).toBe(true);
    // Not a copy: the segment before the RST is new.
    const fresh = checkTransparency(
      [...base, ackOfFin(), frame(1005, TCP_ACK_FLAG, Buffer.from('late'), false, 2), fromClient(2, 0, TCP_RST)],
      VIP,
      7000,
      { maxSpan: 1 << 20 },
    );
    expect(fresh.problems.some((p) => p.startsWith('RST from the client'))).toBe(true);
    // An ACK short of the client's FIN (ack 1) does not end the connection, even repeated.
    const short = () => frame(1005, TCP_ACK_FLAG, Buffer.alloc(0), false, 1);
    const notEnded = checkTransparency([...base, short(), short(), fromClient(2, 0, TCP_RST)], VIP, 7000, {
      maxSpan: 1 << 20,
    });
    expect(notEnded.problems.some((p) => p.startsWith('RST from the client'))).toBe(true);
    // The client's FIN not acknowledged yet: a RST is a problem, copy or not.
    const open = checkTransparency(
      [...base.slice(0, 3), frame(1004, TCP_ACK_FLAG | TCP_FIN), fromClient(1, 1005, TCP_RST)],
      VIP,
      7000,
      { maxSpan: 1 << 20 },
    );
    expect(open.problems.some((p) => p.startsWith('RST from the client'))).toBe(true);
  });
  it('a service RST at its FIN’s end, answering the client’s duplicate ACK of a segment that came after the client acknowledged the FIN, is the network’s doing; any other is a problem', () => {
    // The client closes first (its FIN is seq 1); the service's FIN (seq 1001, ack 2) acknowledges it, the client's ACK 1002 ends it.
    const closed = [
      frame(1000, TCP_SYN | TCP_ACK_FLAG),
      fromClient(1, 1001, TCP_ACK_FLAG | TCP_FIN),
      frame(1001, TCP_ACK_FLAG | TCP_FIN, Buffer.alloc(0), false, 2),
      fromClient(2, 1002, TCP_ACK_FLAG),
    ];
    // The service's ACK of the client's FIN, sent before its FIN, came after it; the client's duplicate ACK; the RST.
    const lateAck = frame(1001, TCP_ACK_FLAG, Buffer.alloc(0), false, 2);
    const rst = (seq: number) => frame(seq, TCP_RST, Buffer.alloc(0), false, 0);
    const check = (frames: CapturedFrame[]) => checkTransparency(frames, VIP, 7000, { maxSpan: 1 << 20 });
    const reordered = check([...closed, lateAck, fromClient(2, 1002, TCP_ACK_FLAG), rst(1002)]);
    expect(reordered.problems).toEqual([]);
    expect(reordered.rstAfterClose).toBe(1);
    // The same with the FIN itself sent again.
    const finAgain = check([...closed, frame(1001, TCP_ACK_FLAG | TCP_FIN, Buffer.alloc(0), false, 2), rst(1002)]);
    expect(finAgain.problems).toEqual([]);
    const isProblem = (r: ReturnType<typeof check>) => r.problems.some((p) => p.startsWith('RST from the service'));
    // No late segment: nothing gave the client a reason to answer.
    expect(isProblem(check([...closed, rst(1002)]))).toBe(true);
    // A pure ACK at the FIN's end is no late segment.
    expect(isProblem(check([...closed, frame(1002, TCP_ACK_FLAG, Buffer.alloc(0), false, 2), rst(1002)]))).toBe(true);
    // Not at the FIN's end.
    expect(isProblem(check([...closed, lateAck, rst(1001)]))).toBe(true);
    // The client had not acknowledged the service's FIN.
    expect(isProblem(check([...closed.slice(0, 3), lateAck, rst(1002)]))).toBe(true);
    // The service had not acknowledged the client's FIN (its segments carry ack 1).
    const noAck = (seq: number, flags: number) => frame(seq, flags, Buffer.alloc(0), false, 1);
    const open = [...closed];
    open[2] = noAck(1001, TCP_ACK_FLAG | TCP_FIN);
    expect(isProblem(check([...open, noAck(1001, TCP_ACK_FLAG), rst(1002)]))).toBe(true);
  });
  it('passes a clean connection', () => {
    const r = checkTransparency(
      [
        frame(1000, TCP_SYN | TCP_ACK_FLAG),
        frame(1001, TCP_ACK_FLAG, Buffer.from('abc')),
        frame(1004, TCP_ACK_FLAG, Buffer.from('def')),
      ],
      VIP,
      7000,
    );
    expect(r.problems).toEqual([]);
    expect(r.connections[0]!.dataBytes).toBe(6);
  });
  it('flags a segment in another sequence space (raw primary numbers)', () => {
    const r = checkTransparency(
      [frame(1000, TCP_SYN | TCP_ACK_FLAG), frame(900_000_000, TCP_ACK_FLAG, Buffer.from('x'))],
      VIP,
      7000,
      { maxSpan: 1 << 20 },
    );
    expect(r.problems.join()).toMatch(/outside the connection's sequence space/);
  });
  it('a RST from the client’s address that the primary sends into the secondary’s stack (another MAC, to the secondary’s) is not the client’s; the client’s own RST is', () => {
    const toSecondary = (): CapturedFrame => {
      // The frame the primary sends (bridge/primary/prompts.ts), from the client's address.
      const ip = halfOpenReset(ipv4('192.0.2.10'), 40000, 7000, 1, ipv4(VIP));
      // From the primary's MAC (:02, the service's here) to the secondary's (:03); the client's is :01.
      const data = emitEthernet(mac('02:00:00:00:00:03'), mac('02:00:00:00:00:02'), ETHERTYPE_IPV4, ip);
      return { time: 0, data, originalLength: data.length };
    };
    const open = [
      frame(1000, TCP_SYN | TCP_ACK_FLAG),
      fromClient(1, 1001, TCP_ACK_FLAG),
      frame(1001, TCP_ACK_FLAG, Buffer.from('abc')),
    ];
    expect(checkTransparency([...open, toSecondary()], VIP, 7000).problems).toEqual([]);
    expect(checkTransparency([...open, toSecondary(), fromClient(1, 1004, TCP_RST)], VIP, 7000).problems).toEqual([
      expect.stringMatching(/^RST from the client on client port 40000/),
    ]);
  });

  it('flags two different bytes at one offset, an RST and a bad checksum', () => {
    const r = checkTransparency(
      [
        frame(1000, TCP_SYN | TCP_ACK_FLAG),
        frame(1001, TCP_ACK_FLAG, Buffer.from('abc')),
        frame(1001, TCP_ACK_FLAG, Buffer.from('abX')),
        frame(1004, TCP_RST),
        frame(1004, TCP_ACK_FLAG, Buffer.from('z'), true),
      ],
      VIP,
      7000,
    );
    expect(r.problems.some((p) => p.includes('two different bytes'))).toBe(true);
    expect(r.problems.some((p) => p.includes('RST'))).toBe(true);
    expect(r.problems.some((p) => p.includes('bad TCP checksum'))).toBe(true);
    expect(r.problems.find((p) => p.startsWith('RST'))).toMatch(/seq offset 3 of 3 bytes seen/);
  });
  it('lists the frames around the first RST, in relative numbers', () => {
    const frames = [
      frame(1000, TCP_SYN | TCP_ACK_FLAG),
      frame(1001, TCP_ACK_FLAG, Buffer.from('abc')),
      frame(1004, TCP_RST),
    ];
    const text = framesAroundRst(frames, VIP, 7000);
    expect(text.split('\n')).toHaveLength(3);
    expect(text).toMatch(/S>C port 40000 \[RST\] seq 4 /);
    expect(framesAroundRst(frames.slice(0, 2), VIP, 7000)).toBe('');
  });
});
