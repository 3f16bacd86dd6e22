/** IPv6 on the wire: addresses, the header and its extension headers, TCP over it (bridge/wire/ipv6.ts, net/addr.ts). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectError } from './expect-error.js';
import { ipv6, ipv6ToString, parseIpv6 } from '../../net/addr.js';
import { WireError } from '../../bridge/wire/error.js';
import {
  buildIpv6Tcp,
  IP6_HEADER_LEN,
  IP6_NEXT_HEADER,
  IP6_PAYLOAD_LEN,
  IP6_SRC,
  Ipv6Packet,
  NH_AH,
  NH_DEST_OPTS,
  NH_ESP,
  NH_FRAGMENT,
  NH_HOP_BY_HOP,
  NH_NONE,
  NH_ROUTING,
  NH_TCP,
  parseIpv6Repr,
  parseIpv6Tcp,
} from '../../bridge/wire/ipv6.js';
import { parseTcpRepr, TCP_ACK_FLAG, TCP_SYN, type TcpRepr } from '../../bridge/wire/tcp.js';
import { tcpRepr, u8 } from './arbitraries.js';
import { addr16, naiveSum6 } from './pseudo6.js';

/** Addresses with long zero runs too, where the text form compresses. */
const sparse16 = fc
  .array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
  .map((g) => {
    const b = Buffer.alloc(16);
    g.forEach((x, i) => b.writeUInt16BE(x, 2 * i));
    return b;
  });

describe('IPv6 addresses', () => {
  it('text is RFC 5952 (as the WHATWG URL parser writes it) and parses back to the same 16 bytes', () => {
    fc.assert(
      fc.property(fc.oneof(addr16, sparse16), (b) => {
        const text = ipv6ToString(b);
        expect(`[${text}]`).toBe(new URL(`http://[${text}]/`).hostname);
        expect(parseIpv6(text)).toEqual(b);
        // Every group written out in full, upper case: the same address.
        const full = Array.from({ length: 8 }, (_, i) =>
          b
            .readUInt16BE(2 * i)
            .toString(16)
            .padStart(4, '0'),
        ).join(':');
        expect(parseIpv6(full.toUpperCase())).toEqual(b);
      }),
    );
  });

  it('an IPv4 tail, and what is no address', () => {
    expect(ipv6ToString(ipv6('::ffff:192.0.2.1'))).toBe('::ffff:c000:201');
    expect(ipv6ToString(ipv6('2001:db8::1'))).toBe('2001:db8::1');
    expect(ipv6ToString(ipv6('::'))).toBe('::');
    expect(ipv6ToString(ipv6('2001:db8:0:0:1:0:0:1'))).toBe('2001:db8::1:0:0:1');
    for (const bad of [
      '',
      ':',
      ':::',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '1::2::3',
      '12345::',
      'g::1',
      '1.2.3.4::',
      '::1.2.3',
      '::256.0.0.1',
      ':1:2:3:4:5:6:7',
      'fe80::1%eth0',
      '1:2:3:4:5:6:7:8::',
    ])
      expect(parseIpv6(bad), bad).toBeNull();
  });
});

/** Extension headers that pass: hop-by-hop first, destination options, a routing header with no segments left. */
const ext = (type: number, units: number, fill = 0, segmentsLeft = 0) => {
  const bytes = Buffer.alloc(8 * (units + 1), fill);
  bytes[1] = units;
  if (type === NH_ROUTING) bytes[3] = segmentsLeft;
  return { type, bytes };
};
const passing = fc
  .tuple(
    fc.boolean(),
    fc.array(
      fc.oneof(
        fc.tuple(fc.constant(NH_DEST_OPTS), fc.integer({ min: 0, max: 3 })),
        fc.tuple(fc.constant(NH_ROUTING), fc.integer({ min: 0, max: 3 })),
      ),
      { maxLength: 6 },
    ),
    u8,
  )
  .map(([hbh, rest, fill]) => [
    ...(hbh ? [ext(NH_HOP_BY_HOP, 0, fill)] : []),
    ...rest.map(([t, u]) => ext(t, u, fill)),
  ]);

