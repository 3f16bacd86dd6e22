/** The secondary's diverter: divert option, addresses, checksums, MSS clamp, SACK trimming. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WireError } from '../../bridge/wire/error.js';
import { emitEthernet, ETHERTYPE_IPV4 } from '../../bridge/wire/ethernet.js';
import { mac } from '../../net/addr.js';
import { fold, pseudoHeaderSum } from '../../bridge/wire/checksum.js';
import { buildIpv4Tcp, parseIpv4Tcp, parseTcpRepr, TCP_ACK_FLAG, TCP_RST, TCP_SYN } from '../../bridge/wire/tcp.js';
import type { TcpOption } from '../../bridge/wire/tcp-options.js';
import { PortMatcher } from '../../net/ports.js';
import { Diverter } from '../../bridge/secondary/diverter.js';
import { clampedMss, divertedClient } from '../../bridge/wire/divert.js';
import { A_P, A_S, CLIENT, CPORT, SPORT, VIP } from '../../rig/in-process/harness.js';
import { tcpOptions } from '../wire/arbitraries.js';

const diverter = () =>
  new Diverter({
    service: VIP,
    self: A_S,
    primary: A_P,
    ports: new PortMatcher([SPORT, [20, 21]]),
    mtu: 1500,
    primaryMac: '02:00:00:00:00:02',
  });

function fromS(options: TcpOption[], payload = Buffer.from('reply'), sport = SPORT, src = VIP): Buffer {
  return buildIpv4Tcp(
    { src, dst: CLIENT },
    {
      srcPort: sport,
      dstPort: CPORT,
      seq: 123,
      ack: 456,
      flags: TCP_ACK_FLAG,
      window: 99,
      urgent: 0,
      options,
      payload,
    },
  );
}

describe('diverter: S’s output to the primary', () => {
  it('readdresses to a_s → a_p, carries a_c in the option, keeps everything else', () => {
    fc.assert(
      fc.property(
        tcpOptions.filter(
          (o) =>
            !o.some((x) => x.kind === 'divert') &&
            o.reduce((n, x) => n + (x.kind === 'sack' ? 2 + 8 * x.blocks.length : 10), 0) <= 32,
        ),
        fc.uint8Array({ maxLength: 1400 }),
        (options, payload) => {
          const original = fromS(options, Buffer.from(payload));
          const out = diverter().divert(original, false);
          if (typeof out === 'string') throw new Error(out);
          const p = parseIpv4Tcp(out);
          if (p instanceof WireError) throw p;
          expect(p.ip.src).toBe(A_S);
          expect(p.ip.dst).toBe(A_P);
          expect(p.ip.checksumValid()).toBe(true);
          expect(p.tcp.checksumValid()).toBe(true);
          expect(divertedClient(p.tcp)).toBe(CLIENT);
          const repr = parseTcpRepr(p.tcp);
          if (repr instanceof WireError) throw repr;
          const orig = parseIpv4Tcp(original);
          if (orig instanceof WireError) throw orig;
          const before = parseTcpRepr(orig.tcp);
          if (before instanceof WireError) throw before;
          expect(repr.payload.equals(Buffer.from(payload))).toBe(true);
          expect(repr.options.filter((o) => o.kind !== 'divert')).toEqual(before.options);
          expect({ seq: repr.seq, ack: repr.ack, window: repr.window, dstPort: repr.dstPort }).toEqual({
            seq: 123,
            ack: 456,
            window: 99,
            dstPort: CPORT,
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('trims SACK blocks when the options would not fit, and counts it', () => {
    const d = diverter();
    const options: TcpOption[] = [
      { kind: 'timestamp', tsval: 1, tsecr: 2 },
      {
        kind: 'sack',
        blocks: [
          [1, 2],
          [3, 4],
          [5, 6],
        ],
      },
    ];
    const out = d.divert(fromS(options), false);
    if (typeof out === 'string') throw new Error(out);
    const p = parseIpv4Tcp(out) as Exclude<ReturnType<typeof parseIpv4Tcp>, WireError>;
    expect(p.tcp.checksumValid()).toBe(true);
    expect(p.tcp.options()).toEqual([
      { kind: 'timestamp', tsval: 1, tsecr: 2 },
      {
        kind: 'sack',
        blocks: [
          [1, 2],
          [3, 4],
        ],
      },
      { kind: 'divert', client: CLIENT },
    ]);
    expect(d.stats.sackTrimmed).toBe(1);
  });

  it('skips segments that are not from the service address or a failover port', () => {
    const d = diverter();
    expect(d.divert(fromS([], Buffer.from('x'), 8080), false)).toBe('not-failover-port');
    expect(d.divert(fromS([], Buffer.from('x'), SPORT, A_S), false)).toBe('not-service');
    expect(d.divert(Buffer.alloc(10), false)).toBe('malformed');
    expect(d.stats.skipped).toMatchObject({ 'not-failover-port': 1, 'not-service': 1, malformed: 1 });
  });
});

describe('diverter: the client’s frames into S’s stack', () => {
  const frame = (flags: number, options: TcpOption[], dport = SPORT, dst = VIP) =>
    emitEthernet(
      mac('02:00:00:00:00:02'),
      mac('02:00:00:00:00:01'),
      ETHERTYPE_IPV4,
      buildIpv4Tcp(
        { src: CLIENT, dst },
        {
          srcPort: CPORT,
          dstPort: dport,
          seq: 1,
          ack: 0,
          flags,
          window: 100,
          urgent: 0,
          options,
          payload: Buffer.alloc(0),
        },
      ),
    );

  it('clamps the MSS of a client SYN so S’s segments fit with the divert option', () => {
    const d = diverter();
    const pkt = d.inbound(frame(TCP_SYN, [{ kind: 'mss', mss: 1460 }, { kind: 'sack-permitted' }]));
    expect(pkt).not.toBeNull();
    const p = parseIpv4Tcp(pkt!) as Exclude<ReturnType<typeof parseIpv4Tcp>, WireError>;
    expect(p.tcp.options()).toEqual([{ kind: 'mss', mss: clampedMss(1500) }, { kind: 'sack-permitted' }]);
    expect(clampedMss(1500)).toBe(1452);
    expect(p.tcp.checksumValid()).toBe(true);
    expect(p.ip.dst).toBe(VIP); // unchanged: the VIP is dormant on S's lo
    // A smaller MSS stays.
    const small = d.inbound(frame(TCP_SYN, [{ kind: 'mss', mss: 536 }]))!;
    expect((parseIpv4Tcp(small) as Exclude<ReturnType<typeof parseIpv4Tcp>, WireError>).tcp.options()).toEqual([
      { kind: 'mss', mss: 536 },
    ]);
  });

  it('a frame for the service to another MAC (the primary’s copy to ours, on a learning switch) is not injected: our kernel takes it; the connection is still tracked', () => {
    const d = diverter();
    const toUs = emitEthernet(
      mac('02:00:00:00:00:03'),
      mac('02:00:00:00:00:01'),
      ETHERTYPE_IPV4,
      buildIpv4Tcp(
        { src: CLIENT, dst: VIP },
        {
          srcPort: CPORT,
          dstPort: SPORT,
          seq: 10,
          ack: 20,
          flags: TCP_ACK_FLAG,
          window: 100,
          urgent: 0,
          options: [],
          payload: Buffer.from('x'),
        },
      ),
    );
    expect(d.inbound(toUs)).toBeNull();
    expect(d.stats.injected).toBe(0);
    expect(d.trackedConnections).toBe(1);
  });

  it('ignores frames for other ports, other addresses and non-IPv4', () => {
    const d = diverter();
    expect(d.inbound(frame(TCP_ACK_FLAG, [], 8080))).toBeNull();
    expect(d.inbound(frame(TCP_ACK_FLAG, [], SPORT, A_P))).toBeNull();
    expect(d.inbound(Buffer.alloc(60))).toBeNull();
    expect(d.inbound(frame(TCP_ACK_FLAG, [], 21))).not.toBeNull();
  });
});

describe('diverter: corrupted segments are not passed on with a fresh sum', () => {
  const frameOf = (payload: string) =>
    emitEthernet(
      mac('02:00:00:00:00:02'),
      mac('02:00:00:00:00:01'),
      ETHERTYPE_IPV4,
      buildIpv4Tcp(
        { src: CLIENT, dst: VIP },
        {
          srcPort: CPORT,
          dstPort: SPORT,
          seq: 1,
          ack: 5,
          flags: TCP_ACK_FLAG,
          window: 100,
          urgent: 0,
          options: [],
          payload: Buffer.from(payload),
        },
      ),
    );

  it('a captured client frame with a wrong sum is not injected, and counted; one in the partial form (offload pending) is completed', () => {
    const d = diverter();
    const bad = frameOf('hello');
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 0x01;
    expect(d.inbound(bad)).toBeNull();
    expect(d.stats.badChecksum).toBe(1);
    const partial = frameOf('hello');
    const ipOff = 14;
    const p = parseIpv4Tcp(partial, ipOff) as Exclude<ReturnType<typeof parseIpv4Tcp>, WireError>;
    partial.writeUInt16BE(fold(pseudoHeaderSum(p.ip.src, p.ip.dst, 6, p.tcp.len)), ipOff + 20 + 16);
    const out = d.inbound(partial);
    expect(out).not.toBeNull();
    expect((parseIpv4Tcp(out!) as Exclude<ReturnType<typeof parseIpv4Tcp>, WireError>).tcp.checksumValid()).toBe(true);
  });

  it('S’s own segment with a complete but wrong sum is refused (fail closed); a partial one is diverted', () => {
    const d = diverter();
    const pkt = fromS([], Buffer.from('abc'));
    pkt[pkt.length - 1] = pkt[pkt.length - 1]! ^ 0x01;
    expect(d.divert(pkt, false)).toBe('bad-checksum');
    expect(typeof d.divert(pkt, false, true)).not.toBe('string');
  });
});

describe('diverter: prompts after a takeover', () => {
  it('builds, per tracked connection, the client’s last segment one byte in the past; forgets closed ones', () => {
    const d = diverter();
    const f = (flags: number, seq: number, cport: number) =>
      emitEthernet(
        mac('02:00:00:00:00:02'),
        mac('02:00:00:00:00:01'),
        ETHERTYPE_IPV4,
        buildIpv4Tcp(
          { src: CLIENT, dst: VIP },
          {
            srcPort: cport,
            dstPort: SPORT,
            seq,
            ack: 777,
            flags,
            window: 300,
            urgent: 0,
            options: [{ kind: 'timestamp', tsval: 42, tsecr: 1 }],
            payload: Buffer.from('abc'),
          },
        ),
      );
    d.inbound(f(TCP_ACK_FLAG, 1000, 40001));
    d.inbound(f(TCP_ACK_FLAG, 2000, 40002));
    d.inbound(f(TCP_ACK_FLAG | 0x01 /* FIN */, 2003, 40002));
    // Bare SYNs (a flood from spoofed addresses) are not tracked.
    for (let port = 50000; port < 50100; port++) d.inbound(f(0x02 /* SYN */, 5, port));
    expect(d.trackedConnections).toBe(1);
    const [p] = d.prompts();
    const parsed = parseIpv4Tcp(p!) as Exclude<ReturnType<typeof parseIpv4Tcp>, WireError>;
    expect(parsed.tcp.checksumValid()).toBe(true);
    expect({ seq: parsed.tcp.seq, ack: parsed.tcp.ack, sport: parsed.tcp.srcPort, dst: parsed.ip.dst }).toEqual({
      seq: 1002,
      ack: 777,
      sport: 40001,
      dst: VIP,
    });
    expect(parsed.tcp.options()).toEqual([{ kind: 'timestamp', tsval: 42, tsecr: 0 }]);
  });
});

