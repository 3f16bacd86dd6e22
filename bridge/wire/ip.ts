/**
 * TCP over either IP family, for the cores that serve both (the merger): parse a packet
 * by its version, build one between two IpAddrs, and cut a payload's front. IPv4's
 * header checksum is kept whole; IPv6 has none.
 */
import { ipAddrBytes, isIp6, type IpAddr } from '../../net/addr.js';
import { WireError } from './error.js';
import { Ipv4Packet, IP_TOTAL_LEN } from './ipv4.js';
import { buildIpv6Tcp, IP6_HEADER_LEN, IP6_PAYLOAD_LEN, parseIpv6Tcp, type Ipv6Packet } from './ipv6.js';
import { buildIpv4Tcp, parseIpv4Tcp, TcpSegment, type TcpRepr } from './tcp.js';

/** A TCP segment and the IP packet around it, of either family. */
export type IpTcp = { ip: Ipv4Packet; tcp: TcpSegment } | { ip: Ipv6Packet; tcp: TcpSegment };

/** The IP version of the packet at `off` (4, 6, or another nibble). */
export function ipVersion(buf: Uint8Array, off = 0): number {
  return buf.length > off ? buf[off]! >> 4 : 0;
}

/** Parses an IPv4 or IPv6 packet, by its version, and the TCP segment in it. */
export function parseIpTcp(buf: Buffer, off = 0, len = buf.length - off): IpTcp | WireError {
  const v = ipVersion(buf, off);
  if (v === 4) return parseIpv4Tcp(buf, off, len);
  if (v === 6) return parseIpv6Tcp(buf, off, len);
  return new WireError('ip', 'bad-version', `version ${v}`);
}

/** Builds a packet from `src` to `dst` (one family) carrying `tcp`, every checksum filled in. */
export function buildIpTcp(ip: { src: IpAddr; dst: IpAddr; ttl?: number }, tcp: TcpRepr): Buffer {
  if (isIp6(ip.src) !== isIp6(ip.dst)) throw new TypeError('a packet between addresses of two families');
  if (!isIp6(ip.src)) return buildIpv4Tcp({ src: ip.src, dst: ip.dst as number, ttl: ip.ttl }, tcp);
  return buildIpv6Tcp({ src: ipAddrBytes(ip.src), dst: ipAddrBytes(ip.dst), hopLimit: ip.ttl }, tcp);
}

/**
 * A copy of the packet `pkt` (whose TCP segment is `seg`) without the first `n` payload
 * bytes: sequence number + n, the IP length − n (IPv4's header checksum updated). The TCP
 * checksum is left for the caller (or the kernel, for a GSO packet). Returns the copy and
 * its segment.
 */
export function trimPayloadFront(pkt: Buffer, seg: TcpSegment, n: number): { pkt: Buffer; seg: TcpSegment } {
  if (n <= 0 || n > seg.payloadLength) throw new RangeError(`cannot trim ${n} of ${seg.payloadLength} payload bytes`);
  const at = seg.payloadOffset;
  const end = seg.off + seg.len; // anything after the IP packet's length is not copied
  const out = Buffer.allocUnsafe(end - n);
  pkt.copy(out, 0, 0, at);
  pkt.copy(out, at, at + n, end);
  if (ipVersion(out) === 6) out.writeUInt16BE(end - n - IP6_HEADER_LEN, IP6_PAYLOAD_LEN);
  else {
    out.writeUInt16BE(end - n, IP_TOTAL_LEN);
    const ip = Ipv4Packet.parse(out);
    if (ip instanceof WireError) throw ip;
    ip.fillChecksum();
  }
  const trimmed = new TcpSegment(out, seg.off, seg.len - n, seg.src, seg.dst, seg.addrSum);
  trimmed.writeSeq(seg.seq + n);
  return { pkt: out, seg: trimmed };
}