describe('IPv6 + TCP', () => {
  it('parse(build(x)) == x for random headers, extension headers that pass, options and payloads; the checksum covers the pseudo header', () => {
    fc.assert(
      fc.property(
        tcpRepr,
        addr16,
        addr16,
        u8,
        u8,
        fc.integer({ min: 0, max: 0xfffff }),
        passing,
        (repr, src, dst, hop, tc, flow, exts) => {
          const pkt = buildIpv6Tcp(
            { src, dst, hopLimit: hop, trafficClass: tc, flowLabel: flow, extensions: exts },
            repr,
          );
          const p = parseIpv6Tcp(pkt);
          if (p instanceof WireError) throw p;
          expect(parseIpv6Repr(p.ip)).toEqual({
            trafficClass: tc,
            flowLabel: flow,
            nextHeader: exts[0]?.type ?? NH_TCP,
            hopLimit: hop,
            src,
            dst,
            payloadLength: pkt.length - IP6_HEADER_LEN,
          });
          expect(p.ip.extensionHeaders).toBe(exts.length);
          expect(p.ip.payloadOffset).toBe(IP6_HEADER_LEN + exts.reduce((n, e) => n + e.bytes.length, 0));
          expect(p.tcp.checksumValid()).toBe(true);
          expect(naiveSum6(pkt, p.ip.payloadOffset, NH_TCP)).toBe(0);
          const back = parseTcpRepr(p.tcp);
          if (back instanceof WireError) throw back;
          expect(back).toEqual(repr);
          // The pseudo header covers the addresses: a changed one fails the checksum.
          pkt.writeUInt8(pkt.readUInt8(IP6_SRC + 15) ^ 1, IP6_SRC + 15);
          const changed = parseIpv6Tcp(pkt);
          if (changed instanceof WireError) throw changed;
          expect(changed.tcp.checksumValid()).toBe(false);
        },
      ),
    );
  });

  const seg: TcpRepr = {
    srcPort: 40000,
    dstPort: 7000,
    seq: 1,
    ack: 2,
    flags: TCP_ACK_FLAG,
    window: 100,
    urgent: 0,
    options: [],
    payload: Buffer.from('hello'),
  };
  const A = ipv6('2001:db8::10');
  const B = ipv6('2001:db8::1');

  it('refuses, each with its reason: a fragment, AH, ESP, a routing header with segments left, hop-by-hop not first, too many headers', () => {
    const cases: Array<[Array<{ type: number; bytes: Buffer }>, string]> = [
      [[ext(NH_FRAGMENT, 0)], 'fragment'],
      [[ext(NH_DEST_OPTS, 0), ext(NH_AH, 1)], 'ext-header'],
      [[ext(NH_ESP, 1)], 'ext-header'],
      [[ext(NH_ROUTING, 2, 0, 1)], 'ext-header'],
      [[ext(NH_DEST_OPTS, 0), ext(NH_HOP_BY_HOP, 0)], 'ext-header'],
      [Array.from({ length: 9 }, () => ext(NH_DEST_OPTS, 0)), 'ext-header'],
    ];
    for (const [exts, code] of cases)
      expectError(parseIpv6Tcp(buildIpv6Tcp({ src: A, dst: B, extensions: exts }, seg)), code);
    // Eight pass.
    const eight = parseIpv6Tcp(
      buildIpv6Tcp({ src: A, dst: B, extensions: Array.from({ length: 8 }, () => ext(NH_DEST_OPTS, 0)) }, seg),
    );
    expect(eight).not.toBeInstanceOf(WireError);
  });

  it('malformed input yields typed errors: truncated, not version 6, payload length 0 or past the buffer, an extension header past the payload, no TCP', () => {
    const good = () => buildIpv6Tcp({ src: A, dst: B }, { ...seg, flags: TCP_SYN });
    expectError(Ipv6Packet.parse(good().subarray(0, 39)), 'truncated');
    const v4 = good();
    v4[0] = 0x45;
    expectError(Ipv6Packet.parse(v4), 'bad-version');
    const jumbo = good();
    jumbo.writeUInt16BE(0, IP6_PAYLOAD_LEN);
    expectError(Ipv6Packet.parse(jumbo), 'bad-total-length');
    const long = good();
    long.writeUInt16BE(long.length, IP6_PAYLOAD_LEN);
    expectError(Ipv6Packet.parse(long), 'bad-total-length');
    const cut = buildIpv6Tcp({ src: A, dst: B, extensions: [ext(NH_DEST_OPTS, 3)] }, seg);
    cut.writeUInt16BE(16, IP6_PAYLOAD_LEN);
    expectError(Ipv6Packet.parse(cut), 'truncated');
    const none = good();
    none[IP6_NEXT_HEADER] = NH_NONE;
    expectError(parseIpv6Tcp(none), 'not-tcp');
    const udp = good();
    udp[IP6_NEXT_HEADER] = 17;
    expectError(parseIpv6Tcp(udp), 'not-tcp');
    // Trailing bytes (Ethernet padding) are no error.
    const padded = Buffer.concat([good(), Buffer.alloc(6)]);
    expect(parseIpv6Tcp(padded)).not.toBeInstanceOf(WireError);
  });
});
