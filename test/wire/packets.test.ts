import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectError } from './expect-error.js';
import { ipv4, ipv4ToString, mac, macToString, parseIpv4 } from '../../net/addr.js';
import { ArpPacket, ARP_REQUEST, gratuitousArpFrame } from '../../bridge/wire/arp.js';
import { WireError } from '../../bridge/wire/error.js';
import { EthernetFrame, ETHERTYPE_ARP, ETH_HEADER_LEN } from '../../bridge/wire/ethernet.js';
import {
  emitIpv4Header,
  Ipv4Packet,
  parseIpv4Repr,
  IP_FLAGS_FRAG,
  IP_FLAG_MF,
  IP_TOTAL_LEN,
  IP_VER_IHL,
} from '../../bridge/wire/ipv4.js';
import type { TcpSegment } from '../../bridge/wire/tcp.js';
import {
  buildIpv4Tcp,
  parseIpv4Tcp,
  parseTcpRepr,
  TCP_ACK_FLAG,
  TCP_DATA_OFF,
  TCP_FIN,
  TCP_SYN,
} from '../../bridge/wire/tcp.js';
import { trimPayloadFront } from '../../bridge/wire/ip.js';
import { tcpRepr, u16, u32, u8 } from './arbitraries.js';

const A = ipv4('192.0.2.10');
const B = ipv4('192.0.2.1');

describe('addresses', () => {
  it('round-trips IPv4 and rejects malformed text', () => {
    fc.assert(
      fc.property(u32, (a) => {
        expect(parseIpv4(ipv4ToString(a))).toBe(a);
      }),
    );
    for (const bad of ['256.0.0.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', 'a.b.c.d', '', ' 1.2.3.4']) {
      expect(parseIpv4(bad)).toBeNull();
    }
    expect(macToString(mac('02:00:5e:10:00:ff'))).toBe('02:00:5e:10:00:ff');
  });
});

