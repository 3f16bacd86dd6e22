/**
 * TCP options the bridge reads or writes: MSS (RFC 9293), window scale,
 * SACK-permitted and SACK blocks (RFC 2018), timestamps (RFC 7323), and our
 * divert option (experimental kind 253 with an ExID, RFC 6994) that carries
 * the client's address on segments the secondary diverts to the primary.
 * Other options are kept as opaque bytes.
 */
import { ip6Addr, ipAddrBytes, isIp6, type IpAddr } from '../../net/addr.js';
import { WireError } from './error.js';

export const OPT_EOL = 0;
export const OPT_NOP = 1;
export const OPT_MSS = 2;
export const OPT_WSCALE = 3;
export const OPT_SACK_PERMITTED = 4;
export const OPT_SACK = 5;
export const OPT_TIMESTAMP = 8;
export const OPT_EXPERIMENT = 253;

export const OPT_MSS_LEN = 4;
export const OPT_WSCALE_LEN = 3;
export const OPT_SACK_PERMITTED_LEN = 2;
export const OPT_TIMESTAMP_LEN = 10;
/** Offset of TSval and TSecr inside the timestamp option. */
export const OPT_TS_VAL = 2;
export const OPT_TS_ECR = 6;
export const OPT_SACK_BLOCK_LEN = 8;
export const MAX_SACK_BLOCKS = 4;

/** RFC 6994 ExID of the divert option ("tf"), not IANA-assigned: an experiment between our own two nodes. */
export const DIVERT_EXID = 0x7466;
/** kind, length, ExID (2), client IPv4 address (4). */
export const OPT_DIVERT_LEN = 8;
/** kind, length, ExID (2), client IPv6 address (16). */
export const OPT_DIVERT6_LEN = 20;
/** Offset of the client address inside the divert option. */
export const OPT_DIVERT_ADDR = 4;

/** The largest window-scale shift RFC 7323 allows. */
export const MAX_WSCALE = 14;
/** TCP options fit in 40 bytes (data offset ≤ 15 words). */
export const MAX_OPTIONS_LEN = 40;

export type TcpOption =
  | { kind: 'mss'; mss: number }
  | { kind: 'wscale'; shift: number }
  | { kind: 'sack-permitted' }
  | { kind: 'sack'; blocks: Array<[left: number, right: number]> }
  | { kind: 'timestamp'; tsval: number; tsecr: number }
  | { kind: 'divert'; client: IpAddr }
  | { kind: 'unknown'; type: number; data: Buffer };

function bad(detail: string): WireError {
  return new WireError('tcp-option', 'bad-option', detail);
}

/**
 * Parses the options in buf[start, end). NOPs are skipped, EOL ends the list.
 * Returns the options in wire order, or a WireError for any option whose
 * length is < 2, runs past `end`, or is wrong for its kind.
 */
