/**
 * The divert option (paper §3.1): the secondary sends each of its TCP's
 * segments to a client to the primary instead — readdressed a_s → a_p, with
 * the client's address in a TCP option (kind 253, RFC 6994 ExID 0x7466).
 * Building the diverted packet and reading the option back.
 */
import { ip4Of } from '../../net/addr.js';
import { checksum } from './checksum.js';
import { IP_CHECKSUM, IP_DST, IP_SRC, IP_TOTAL_LEN, type Ipv4Packet } from './ipv4.js';
import {
  DIVERT_EXID,
  findOptionsEol,
  findTcpOption,
  MAX_OPTIONS_LEN,
  OPT_DIVERT_ADDR,
  OPT_DIVERT_LEN,
  OPT_EXPERIMENT,
  OPT_NOP,
  OPT_SACK,
  OPT_SACK_BLOCK_LEN,
} from './tcp-options.js';
import { TcpSegment, TCP_DATA_OFF, TCP_MIN_HEADER_LEN } from './tcp.js';

/** The MSS a client may tell S so that header + options + divert option fit `mtu`. */
export function clampedMss(mtu: number): number {
  return mtu - 20 - 20 - OPT_DIVERT_LEN;
}

/** Reads the divert option of a segment: the client address, or null. */
export function divertedClient(seg: TcpSegment): number | null {
  const at = findTcpOption(seg.buf, seg.optionsOffset, seg.optionsEnd, OPT_EXPERIMENT, DIVERT_EXID);
  if (at < 0 || seg.buf[at + 1] !== OPT_DIVERT_LEN) return null;
  return seg.buf.readUInt32BE(at + OPT_DIVERT_ADDR);
}

/**
 * A new packet: `seg` (in `ip`) readdressed `src` → `dst`, the segment's
 * destination (the client) in a divert option appended to its options. If
 * the options leave no room, SACK blocks are dropped from the end (the
 * client's stack only loses some selective acknowledgements; `sackTrimmed`
 * says so); without SACK blocks to drop: 'no-option-room'. Both checksums are
 * complete, except a GSO packet's TCP sum, which the kernel computes when it
 * segments it.
 */
export function buildDiverted(
  ip: Ipv4Packet,
  seg: TcpSegment,
  src: number,
  dst: number,
  gso: boolean,
): { pkt: Buffer; sackTrimmed: boolean } | 'no-option-room' {
  const pkt = ip.buf;
  const ipHl = ip.headerLength;
  const optStart = seg.optionsOffset;
  const optEnd = seg.optionsEnd;
  // The options already there, minus SACK blocks that no longer fit.
  let optBytes = optEnd - optStart;
  let sackAt = -1;
  let sackKeep = 0;
  if (optBytes + OPT_DIVERT_LEN > MAX_OPTIONS_LEN) {
    sackAt = findTcpOption(pkt, optStart, optEnd, OPT_SACK);
    if (sackAt < 0) return 'no-option-room';
    const blocks = Math.floor((pkt[sackAt + 1]! - 2) / OPT_SACK_BLOCK_LEN);
    const excess = optBytes + OPT_DIVERT_LEN - MAX_OPTIONS_LEN;
    const drop = Math.ceil(excess / OPT_SACK_BLOCK_LEN);
    if (drop >= blocks) return 'no-option-room';
    sackKeep = blocks - drop;
  }
  const payloadLen = seg.payloadLength;
  const removed = sackAt >= 0 ? pkt[sackAt + 1]! - (2 + sackKeep * OPT_SACK_BLOCK_LEN) : 0;
  optBytes -= removed;
  const tcpHl = TCP_MIN_HEADER_LEN + optBytes + OPT_DIVERT_LEN;
  const total = ipHl + tcpHl + payloadLen;
  const out = Buffer.allocUnsafe(total);
  pkt.copy(out, 0, ip.off, ip.off + ipHl + TCP_MIN_HEADER_LEN);
  // Options: copy, with the SACK option shortened if needed.
  let w = ipHl + TCP_MIN_HEADER_LEN;
  if (sackAt >= 0) {
    pkt.copy(out, w, optStart, sackAt);
    w += sackAt - optStart;
    const keepLen = 2 + sackKeep * OPT_SACK_BLOCK_LEN;
    pkt.copy(out, w, sackAt, sackAt + keepLen);
    out[w + 1] = keepLen;
    w += keepLen;
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
  out[w] = OPT_EXPERIMENT;
  out[w + 1] = OPT_DIVERT_LEN;
  out.writeUInt16BE(DIVERT_EXID, w + 2);
  out.writeUInt32BE(ip4Of(seg.dst), w + OPT_DIVERT_ADDR);
  w += OPT_DIVERT_LEN;
  // Alignment holds: 8n bytes of SACK blocks out, 8 bytes of divert option in.
  pkt.copy(out, w, seg.payloadOffset, seg.payloadOffset + payloadLen);
  out[ipHl + TCP_DATA_OFF] = ((tcpHl >> 2) << 4) | (out[ipHl + TCP_DATA_OFF]! & 0x0f);
  out.writeUInt16BE(total, IP_TOTAL_LEN);
  out.writeUInt32BE(src, IP_SRC);
  out.writeUInt32BE(dst, IP_DST);
  out.writeUInt16BE(0, IP_CHECKSUM);
  out.writeUInt16BE(checksum(out, 0, ipHl), IP_CHECKSUM);
  // nfqueue marks a mangled packet CHECKSUM_NONE: complete the sum, except
  // for GSO packets, which the kernel segments and sums in software.
  if (!gso) new TcpSegment(out, ipHl, total - ipHl, src, dst).fillChecksum();
  return { pkt: out, sackTrimmed: sackAt >= 0 };
}
