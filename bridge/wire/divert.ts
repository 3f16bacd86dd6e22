/**
 * The divert option (paper §3.1): the secondary sends each of its TCP's
 * segments to a client to the primary instead — readdressed a_s → a_p, with
 * the client's address in a TCP option (kind 253, RFC 6994 ExID 0x7466; 8
 * bytes with an IPv4 address, 20 with an IPv6 one).
 * Building the diverted packet and reading the option back.
 */
import { ip6Addr, ipAddrBytes, isIp6, type IpAddr } from '../../net/addr.js';
import { checksum } from './checksum.js';
import { IP_CHECKSUM, IP_DST, IP_SRC, IP_TOTAL_LEN, type Ipv4Packet } from './ipv4.js';
import { IP6_DST, IP6_HEADER_LEN, IP6_PAYLOAD_LEN, IP6_SRC, Ipv6Packet } from './ipv6.js';
import {
  DIVERT_EXID,
  findOptionsEol,
  findTcpOption,
  MAX_OPTIONS_LEN,
  OPT_DIVERT6_LEN,
  OPT_DIVERT_ADDR,
  OPT_DIVERT_LEN,
  OPT_EXPERIMENT,
  OPT_NOP,
  OPT_SACK,
  OPT_SACK_BLOCK_LEN,
} from './tcp-options.js';
import { TcpSegment, TCP_DATA_OFF, TCP_MIN_HEADER_LEN } from './tcp.js';

/** The MSS a client may tell S so that IP and TCP headers, options and the divert option fit `mtu`. */
export function clampedMss(mtu: number, ipv6 = false): number {
  return ipv6 ? mtu - IP6_HEADER_LEN - 20 - OPT_DIVERT6_LEN : mtu - 20 - 20 - OPT_DIVERT_LEN;
}

/** Reads the divert option of a segment: the client address (of either family), or null. */
export function divertedClient(seg: TcpSegment): IpAddr | null {
  const at = findTcpOption(seg.buf, seg.optionsOffset, seg.optionsEnd, OPT_EXPERIMENT, DIVERT_EXID);
  if (at < 0) return null;
  const len = seg.buf[at + 1];
  if (len === OPT_DIVERT_LEN) return seg.buf.readUInt32BE(at + OPT_DIVERT_ADDR);
  if (len === OPT_DIVERT6_LEN) return ip6Addr(seg.buf, at + OPT_DIVERT_ADDR);
  return null;
}

/**
 * How the options of a segment make room for a divert option of `divertLen` bytes:
 * SACK blocks dropped from the end, or the SACK option whole, and NOPs to keep the header
 * whole words. Null when no SACK option can make the room.
 */
function roomFor(
  pkt: Buffer,
  optStart: number,
  optEnd: number,
  divertLen: number,
): { sackAt: number; keep: number; removed: number; pad: number } | null {
  const optBytes = optEnd - optStart;
  if (optBytes + divertLen <= MAX_OPTIONS_LEN) return { sackAt: -1, keep: 0, removed: 0, pad: 0 };
  const sackAt = findTcpOption(pkt, optStart, optEnd, OPT_SACK);
  if (sackAt < 0) return null;
  const sackLen = pkt[sackAt + 1]!;
  const blocks = Math.floor((sackLen - 2) / OPT_SACK_BLOCK_LEN);
  for (let keep = blocks - 1; keep >= 0; keep--) {
    const removed = keep > 0 ? sackLen - (2 + keep * OPT_SACK_BLOCK_LEN) : sackLen;
    const pad = (4 - ((optBytes - removed) % 4)) % 4;
    if (optBytes - removed + pad + divertLen <= MAX_OPTIONS_LEN) return { sackAt, keep, removed, pad };
  }
  return null;
}

/**
 * A new packet: `seg` (in `ip`, IPv4 or IPv6) readdressed `src` → `dst`, the segment's
 * destination (the client) in a divert option appended to its options (8 bytes for an
 * IPv4 client, 20 for IPv6). If the options leave no room, SACK blocks are dropped from
 * the end, or the SACK option whole (the client's stack only loses some selective
 * acknowledgements; `sackTrimmed` says so); without a SACK option to shorten:
 * 'no-option-room'. Every checksum is complete, except a GSO packet's TCP sum, which the
 * kernel computes when it segments it.
 */