export function parseTcpOptions(buf: Buffer, start: number, end: number): TcpOption[] | WireError {
  const out: TcpOption[] = [];
  let i = start;
  while (i < end) {
    const kind = buf[i]!;
    if (kind === OPT_EOL) break;
    if (kind === OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return bad(`option ${kind} at ${i - start} has no length byte`);
    const len = buf[i + 1]!;
    if (len < 2) return bad(`option ${kind} length ${len} < 2`);
    if (i + len > end) return bad(`option ${kind} length ${len} runs past the header`);
    switch (kind) {
      case OPT_MSS:
        if (len !== OPT_MSS_LEN) return bad(`MSS length ${len}`);
        out.push({ kind: 'mss', mss: buf.readUInt16BE(i + 2) });
        break;
      case OPT_WSCALE:
        if (len !== OPT_WSCALE_LEN) return bad(`window scale length ${len}`);
        out.push({ kind: 'wscale', shift: buf[i + 2]! });
        break;
      case OPT_SACK_PERMITTED:
        if (len !== OPT_SACK_PERMITTED_LEN) return bad(`SACK-permitted length ${len}`);
        out.push({ kind: 'sack-permitted' });
        break;
      case OPT_SACK: {
        const n = (len - 2) / OPT_SACK_BLOCK_LEN;
        if (!Number.isInteger(n) || n < 1 || n > MAX_SACK_BLOCKS) return bad(`SACK length ${len}`);
        const blocks: Array<[number, number]> = [];
        for (let b = 0; b < n; b++) {
          const at = i + 2 + b * OPT_SACK_BLOCK_LEN;
          blocks.push([buf.readUInt32BE(at), buf.readUInt32BE(at + 4)]);
        }
        out.push({ kind: 'sack', blocks });
        break;
      }
      case OPT_TIMESTAMP:
        if (len !== OPT_TIMESTAMP_LEN) return bad(`timestamp length ${len}`);
        out.push({
          kind: 'timestamp',
          tsval: buf.readUInt32BE(i + OPT_TS_VAL),
          tsecr: buf.readUInt32BE(i + OPT_TS_ECR),
        });
        break;
      default:
        if (kind === OPT_EXPERIMENT && len >= 4 && buf.readUInt16BE(i + 2) === DIVERT_EXID) {
          if (len === OPT_DIVERT_LEN) out.push({ kind: 'divert', client: buf.readUInt32BE(i + OPT_DIVERT_ADDR) });
          else if (len === OPT_DIVERT6_LEN) out.push({ kind: 'divert', client: ip6Addr(buf, i + OPT_DIVERT_ADDR) });
          else return bad(`divert length ${len}`);
        } else {
          out.push({ kind: 'unknown', type: kind, data: Buffer.from(buf.subarray(i + 2, i + len)) });
        }
    }
    i += len;
  }
  return out;
}

/** Encoded length of one option, without padding. */
export function optionLength(o: TcpOption): number {
  switch (o.kind) {
    case 'mss':
      return OPT_MSS_LEN;
    case 'wscale':
      return OPT_WSCALE_LEN;
    case 'sack-permitted':
      return OPT_SACK_PERMITTED_LEN;
    case 'sack':
      return 2 + OPT_SACK_BLOCK_LEN * o.blocks.length;
    case 'timestamp':
      return OPT_TIMESTAMP_LEN;
    case 'divert':
      return isIp6(o.client) ? OPT_DIVERT6_LEN : OPT_DIVERT_LEN;
    case 'unknown':
      return 2 + o.data.length;
  }
}

/** Length of the encoded option list padded to a multiple of 4 bytes. */
export function optionsLength(opts: readonly TcpOption[]): number {
  let n = 0;
  for (const o of opts) n += optionLength(o);
  return (n + 3) & ~3;
}

/**
 * Writes `opts` into `buf` at `off`, padded with EOL to a multiple of 4 bytes.
 * Returns the number of bytes written. Throws RangeError for option lists the
 * wire cannot carry (programming errors: these come from our own code).
 */
export function emitTcpOptions(opts: readonly TcpOption[], buf: Buffer, off: number): number {
  const total = optionsLength(opts);
  if (total > MAX_OPTIONS_LEN) throw new RangeError(`TCP options need ${total} bytes, at most ${MAX_OPTIONS_LEN} fit`);
  let i = off;
  for (const o of opts) {
    const len = optionLength(o);
    switch (o.kind) {
      case 'mss':
        buf[i] = OPT_MSS;
        buf[i + 1] = len;
        buf.writeUInt16BE(o.mss, i + 2);
        break;
      case 'wscale':
        buf[i] = OPT_WSCALE;
        buf[i + 1] = len;
        buf[i + 2] = o.shift;
        break;
      case 'sack-permitted':
        buf[i] = OPT_SACK_PERMITTED;
        buf[i + 1] = len;
        break;
      case 'sack':
        if (o.blocks.length < 1 || o.blocks.length > MAX_SACK_BLOCKS) {
          throw new RangeError(`SACK needs 1..${MAX_SACK_BLOCKS} blocks, got ${o.blocks.length}`);
        }
        buf[i] = OPT_SACK;
        buf[i + 1] = len;
        o.blocks.forEach(([l, r], b) => {
          buf.writeUInt32BE(l >>> 0, i + 2 + b * OPT_SACK_BLOCK_LEN);
          buf.writeUInt32BE(r >>> 0, i + 6 + b * OPT_SACK_BLOCK_LEN);
        });
        break;
      case 'timestamp':
        buf[i] = OPT_TIMESTAMP;
        buf[i + 1] = len;
        buf.writeUInt32BE(o.tsval >>> 0, i + OPT_TS_VAL);
        buf.writeUInt32BE(o.tsecr >>> 0, i + OPT_TS_ECR);
        break;
      case 'divert':
        buf[i] = OPT_EXPERIMENT;
        buf[i + 1] = len;
        buf.writeUInt16BE(DIVERT_EXID, i + 2);
        if (isIp6(o.client)) ipAddrBytes(o.client).copy(buf, i + OPT_DIVERT_ADDR);
        else buf.writeUInt32BE(o.client >>> 0, i + OPT_DIVERT_ADDR);
        break;
      case 'unknown':
        if (o.type === OPT_EOL || o.type === OPT_NOP || len > 255)
          throw new RangeError(`cannot emit option ${o.type} of ${len} bytes`);
        buf[i] = o.type;
        buf[i + 1] = len;
        buf.set(o.data, i + 2);
        break;
    }
    i += len;
  }
  buf.fill(OPT_EOL, i, off + total);
  return total;
}

/**
 * Offset in `buf` of the first option of `kind` in buf[start, end) (for kind
 * 253, the one carrying `exid`), or −1. For in-place rewrites on the hot path:
 * no allocation. Assumes the option list was validated by parseTcpOptions or
 * stops at the first malformed option.
 */
export function findTcpOption(buf: Buffer, start: number, end: number, kind: number, exid = -1): number {
  let i = start;
  while (i < end) {
    const k = buf[i]!;
    if (k === OPT_EOL) return -1;
    if (k === OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return -1;
    const len = buf[i + 1]!;
    if (len < 2 || i + len > end) return -1;
    if (k === kind && (exid < 0 || (len >= 4 && buf.readUInt16BE(i + 2) === exid))) return i;
    i += len;
  }
  return -1;
}

/**
 * Offset of the EOL option in buf[start, end), or −1. Bytes after EOL are
 * padding; an option appended after them would be invisible to the peer.
 */
export function findOptionsEol(buf: Buffer, start: number, end: number): number {
  let i = start;
  while (i < end) {
    const k = buf[i]!;
    if (k === OPT_EOL) return i;
    if (k === OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return -1;
    const len = buf[i + 1]!;
    if (len < 2) return -1;
    i += len;
  }
  return -1;
}