describe('IPv4 + TCP', () => {
  it('parse(emit(x)) == x for random headers, option sets and payloads', () => {
    fc.assert(
      fc.property(tcpRepr, u32, u32, u8, u16, fc.boolean(), (repr, src, dst, ttl, id, df) => {
        const pkt = buildIpv4Tcp({ src, dst, ttl, id, dontFragment: df, tos: 0 }, repr);
        const parsed = parseIpv4Tcp(pkt);
        if (parsed instanceof WireError) throw parsed;
        expect(parsed.ip.checksumValid()).toBe(true);
        expect(parsed.tcp.checksumValid()).toBe(true);
        expect(parseIpv4Repr(parsed.ip)).toEqual({
          tos: 0,
          id,
          dontFragment: df,
          ttl,
          protocol: 6,
          src,
          dst,
          payloadLength: pkt.length - 20,
        });
        expect(parseTcpRepr(parsed.tcp)).toEqual(repr);
      }),
      { numRuns: 500 },
    );
  });

  it('trimPayloadFront: the same packet without its first n payload bytes, for any header and cut', () => {
    fc.assert(
      fc.property(tcpRepr, u32, u32, fc.nat(), fc.nat({ max: 8 }), (repr, src, dst, k, pad) => {
        fc.pre(repr.payload.length > 0);
        const n = 1 + (k % repr.payload.length);
        // Trailing bytes past the IP total length (padding) are not carried over.
        const pkt = Buffer.concat([buildIpv4Tcp({ src, dst }, repr), Buffer.alloc(pad, 0xee)]);
        const before = parseIpv4Tcp(pkt) as { tcp: TcpSegment };
        const { pkt: out, seg } = trimPayloadFront(pkt, before.tcp, n);
        const after = parseIpv4Tcp(out);
        if (after instanceof WireError) throw after;
        // The segment it returns is the copy's, parsed.
        expect([seg.buf, seg.off, seg.len, seg.seq, seg.payloadLength]).toEqual([
          out,
          after.tcp.off,
          after.tcp.len,
          after.tcp.seq,
          after.tcp.payloadLength,
        ]);
        expect(out.length).toBe(pkt.length - pad - n);
        expect(after.ip.checksumValid()).toBe(true);
        after.tcp.fillChecksum();
        const r = parseTcpRepr(after.tcp);
        if (r instanceof WireError) throw r;
        expect(r).toEqual({ ...repr, seq: (repr.seq + n) >>> 0, payload: repr.payload.subarray(n) });
      }),
      { numRuns: 500 },
    );
    const one = buildIpv4Tcp(
      { src: A, dst: B },
      {
        srcPort: 1,
        dstPort: 2,
        seq: 1,
        ack: 2,
        flags: TCP_ACK_FLAG,
        window: 3,
        urgent: 0,
        options: [],
        payload: Buffer.from('ab'),
      },
    );
    const seg = (parseIpv4Tcp(one) as { tcp: TcpSegment }).tcp;
    expect(() => trimPayloadFront(one, seg, 3)).toThrow(RangeError);
    expect(() => trimPayloadFront(one, seg, 0)).toThrow(RangeError);
  });

  it('computes sequence length with SYN and FIN', () => {
    const base = { srcPort: 1, dstPort: 2, seq: 0, ack: 0, window: 0, urgent: 0, options: [] };
    const seg = (flags: number, n: number) =>
      (
        parseIpv4Tcp(buildIpv4Tcp({ src: A, dst: B }, { ...base, flags, payload: Buffer.alloc(n) })) as {
          tcp: TcpSegment;
        }
      ).tcp;
    expect(seg(TCP_SYN, 0).seqLength).toBe(1);
    expect(seg(TCP_FIN | TCP_ACK_FLAG, 10).seqLength).toBe(11);
    expect(seg(TCP_ACK_FLAG, 10).seqLength).toBe(10);
    expect(seg(TCP_SYN, 0).has(TCP_SYN)).toBe(true);
  });

  it('allows Ethernet padding after the IP total length', () => {
    const pkt = buildIpv4Tcp(
      { src: A, dst: B },
      {
        srcPort: 1,
        dstPort: 2,
        seq: 1,
        ack: 2,
        flags: TCP_ACK_FLAG,
        window: 3,
        urgent: 0,
        options: [],
        payload: Buffer.alloc(0),
      },
    );
    const padded = Buffer.concat([pkt, Buffer.alloc(6)]);
    const r = parseIpv4Tcp(padded);
    if (r instanceof WireError) throw r;
    expect(r.tcp.payloadLength).toBe(0);
    expect(r.tcp.checksumValid()).toBe(true);
  });

  describe('malformed input yields typed errors', () => {
    const good = () =>
      buildIpv4Tcp(
        { src: A, dst: B },
        {
          srcPort: 1,
          dstPort: 2,
          seq: 1,
          ack: 2,
          flags: TCP_ACK_FLAG,
          window: 3,
          urgent: 0,
          options: [{ kind: 'mss', mss: 1460 }],
          payload: Buffer.from('hello'),
        },
      );
    it('truncated IPv4 header', () => expectError(Ipv4Packet.parse(good().subarray(0, 19)), 'truncated'));
    it('IHL < 5', () => {
      const p = good();
      p[IP_VER_IHL] = 0x44;
      expectError(Ipv4Packet.parse(p), 'bad-header-length');
    });
    it('version 6', () => {
      const p = good();
      p[IP_VER_IHL] = 0x65;
      expectError(Ipv4Packet.parse(p), 'bad-version');
    });
    it('total length past the buffer', () => {
      const p = good();
      p.writeUInt16BE(p.length + 1, IP_TOTAL_LEN);
      expectError(Ipv4Packet.parse(p), 'bad-total-length');
    });
    it('total length below the header length', () => {
      const p = good();
      p.writeUInt16BE(19, IP_TOTAL_LEN);
      expectError(Ipv4Packet.parse(p), 'bad-total-length');
    });
    it('IHL past the total length', () => {
      const p = good();
      p[IP_VER_IHL] = 0x4f;
      p.writeUInt16BE(40, IP_TOTAL_LEN);
      expectError(Ipv4Packet.parse(p), 'bad-total-length');
    });
    it('fragments (MF or offset)', () => {
      const p = good();
      p.writeUInt16BE(IP_FLAG_MF, IP_FLAGS_FRAG);
      expectError(Ipv4Packet.parse(p), 'fragment');
      p.writeUInt16BE(7, IP_FLAGS_FRAG);
      expectError(Ipv4Packet.parse(p), 'fragment');
    });
    it('not TCP', () => {
      const p = Buffer.alloc(28);
      emitIpv4Header({ tos: 0, id: 0, dontFragment: true, ttl: 1, protocol: 17, src: A, dst: B, payloadLength: 8 }, p);
      expectError(parseIpv4Tcp(p), 'not-tcp');
    });
    it('TCP shorter than 20 bytes', () => {
      const p = good().subarray(0, 30);
      p.writeUInt16BE(30, IP_TOTAL_LEN);
      expectError(parseIpv4Tcp(p), 'truncated');
    });
    it('TCP data offset < 5', () => {
      const p = good();
      p[20 + TCP_DATA_OFF] = 0x40;
      expectError(parseIpv4Tcp(p), 'bad-header-length');
    });
    it('TCP data offset past the segment', () => {
      const p = good();
      p[20 + TCP_DATA_OFF] = 0xf0;
      expectError(parseIpv4Tcp(p), 'bad-header-length');
    });
    it('TCP option running past the header', () => {
      const p = good();
      p[20 + 20 + 1] = 9; // MSS option claims 9 bytes in a 4-byte option area
      const r = parseIpv4Tcp(p);
      if (r instanceof WireError) throw r;
      expectError(r.tcp.options(), 'bad-option');
    });
    it('TCP option of length 0 or 1', () => {
      for (const len of [0, 1]) {
        const p = good();
        p[20 + 20 + 1] = len;
        const r = parseIpv4Tcp(p) as { tcp: TcpSegment };
        expectError(r.tcp.options(), 'bad-option');
      }
    });
  });

  it('never throws on random or truncated buffers (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (arr) => {
        const b = Buffer.from(arr);
        for (const f of [
          () => Ipv4Packet.parse(b),
          () => parseIpv4Tcp(b),
          () => EthernetFrame.parse(b),
          () => ArpPacket.parse(b),
        ]) {
          const r = f();
          expect(r instanceof WireError || typeof r === 'object').toBe(true);
        }
        const r = parseIpv4Tcp(b);
        if (!(r instanceof WireError)) {
          // Everything the views expose stays inside the buffer.
          r.tcp.options();
          expect(r.tcp.payloadOffset + r.tcp.payloadLength).toBeLessThanOrEqual(b.length);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('never throws on mutated and truncated valid packets (fuzz)', () => {
    fc.assert(
      fc.property(tcpRepr, fc.array(fc.tuple(fc.nat(), u8), { maxLength: 6 }), fc.nat(), (repr, flips, cut) => {
        const pkt = buildIpv4Tcp({ src: A, dst: B }, repr);
        for (const [pos, v] of flips) pkt[pos % pkt.length] = v;
        const b = pkt.subarray(0, cut % (pkt.length + 1));
        const r = parseIpv4Tcp(b);
        if (r instanceof WireError) return;
        const o = r.tcp.options();
        expect(o instanceof WireError || Array.isArray(o)).toBe(true);
        expect(r.tcp.payloadOffset + r.tcp.payloadLength).toBeLessThanOrEqual(b.length);
        r.tcp.timestampOffset();
        r.tcp.checksumValid();
      }),
      { numRuns: 3000 },
    );
  });
});

describe('Ethernet and ARP', () => {
  it('builds a gratuitous ARP that parses back', () => {
    const m = mac('02:00:00:00:00:01');
    const frame = gratuitousArpFrame(m, ipv4('192.0.2.100'));
    const eth = EthernetFrame.parse(frame);
    if (eth instanceof WireError) throw eth;
    expect(eth.dstString).toBe('ff:ff:ff:ff:ff:ff');
    expect(eth.srcString).toBe('02:00:00:00:00:01');
    expect(eth.etherType).toBe(ETHERTYPE_ARP);
    const arp = ArpPacket.parse(frame, ETH_HEADER_LEN);
    if (arp instanceof WireError) throw arp;
    expect(arp.oper).toBe(ARP_REQUEST);
    expect(arp.senderIp).toBe(ipv4('192.0.2.100'));
    expect(arp.targetIp).toBe(ipv4('192.0.2.100'));
    expect(arp.senderMac).toBe('02:00:00:00:00:01');
  });

  it('rejects truncated frames and non-Ethernet/IPv4 ARP', () => {
    expectError(EthernetFrame.parse(Buffer.alloc(13)), 'truncated');
    expectError(ArpPacket.parse(Buffer.alloc(27)), 'truncated');
    expectError(ArpPacket.parse(Buffer.alloc(28)), 'bad-arp');
  });
});