export function buildDiverted(
  ip: Ipv4Packet | Ipv6Packet,
  seg: TcpSegment,
  src: IpAddr,
  dst: IpAddr,
  gso: boolean,
): { pkt: Buffer; sackTrimmed: boolean } | 'no-option-room' {
  const v6 = ip instanceof Ipv6Packet;
  if (v6 !== isIp6(src) || v6 !== isIp6(dst) || v6 !== isIp6(seg.dst))
    throw new TypeError('a diverted packet with addresses of another family');
  const divertLen = v6 ? OPT_DIVERT6_LEN : OPT_DIVERT_LEN;
  const pkt = ip.buf;
  const ipHl = seg.off - ip.off; // IPv6: the extension headers too
  const optStart = seg.optionsOffset;
  const optEnd = seg.optionsEnd;
  const room = roomFor(pkt, optStart, optEnd, divertLen);
  if (!room) return 'no-option-room';
  const { sackAt, keep, removed, pad } = room;
  const payloadLen = seg.payloadLength;
  const tcpHl = TCP_MIN_HEADER_LEN + (optEnd - optStart) - removed + pad + divertLen;
  const total = ipHl + tcpHl + payloadLen;
  const out = Buffer.allocUnsafe(total);
  pkt.copy(out, 0, ip.off, ip.off + ipHl + TCP_MIN_HEADER_LEN);
  // Options: copy, with the SACK option shortened or left out if needed.
  let w = ipHl + TCP_MIN_HEADER_LEN;
  if (sackAt >= 0) {
    pkt.copy(out, w, optStart, sackAt);
    w += sackAt - optStart;
    if (keep > 0) {
      const keepLen = 2 + keep * OPT_SACK_BLOCK_LEN;
      pkt.copy(out, w, sackAt, sackAt + keepLen);
      out[w + 1] = keepLen;
      w += keepLen;
    }
    const after = sackAt + pkt[sackAt + 1]!;
    pkt.copy(out, w, after, optEnd);
    w += optEnd - after;
  } else {
    pkt.copy(out, w, optStart, optEnd);
    w += optEnd - optStart;
  }
  // EOL and the padding after it would hide an option appended behind them.
  const eol = findOptionsEol(out, ipHl + TCP_MIN_HEADER_LEN, w);
  if (eol >= 0) out.fill(OPT_NOP, eol, w);
  out.fill(OPT_NOP, w, w + pad);
  w += pad;
  out[w] = OPT_EXPERIMENT;
  out[w + 1] = divertLen;
  out.writeUInt16BE(DIVERT_EXID, w + 2);
  if (isIp6(seg.dst)) ipAddrBytes(seg.dst).copy(out, w + OPT_DIVERT_ADDR);
  else out.writeUInt32BE(seg.dst, w + OPT_DIVERT_ADDR);
  w += divertLen;
  pkt.copy(out, w, seg.payloadOffset, seg.payloadOffset + payloadLen);
  out[ipHl + TCP_DATA_OFF] = ((tcpHl >> 2) << 4) | (out[ipHl + TCP_DATA_OFF]! & 0x0f);
  if (isIp6(src) && isIp6(dst)) {
    out.writeUInt16BE(total - IP6_HEADER_LEN, IP6_PAYLOAD_LEN);
    ipAddrBytes(src).copy(out, IP6_SRC);
    ipAddrBytes(dst).copy(out, IP6_DST);
  } else if (!isIp6(src) && !isIp6(dst)) {
    out.writeUInt16BE(total, IP_TOTAL_LEN);
    out.writeUInt32BE(src, IP_SRC);
    out.writeUInt32BE(dst, IP_DST);
    out.writeUInt16BE(0, IP_CHECKSUM);
    out.writeUInt16BE(checksum(out, 0, ipHl), IP_CHECKSUM);
  }
  // nfqueue marks a mangled packet CHECKSUM_NONE: complete the sum, except
  // for GSO packets, which the kernel segments and sums in software.
  if (!gso) new TcpSegment(out, ipHl, total - ipHl, src, dst).fillChecksum();
  return { pkt: out, sackTrimmed: sackAt >= 0 };
}
