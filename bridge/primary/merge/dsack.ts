/**
 * P's pure ACK that reports a client segment received twice: one SACK block,
 * at or below the ACK (a D-SACK, RFC 2883). A client whose request was late
 * to be answered sends it again; P's TCP, which had it, says so this way. The
 * kernel merge does not take such an ACK of P's (its egress program has no
 * stack left to rewrite it), and the merger would take the whole connection
 * from the kernel for it. The bridge instead cuts the option out, with the
 * two NOPs Linux puts before it, and gives the ACK back to the kernel, which
 * merges it as a pure ACK (the ingress program overwrites S's with NOPs,
 * native/bpf/tcp.h nop_sack; the egress program takes only the layouts Linux
 * sends, so P's must shrink). The client loses only the report that its
 * retransmission was needless.
 *
 * Pure: no I/O.
 */
import { checksum, pseudoHeaderSum } from '../../wire/checksum.js';
import { IP_CHECKSUM, IP_DST, IP_SRC, IP_TOTAL_LEN } from '../../wire/ipv4.js';
import { findTcpOption, OPT_NOP, OPT_SACK, OPT_SACK_BLOCK_LEN } from '../../wire/tcp-options.js';
import { TCP_ACK, TCP_ACK_FLAG, TCP_CHECKSUM, TCP_DATA_OFF, TCP_FLAGS, TCP_MIN_HEADER_LEN } from '../../wire/tcp.js';

const IPPROTO_TCP = 6;
/** A SACK option with one block: kind, length, left and right edge; and the two NOPs before it. */
const ONE_BLOCK_SACK_LEN = 2 + OPT_SACK_BLOCK_LEN;
const CUT = 2 + ONE_BLOCK_SACK_LEN;

/**
 * If `ip` (an IPv4 packet as P's TCP sent it) is a pure ACK whose only SACK
 * option holds one block ending at or below its ACK, after two NOPs: a copy
 * 12 bytes shorter without them, both checksums whole (a packet given back
 * through the queue with new bytes leaves with the sums it carries). Else null.
 */
export function clearLoneDsack(ip: Buffer): Buffer | null {
  if (ip.length < 20 || ip[0]! >> 4 !== 4 || ip[9] !== IPPROTO_TCP) return null;
  const ihl = (ip[0]! & 0x0f) * 4;
  const total = ip.readUInt16BE(2);
  if (ihl < 20 || total !== ip.length || total < ihl + TCP_MIN_HEADER_LEN) return null;
  if ((ip.readUInt16BE(6) & 0x3fff) !== 0) return null; // a fragment
  const doff = (ip[ihl + TCP_DATA_OFF]! >> 4) * 4;
  // Pure: ACK alone (ECN's flags aside), no payload.
  if (doff < TCP_MIN_HEADER_LEN || ihl + doff !== total) return null;
  if ((ip[ihl + TCP_FLAGS]! & 0x3f) !== TCP_ACK_FLAG) return null;
  const optStart = ihl + TCP_MIN_HEADER_LEN;
  const optEnd = ihl + doff;
  const at = findTcpOption(ip, optStart, optEnd, OPT_SACK);
  if (at < 0 || ip[at + 1] !== ONE_BLOCK_SACK_LEN) return null;
  // One SACK option only: a second after the first would be malformed anyway.
  if (findTcpOption(ip, at + ONE_BLOCK_SACK_LEN, optEnd, OPT_SACK) >= 0) return null;
  const ack = ip.readUInt32BE(ihl + TCP_ACK);
  const right = ip.readUInt32BE(at + 2 + 4);
  if (((right - ack) | 0) > 0) return null; // above the ACK: an ordinary SACK, the merger's
  if (at - 2 < optStart || ip[at - 2] !== OPT_NOP || ip[at - 1] !== OPT_NOP) return null;
  const out = Buffer.concat([ip.subarray(0, at - 2), ip.subarray(at + ONE_BLOCK_SACK_LEN)]);
  out.writeUInt16BE(total - CUT, IP_TOTAL_LEN);
  out.writeUInt16BE(0, IP_CHECKSUM);
  out.writeUInt16BE(checksum(out, 0, ihl), IP_CHECKSUM);
  out[ihl + TCP_DATA_OFF] = (((doff - CUT) / 4) << 4) | (out[ihl + TCP_DATA_OFF]! & 0x0f);
  out.writeUInt16BE(0, ihl + TCP_CHECKSUM);
  const len = total - CUT - ihl;
  out.writeUInt16BE(
    checksum(out, ihl, len, pseudoHeaderSum(out.readUInt32BE(IP_SRC), out.readUInt32BE(IP_DST), IPPROTO_TCP, len)),
    ihl + TCP_CHECKSUM,
  );
  return out;
}