describe('diverter: closing diverged connections after a takeover', () => {
  it('per known connection: a reset into our stack, a reset and a bare ACK to the client (which draws an answer wherever its window is); forgets it', () => {
    const d = diverter();
    const f = (cport: number, seq: number, ack: number) =>
      emitEthernet(
        mac('02:00:00:00:00:02'),
        mac('02:00:00:00:00:01'),
        ETHERTYPE_IPV4,
        buildIpv4Tcp(
          { src: CLIENT, dst: VIP },
          {
            srcPort: cport,
            dstPort: SPORT,
            seq,
            ack,
            flags: TCP_ACK_FLAG,
            window: 300,
            urgent: 0,
            options: [],
            payload: Buffer.from('abc'),
          },
        ),
      );
    d.inbound(f(40001, 1000, 9000));
    d.inbound(f(40002, 2000, 8000));
    const r = d.resets([
      { client: CLIENT, clientPort: 40001, servicePort: SPORT },
      { client: CLIENT, clientPort: 40009, servicePort: SPORT }, // never seen: nothing to close
    ]);
    expect(r.closed).toBe(1);
    const segs = r.packets.map((p) => parseIpv4Tcp(p) as Exclude<ReturnType<typeof parseIpv4Tcp>, WireError>);
    expect(segs.every((p) => p.tcp.checksumValid() && p.ip.checksumValid())).toBe(true);
    expect(
      segs.map((p) => ({
        src: p.ip.src,
        dst: p.ip.dst,
        dport: p.tcp.dstPort,
        seq: p.tcp.seq,
        ack: p.tcp.ack,
        flags: p.tcp.flags,
      })),
    ).toEqual([
      { src: CLIENT, dst: VIP, dport: SPORT, seq: 1003, ack: 0, flags: TCP_RST }, // our stack: the client's next byte
      { src: VIP, dst: CLIENT, dport: 40001, seq: 9000, ack: 0, flags: TCP_RST },
      { src: VIP, dst: CLIENT, dport: 40001, seq: 9000, ack: 1003, flags: TCP_ACK_FLAG },
    ]);
    // The bare ACK again, for after our sockets are aborted by address.
    expect(r.prods).toEqual([r.packets[2]]);
    expect(d.trackedConnections).toBe(1);
    expect(d.resets([{ client: CLIENT, clientPort: 40001, servicePort: SPORT }]).closed).toBe(0);
  });
});
