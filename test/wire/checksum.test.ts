import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addressSum4, checksum, fold, sumBytes, update16 } from '../../bridge/wire/checksum.js';
import { Ipv4Packet } from '../../bridge/wire/ipv4.js';
import { buildIpv4Tcp, TcpSegment } from '../../bridge/wire/tcp.js';
import { ip4Of, ipv4 } from '../../net/addr.js';
import { tcpRepr, u16, u32 } from './arbitraries.js';

describe('internet checksum', () => {
  it('matches the RFC 1071 §3 worked example', () => {
    const data = Buffer.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
    expect(fold(sumBytes(data, 0, data.length))).toBe(0xddf2);
    expect(checksum(data, 0, data.length)).toBe(0x220d);
  });

  it('pads an odd trailing byte with zero', () => {
    expect(checksum(Buffer.from([0xab]), 0, 1)).toBe(checksum(Buffer.from([0xab, 0x00]), 0, 2));
  });

  it('verifies to zero once the checksum is stored in the data', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 2, maxLength: 200 }), (arr) => {
        const b = Buffer.from(arr.length % 2 ? [...arr, 0] : arr);
        b.writeUInt16BE(0, 0);
        b.writeUInt16BE(checksum(b, 0, b.length), 0);
        expect(checksum(b, 0, b.length)).toBe(0);
      }),
    );
  });

  it('update16 (RFC 1624) equals a full recomputation for random rewrites', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 6, maxLength: 64 }), fc.nat(), u16, (arr, pos, word) => {
        const b = Buffer.from(arr.length % 2 ? [...arr, 1] : arr);
        // Word 0 holds the checksum; word 1 stays non-zero, as the TCP pseudo
        // header (protocol 6) always is: RFC 1624's one corner (an all-zero
        // sum, +0 vs −0) cannot arise for real headers.
        b.writeUInt16BE(0, 0);
        b.writeUInt16BE(6, 2);
        const at = 4 + 2 * (pos % ((b.length - 4) / 2));
        const before = checksum(b, 0, b.length);
        const old = b.readUInt16BE(at);
        b.writeUInt16BE(word, at);
        expect(update16(before, old, word)).toBe(checksum(b, 0, b.length));
      }),
    );
  });

  it('update32 equals a full recomputation on TCP segments whose seq, ack and addresses change', () => {
    fc.assert(
      fc.property(tcpRepr, u32, u32, u32, u32, (repr, src, dst, newSeq, newAddr) => {
        const pkt = buildIpv4Tcp({ src: src || 1, dst: dst || 1 }, repr);
        const ip = Ipv4Packet.parse(pkt) as Ipv4Packet;
        const seg = TcpSegment.fromIpv4(ip) as TcpSegment;
        seg.setSeq(newSeq);
        seg.setAck(newSeq ^ 0x5a5a5a5a);
        seg.setWindow(newSeq & 0xffff);
        expect(seg.checksumValid()).toBe(true);
        // Address rewrite: IP header incrementally, TCP pseudo header incrementally.
        const oldDst = ip.dst;
        ip.setDst(newAddr);
        const moved = TcpSegment.fromIpv4(ip) as TcpSegment;
        moved.pseudoAddressChanged(oldDst, newAddr);
        expect(ip.checksumValid()).toBe(true);
        expect(moved.checksumValid()).toBe(true);
        const incremental = moved.checksum;
        moved.fillChecksum();
        expect(incremental).toBe(moved.checksum);
      }),
      { numRuns: 300 },
    );
  });
});

describe('the checksum value written is the one a full computation gives', () => {
  /** A segment whose complete TCP checksum is 0x0000 (its other form, 0xffff, is the one a strict checker refuses). */
  function zeroSumSegment(seq: number, ack: number): { pkt: Buffer; seg: TcpSegment } {
    const pkt = buildIpv4Tcp(
      { src: ipv4('192.0.2.100'), dst: ipv4('192.0.2.10') },
      {
        srcPort: 7000,
        dstPort: 40000,
        seq,
        ack,
        flags: 0x10,
        window: 500,
        urgent: 0,
        options: [],
        payload: Buffer.alloc(2),
      },
    );
    const seg = TcpSegment.fromIpv4(Ipv4Packet.parse(pkt) as Ipv4Packet) as TcpSegment;
    // Choose the last payload word so that the sum of everything folds to 0xffff.
    pkt.writeUInt16BE(0, seg.off + 16);
    const s = fold(sumBytes(pkt, seg.off, seg.len, addressSum4(ip4Of(seg.src), ip4Of(seg.dst)) + 6 + seg.len));
    pkt.writeUInt16BE((0xffff - s) & 0xffff || 0xffff, pkt.length - 2);
    seg.fillChecksum();
    return { pkt, seg };
  }

  it('fillChecksum writes 0x0000, never 0xffff, for a segment that sums to zero', () => {
    fc.assert(
      fc.property(u32, u32, (seq, ack) => {
        const { seg } = zeroSumSegment(seq, ack);
        expect(seg.checksum).toBe(0);
        expect(seg.checksumValid()).toBe(true);
      }),
    );
  });

  it('every incremental rewrite leaves the same value as filling the sum anew', () => {
    fc.assert(
      fc.property(u32, u32, u32, u16, (seq, ack, v, w) => {
        const { pkt, seg } = zeroSumSegment(seq, ack);
        seg.setAck(v);
        seg.setWindow(w);
        const incremental = seg.checksum;
        const copy = Buffer.from(pkt);
        const again = TcpSegment.fromIpv4(Ipv4Packet.parse(copy) as Ipv4Packet) as TcpSegment;
        again.fillChecksum();
        expect(incremental).toBe(again.checksum);
      }),
      { numRuns: 2000 },
    );
  });
});
