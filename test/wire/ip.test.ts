/** TCP over either family (bridge/wire/ip.ts) and the cores' address type (net/addr.ts IpAddr). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ip4Of,
  ip6Addr,
  ipAddr,
  ipAddrBytes,
  ipAddrToString,
  ipv4ToString,
  ipv6ToString,
  isIp6,
  parseIpAddr,
  type IpAddr,
} from '../../net/addr.js';
import { WireError } from '../../bridge/wire/error.js';
import { buildIpTcp, ipVersion, parseIpTcp, trimPayloadFront } from '../../bridge/wire/ip.js';
import { IP6_HEADER_LEN, IP6_PAYLOAD_LEN } from '../../bridge/wire/ipv6.js';
import { Ipv4Packet } from '../../bridge/wire/ipv4.js';
import { parseTcpRepr } from '../../bridge/wire/tcp.js';
import { tcpRepr, u32 } from './arbitraries.js';
import { addr16, naiveSum6 } from './pseudo6.js';
import { expectError } from './expect-error.js';

/** A pair of addresses of one family, IPv4 or IPv6. */
const addrPair: fc.Arbitrary<[IpAddr, IpAddr]> = fc.oneof(
  fc.tuple(u32, u32),
  fc.tuple(
    addr16.map((b) => ip6Addr(b)),
    addr16.map((b) => ip6Addr(b)),
  ),
);

describe('IpAddr: an IPv4 address as its number, an IPv6 one as its hex', () => {
  it('text of either family parses to its bytes and prints back the same', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          u32,
          addr16.map((b) => ip6Addr(b)),
        ),
        (a) => {
          const text = ipAddrToString(a);
          expect(text).toBe(isIp6(a) ? ipv6ToString(ipAddrBytes(a)) : ipv4ToString(a));
          expect(parseIpAddr(text)).toBe(a);
          expect(ipAddrBytes(a).length).toBe(isIp6(a) ? 16 : 4);
        },
      ),
    );
    expect(ipAddr('192.0.2.1')).toBe(0xc0000201);
    expect(ipAddr('2001:DB8::1')).toBe('20010db8000000000000000000000001');
    expect(ipAddr('::ffff:192.0.2.1')).toBe('00000000000000000000ffffc0000201'); // a mapped address stays IPv6
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '2001:db8::1::2', 'fe80::1%eth0', 'host'])
      expect(parseIpAddr(bad), bad).toBeNull();
    expect(() => ipAddr('x')).toThrow(TypeError);
    // Never read past a view, even where its memory goes on (a slice of a larger buffer).
    const big = Buffer.alloc(64, 0xab);
    expect(() => ip6Addr(big.subarray(0, 20), 8)).toThrow(RangeError);
    expect(ip6Addr(big.subarray(0, 20), 4)).toBe('ab'.repeat(16));
  });

  it('a path that carries IPv4 only refuses an IPv6 address by name', () => {
    expect(ip4Of(0x0a000001)).toBe(0x0a000001);
    expect(() => ip4Of(ipAddr('2001:db8::1'))).toThrow(/IPv6 address on an IPv4-only path: 2001:db8::1/);
  });
});

describe('TCP over either family', () => {
  it('builds a packet between two addresses of one family that parses back to the same segment, checksums whole', () => {
    fc.assert(
      fc.property(tcpRepr, addrPair, (repr, [src, dst]) => {
        const pkt = buildIpTcp({ src, dst }, repr);
        expect(ipVersion(pkt)).toBe(isIp6(src) ? 6 : 4);
        const p = parseIpTcp(pkt);
        if (p instanceof WireError) throw p;
        expect([p.tcp.src, p.tcp.dst]).toEqual([src, dst]);
        expect(p.tcp.checksumValid()).toBe(true);
        if (p.ip instanceof Ipv4Packet) expect(p.ip.checksumValid()).toBe(true);
        else expect(naiveSum6(pkt, IP6_HEADER_LEN, 6)).toBe(0); // the pseudo header laid out by hand
        expect(parseTcpRepr(p.tcp)).toEqual(repr);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses addresses of two families, and a packet of neither version', () => {
    const repr = { srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 0x10, window: 0, urgent: 0, options: [] };
    expect(() => buildIpTcp({ src: 1, dst: ipAddr('::1') }, { ...repr, payload: Buffer.alloc(0) })).toThrow(TypeError);
    const pkt = buildIpTcp({ src: 1, dst: 2 }, { ...repr, payload: Buffer.alloc(0) });
    pkt[0] = 0x55;
    expectError(parseIpTcp(pkt), 'bad-version');
    expectError(parseIpTcp(Buffer.alloc(0)), 'bad-version');
  });

  it('trimPayloadFront keeps the length fields and checksums of either family right, for any cut', () => {
    fc.assert(
      fc.property(tcpRepr, addrPair, fc.nat(), fc.nat({ max: 8 }), (repr, [src, dst], k, pad) => {
        fc.pre(repr.payload.length > 0);
        const n = 1 + (k % repr.payload.length);
        // Trailing bytes past the IP length (padding) are not carried over.
        const pkt = Buffer.concat([buildIpTcp({ src, dst }, repr), Buffer.alloc(pad, 0xee)]);
        const before = parseIpTcp(pkt);
        if (before instanceof WireError) throw before;
        const { pkt: out, seg } = trimPayloadFront(pkt, before.tcp, n);
        const after = parseIpTcp(out);
        if (after instanceof WireError) throw after;
        expect(out.length).toBe(pkt.length - pad - n);
        if (after.ip instanceof Ipv4Packet) expect(after.ip.checksumValid()).toBe(true);
        else expect(out.readUInt16BE(IP6_PAYLOAD_LEN)).toBe(out.length - IP6_HEADER_LEN);
        expect([seg.off, seg.len, seg.seq, seg.src, seg.dst]).toEqual([
          after.tcp.off,
          after.tcp.len,
          after.tcp.seq,
          src,
          dst,
        ]);
        seg.fillChecksum();
        expect(after.tcp.checksumValid()).toBe(true); // the returned segment's sum is the copy's
        const r = parseTcpRepr(after.tcp);
        if (r instanceof WireError) throw r;
        expect(r).toEqual({ ...repr, seq: (repr.seq + n) >>> 0, payload: repr.payload.subarray(n) });
      }),
      { numRuns: 500 },
    );
  });
});
