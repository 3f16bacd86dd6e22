/**
 * IPv6 header (RFC 8200): a view over a Buffer, field offsets named once here,
 * and the walk over the extension headers to the transport header. There is no
 * header checksum; TCP's covers the pseudo header (checksum.ts addressSum6).
 *
 * What passes to TCP: hop-by-hop options (first only), destination options, and
 * a routing header with no segments left (the packet is at its final
 * destination). Refused, each with its reason: a fragment (the bridge never
 * reassembles), AH and ESP (nothing under them can be read or rewritten), a
 * routing header with segments left, a chain longer than EXT_MAX, and any
 * other next header.
 */
import { ip6Addr, ipv6ToString } from '../../net/addr.js';
import { addressSum6 } from './checksum.js';
import { WireError } from './error.js';
import { emitTcpSummed, tcpHeaderLength, TcpSegment, type TcpRepr } from './tcp.js';

export const IP6_VER_TC_FL = 0; // 4: version (4 bits), traffic class (8), flow label (20)
export const IP6_PAYLOAD_LEN = 4; // 2: bytes after this header, extension headers included
export const IP6_NEXT_HEADER = 6; // 1
export const IP6_HOP_LIMIT = 7; // 1
export const IP6_SRC = 8; // 16
export const IP6_DST = 24; // 16
export const IP6_HEADER_LEN = 40;
export const IP6_ADDR_LEN = 16;

/** Next-header values (IANA protocol numbers) the walk knows. */
export const NH_HOP_BY_HOP = 0;
export const NH_TCP = 6;
export const NH_ROUTING = 43;
export const NH_FRAGMENT = 44;
export const NH_ESP = 50;
export const NH_AH = 51;
export const NH_NONE = 59;
export const NH_DEST_OPTS = 60;

/** The most extension headers walked before the transport header. */
export const EXT_MAX = 8;

// Generic extension header: next header (1), length in 8-octet units not counting the first 8 (1).
const EXT_NEXT = 0;
const EXT_LEN = 1;
// Routing header: routing type (1), segments left (1) after the two above.
const RH_SEGMENTS_LEFT = 3;

export class Ipv6Packet {
  private constructor(
    readonly buf: Buffer,
    readonly off: number,
    /** Offset of the transport header in `buf`, past every extension header. */
    readonly payloadOffset: number,
    /** The transport protocol (the last next header). */
    readonly protocol: number,
    /** How many extension headers came before it. */
    readonly extensionHeaders: number,
  ) {}

  /**
   * Validates an IPv6 header at `off` within `len` bytes of `buf` and walks its
   * extension headers: version 6, a payload length (not 0: no jumbograms) within
   * the buffer, every extension header whole and one that may pass. Trailing
   * bytes past the payload (Ethernet padding) are allowed and ignored.
   */
  static parse(buf: Buffer, off = 0, len = buf.length - off): Ipv6Packet | WireError {
    if (off < 0 || len < IP6_HEADER_LEN || off + len > buf.length) {
      return new WireError('ipv6', 'truncated', `${len} bytes, need ${IP6_HEADER_LEN}`);
    }
    const version = buf[off + IP6_VER_TC_FL]! >> 4;
    if (version !== 6) return new WireError('ipv6', 'bad-version', `version ${version}`);
    const payload = buf.readUInt16BE(off + IP6_PAYLOAD_LEN);
    if (payload === 0) return new WireError('ipv6', 'bad-total-length', 'payload length 0 (a jumbogram)');
    if (IP6_HEADER_LEN + payload > len) {
      return new WireError('ipv6', 'bad-total-length', `payload length ${payload} > ${len - IP6_HEADER_LEN} bytes`);
    }
    const end = off + IP6_HEADER_LEN + payload;
    let nh = buf[off + IP6_NEXT_HEADER]!;
    let at = off + IP6_HEADER_LEN;
    for (let n = 0; ; n++) {
      switch (nh) {
        case NH_HOP_BY_HOP:
          if (n > 0) return new WireError('ipv6', 'ext-header', 'hop-by-hop options not first');
          break;
        case NH_DEST_OPTS:
          break;
        case NH_ROUTING:
          if (at + 4 > end) return new WireError('ipv6', 'truncated', 'routing header');
          if (buf[at + RH_SEGMENTS_LEFT] !== 0) {
            return new WireError(
              'ipv6',
              'ext-header',
              `routing header with ${buf[at + RH_SEGMENTS_LEFT]} segments left`,
            );
          }
          break;
        case NH_FRAGMENT:
          return new WireError('ipv6', 'fragment', 'fragment header');
        case NH_AH:
        case NH_ESP:
          return new WireError('ipv6', 'ext-header', nh === NH_AH ? 'authentication header' : 'encrypted payload');
        default:
          return new Ipv6Packet(buf, off, at, nh, n);
      }
      if (n + 1 > EXT_MAX) return new WireError('ipv6', 'ext-header', `more than ${EXT_MAX} extension headers`);
      if (at + 8 > end) return new WireError('ipv6', 'truncated', `extension header ${nh}`);
      const hl = (buf[at + EXT_LEN]! + 1) * 8;
      if (at + hl > end) return new WireError('ipv6', 'truncated', `extension header ${nh} of ${hl} bytes`);
      nh = buf[at + EXT_NEXT]!;
      at += hl;
    }
  }

  get version(): number {
    return this.buf[this.off + IP6_VER_TC_FL]! >> 4;
  }
  get trafficClass(): number {
    return (this.buf.readUInt16BE(this.off + IP6_VER_TC_FL) >> 4) & 0xff;
  }
  get ecn(): number {
    return this.trafficClass & 0x03;
  }
  get flowLabel(): number {
    return this.buf.readUInt32BE(this.off + IP6_VER_TC_FL) & 0xfffff;
  }
  /** Bytes after the fixed header, extension headers included. */
  get payloadLength(): number {
    return this.buf.readUInt16BE(this.off + IP6_PAYLOAD_LEN);
  }
  get nextHeader(): number {
    return this.buf[this.off + IP6_NEXT_HEADER]!;
  }
  get hopLimit(): number {
    return this.buf[this.off + IP6_HOP_LIMIT]!;
  }
  /** The source address: a view of its 16 bytes. */
  get src(): Buffer {
    return this.buf.subarray(this.off + IP6_SRC, this.off + IP6_SRC + IP6_ADDR_LEN);
  }
  get dst(): Buffer {
    return this.buf.subarray(this.off + IP6_DST, this.off + IP6_DST + IP6_ADDR_LEN);
  }
  get srcString(): string {
    return ipv6ToString(this.buf, this.off + IP6_SRC);
  }
  get dstString(): string {
    return ipv6ToString(this.buf, this.off + IP6_DST);
  }
  /** Bytes of the transport header and its payload. */
  get transportLength(): number {
    return this.off + IP6_HEADER_LEN + this.payloadLength - this.payloadOffset;
  }

  /** Rewrites the source address (TCP's checksum covers it: the caller adjusts or refills it). */
  setSrc(addr: Uint8Array): void {
    this.buf.set(addr.subarray(0, IP6_ADDR_LEN), this.off + IP6_SRC);
  }
  setDst(addr: Uint8Array): void {
    this.buf.set(addr.subarray(0, IP6_ADDR_LEN), this.off + IP6_DST);
  }
  setHopLimit(v: number): void {
    this.buf[this.off + IP6_HOP_LIMIT] = v;
  }
}

/** The high-level value of an IPv6 header without extension headers. */
export interface Ipv6Repr {
  trafficClass: number;
  flowLabel: number;
  nextHeader: number;
  hopLimit: number;
  src: Uint8Array;
  dst: Uint8Array;
  /** Bytes after the header. */
  payloadLength: number;
}

/** Writes the fixed header at `off`; returns its length. */
export function emitIpv6Header(r: Ipv6Repr, buf: Buffer, off = 0): number {
  buf.writeUInt32BE(((6 << 28) | ((r.trafficClass & 0xff) << 20) | (r.flowLabel & 0xfffff)) >>> 0, off + IP6_VER_TC_FL);
  buf.writeUInt16BE(r.payloadLength, off + IP6_PAYLOAD_LEN);
  buf[off + IP6_NEXT_HEADER] = r.nextHeader;
  buf[off + IP6_HOP_LIMIT] = r.hopLimit;
  buf.set(r.src.subarray(0, IP6_ADDR_LEN), off + IP6_SRC);
  buf.set(r.dst.subarray(0, IP6_ADDR_LEN), off + IP6_DST);
  return IP6_HEADER_LEN;
}

export function parseIpv6Repr(p: Ipv6Packet): Ipv6Repr {
  return {
    trafficClass: p.trafficClass,
    flowLabel: p.flowLabel,
    nextHeader: p.nextHeader,
    hopLimit: p.hopLimit,
    src: Buffer.from(p.src),
    dst: Buffer.from(p.dst),
    payloadLength: p.payloadLength,
  };
}

/** Parses an IPv6 packet, its extension headers and the TCP segment after them. */
export function parseIpv6Tcp(
  buf: Buffer,
  off = 0,
  len = buf.length - off,
): { ip: Ipv6Packet; tcp: TcpSegment } | WireError {
  const ip = Ipv6Packet.parse(buf, off, len);
  if (ip instanceof WireError) return ip;
  if (ip.protocol !== NH_TCP) return new WireError('ipv6', 'not-tcp', `next header ${ip.protocol}`);
  const tcp = TcpSegment.parse(
    buf,
    ip.payloadOffset,
    ip.transportLength,
    ip6Addr(ip.src),
    ip6Addr(ip.dst),
    addressSum6(ip.src, ip.dst),
  );
  if (tcp instanceof WireError) return tcp;
  return { ip, tcp };
}

export interface Ipv6TcpFields {
  src: Uint8Array;
  dst: Uint8Array;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  /** Extension headers before TCP, each its whole bytes with its own next-header byte ignored (set here). */
  extensions?: Array<{ type: number; bytes: Uint8Array }>;
}

/** Builds a complete IPv6 packet carrying `tcp` (after any extension headers), TCP's checksum filled in. */
export function buildIpv6Tcp(ip: Ipv6TcpFields, tcp: TcpRepr): Buffer {
  const ext = ip.extensions ?? [];
  const extLen = ext.reduce((n, e) => n + e.bytes.length, 0);
  const tcpLen = tcpHeaderLength(tcp) + tcp.payload.length;
  const out = Buffer.alloc(IP6_HEADER_LEN + extLen + tcpLen);
  emitIpv6Header(
    {
      trafficClass: ip.trafficClass ?? 0,
      flowLabel: ip.flowLabel ?? 0,
      nextHeader: ext[0]?.type ?? NH_TCP,
      hopLimit: ip.hopLimit ?? 64,
      src: ip.src,
      dst: ip.dst,
      payloadLength: extLen + tcpLen,
    },
    out,
    0,
  );
  let at = IP6_HEADER_LEN;
  ext.forEach((e, i) => {
    out.set(e.bytes, at);
    out[at + EXT_NEXT] = ext[i + 1]?.type ?? NH_TCP;
    at += e.bytes.length;
  });
  emitTcpSummed(tcp, addressSum6(ip.src, ip.dst), out, at);
  return out;
}
