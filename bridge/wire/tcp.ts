/** TCP header (RFC 9293): a view over a Buffer, field offsets named once here. */
import { ipAddrBytes, type IpAddr } from '../../net/addr.js';
import { addressSum4, addressSum6, checksum, fold, sumBytes, update16, update32 } from './checksum.js';
import { WireError } from './error.js';
import { emitIpv4Header, Ipv4Packet, IP_MIN_HEADER_LEN, IPPROTO_TCP } from './ipv4.js';
import {
  emitTcpOptions,
  findTcpOption,
  MAX_OPTIONS_LEN,
  OPT_MSS,
  OPT_MSS_LEN,
  OPT_NOP,
  OPT_SACK,
  OPT_SACK_BLOCK_LEN,
  OPT_SACK_PERMITTED,
  OPT_SACK_PERMITTED_LEN,
  OPT_TIMESTAMP,
  OPT_TIMESTAMP_LEN,
  OPT_TS_ECR,
  OPT_TS_VAL,
  OPT_WSCALE,
  OPT_WSCALE_LEN,
  optionsLength,
  parseTcpOptions,
  type TcpOption,
} from './tcp-options.js';

/** The address words of either family's pseudo header (both addresses of one family). */
export function addressSum(src: IpAddr, dst: IpAddr): number {
  if (typeof src === 'number' && typeof dst === 'number') return addressSum4(src, dst);
  if (typeof src === 'string' && typeof dst === 'string') return addressSum6(ipAddrBytes(src), ipAddrBytes(dst));
  throw new TypeError('a segment between addresses of two families');
}

export const TCP_SRC_PORT = 0; // 2
export const TCP_DST_PORT = 2; // 2
export const TCP_SEQ = 4; // 4
export const TCP_ACK = 8; // 4
export const TCP_DATA_OFF = 12; // high 4 bits: header length in words; low bit: AE (RFC 9768)
export const TCP_FLAGS = 13; // 1: CWR ECE URG ACK PSH RST SYN FIN
export const TCP_WINDOW = 14; // 2
export const TCP_CHECKSUM = 16; // 2
export const TCP_URGENT = 18; // 2
export const TCP_OPTIONS = 20;
export const TCP_MIN_HEADER_LEN = 20;
export const TCP_MAX_HEADER_LEN = 60;

export const TCP_FIN = 0x001;
export const TCP_SYN = 0x002;
export const TCP_RST = 0x004;
export const TCP_PSH = 0x008;
export const TCP_ACK_FLAG = 0x010;
export const TCP_URG = 0x020;
export const TCP_ECE = 0x040;
export const TCP_CWR = 0x080;
/** Accurate-ECN / former NS bit, the low bit of byte 12. */
export const TCP_AE = 0x100;
export const TCP_FLAGS_MASK = 0x1ff;

/** No SACK blocks: one shared, frozen empty array (sackBlocks() of a segment without any, and an idle connection's record). */
export const NO_SACK_BLOCKS: ReadonlyArray<[number, number]> = Object.freeze([]);

/**
 * A TCP segment inside an IPv4 or IPv6 packet. `len` is the segment length (header +
 * payload) as the IP header states it; `src`/`dst` are the IP addresses.
 */
export class TcpSegment {
  /**
   * `src`, `dst`: the IP addresses (IpAddr: a number for IPv4, hex for IPv6); `addrSum`:
   * the address words of the pseudo header, worked out from them unless given.
   */
  constructor(
    readonly buf: Buffer,
    readonly off: number,
    readonly len: number,
    readonly src: IpAddr,
    readonly dst: IpAddr,
    readonly addrSum = addressSum(src, dst),
  ) {}

  /** Parses the TCP segment carried by a validated IPv4 packet. */
  static fromIpv4(ip: Ipv4Packet): TcpSegment | WireError {
    if (ip.protocol !== IPPROTO_TCP) return new WireError('ipv4', 'not-tcp', `protocol ${ip.protocol}`);
    return TcpSegment.parse(ip.buf, ip.payloadOffset, ip.payloadLength, ip.src, ip.dst);
  }

  /** Validates a TCP header of a `len`-byte segment at `off` (data offset within the segment). */
  static parse(
    buf: Buffer,
    off: number,
    len: number,
    src: IpAddr,
    dst: IpAddr,
    addrSum = addressSum(src, dst),
  ): TcpSegment | WireError {
    if (off < 0 || len < TCP_MIN_HEADER_LEN || off + len > buf.length) {
      return new WireError('tcp', 'truncated', `${len} bytes, need ${TCP_MIN_HEADER_LEN}`);
    }
    const s = new TcpSegment(buf, off, len, src, dst, addrSum);
    const hl = s.headerLength;
    if (hl < TCP_MIN_HEADER_LEN) return new WireError('tcp', 'bad-header-length', `data offset ${hl >> 2}`);
    if (hl > len) return new WireError('tcp', 'bad-header-length', `header ${hl} bytes > segment ${len}`);
    return s;
  }

  get srcPort(): number {
    return this.buf.readUInt16BE(this.off + TCP_SRC_PORT);
  }
  get dstPort(): number {
    return this.buf.readUInt16BE(this.off + TCP_DST_PORT);
  }
  get seq(): number {
    return this.buf.readUInt32BE(this.off + TCP_SEQ);
  }
  get ack(): number {
    return this.buf.readUInt32BE(this.off + TCP_ACK);
  }
  get headerLength(): number {
    return (this.buf[this.off + TCP_DATA_OFF]! >> 4) << 2;
  }
  /** The nine flag bits (FIN … CWR, AE). */
  get flags(): number {
    return ((this.buf[this.off + TCP_DATA_OFF]! & 0x01) << 8) | this.buf[this.off + TCP_FLAGS]!;
  }
  has(flag: number): boolean {
    return (this.flags & flag) !== 0;
  }
  get window(): number {
    return this.buf.readUInt16BE(this.off + TCP_WINDOW);
  }
  get checksum(): number {
    return this.buf.readUInt16BE(this.off + TCP_CHECKSUM);
  }
  get urgent(): number {
    return this.buf.readUInt16BE(this.off + TCP_URGENT);
  }
  get optionsOffset(): number {
    return this.off + TCP_OPTIONS;
  }
  get optionsEnd(): number {
    return this.off + this.headerLength;
  }
  get payloadOffset(): number {
    return this.off + this.headerLength;
  }
  get payloadLength(): number {
    return this.len - this.headerLength;
  }
  get payload(): Buffer {
    return this.buf.subarray(this.payloadOffset, this.off + this.len);
  }
  /** Sequence space the segment occupies: payload, plus one each for SYN and FIN. */
  get seqLength(): number {
    const f = this.buf[this.off + TCP_FLAGS]!;
    return this.payloadLength + (f & TCP_SYN ? 1 : 0) + (f & TCP_FIN ? 1 : 0);
  }

  options(): TcpOption[] | WireError {
    return parseTcpOptions(this.buf, this.optionsOffset, this.optionsEnd);
  }

  private pseudoSum(): number {
    return this.addrSum + IPPROTO_TCP + this.len;
  }
  checksumValid(): boolean {
    return fold(sumBytes(this.buf, this.off, this.len, this.pseudoSum())) === 0xffff;
  }
  /**
   * True when the checksum field holds only the folded pseudo-header sum: a
   * segment with CHECKSUM_PARTIAL (offload not yet done), as the kernel hands
   * out locally generated segments on veth, NFQUEUE OUTPUT and raw sockets.
   */
  checksumPartial(): boolean {
    return this.checksum === fold(this.pseudoSum());
  }
  fillChecksum(): void {
    this.buf.writeUInt16BE(0, this.off + TCP_CHECKSUM);
    this.buf.writeUInt16BE(checksum(this.buf, this.off, this.len, this.pseudoSum()), this.off + TCP_CHECKSUM);
  }

  // In-place rewrites; each keeps the checksum right with RFC 1624.
  setSrcPort(v: number): void {
    this.rewrite16(TCP_SRC_PORT, v);
  }
  setDstPort(v: number): void {
    this.rewrite16(TCP_DST_PORT, v);
  }
  setSeq(v: number): void {
    this.rewrite32(TCP_SEQ, v);
  }
  setAck(v: number): void {
    this.rewrite32(TCP_ACK, v);
  }
  setWindow(v: number): void {
    this.rewrite16(TCP_WINDOW, v);
  }
  /** Sets or clears flag bits in the byte-13 flags (not AE). */
  setFlags(flags: number): void {
    const at = this.off + TCP_DATA_OFF;
    const oldWord = this.buf.readUInt16BE(at);
    this.buf[at + 1] = flags & 0xff;
    this.buf[at] = (this.buf[at]! & 0xfe) | ((flags >> 8) & 0x01);
    this.setCheck(update16(this.checksum, oldWord, this.buf.readUInt16BE(at)));
  }
  /** Rewrites a 32-bit word at absolute offset `at` inside the header (an option field). */
  rewriteWord32At(at: number, v: number): void {
    const old = this.buf.readUInt32BE(at);
    this.buf.writeUInt32BE(v >>> 0, at);
    // An option word may start at an odd offset from the header: fix the sum on
    // the 16-bit words it overlaps.
    if (((at - this.off) & 1) === 0) {
      this.setCheck(update32(this.checksum, old, v >>> 0));
    } else {
      this.fillChecksum();
    }
  }
  /**
   * Adjusts the checksum for a change of the IP source or destination address
   * (the pseudo header), after the IPv4 header was rewritten.
   */
  pseudoAddressChanged(oldAddr: number, newAddr: number): void {
    this.setCheck(update32(this.checksum, oldAddr, newAddr));
  }

  /** Offset of the timestamp option, or −1 (looked up once). */
  timestampOffset(): number {
    if (this.tsAt === undefined) {
      const at = findTcpOption(this.buf, this.optionsOffset, this.optionsEnd, OPT_TIMESTAMP);
      this.tsAt = at >= 0 && this.buf[at + 1] === OPT_TIMESTAMP_LEN ? at : -1;
    }
    return this.tsAt;
  }
  private tsAt: number | undefined;
  /** TSval and TSecr, or null without the option. */
  timestamp(): { tsval: number; tsecr: number } | null {
    const at = this.timestampOffset();
    return at < 0
      ? null
      : { tsval: this.buf.readUInt32BE(at + OPT_TS_VAL), tsecr: this.buf.readUInt32BE(at + OPT_TS_ECR) };
  }
  /** Sets TSval (checksum kept right); false without the option. */
  setTsval(v: number): boolean {
    const at = this.timestampOffset();
    if (at >= 0) this.rewriteWord32At(at + OPT_TS_VAL, v);
    return at >= 0;
  }
  /** Sets TSecr (checksum kept right); false without the option. */
  setTsecr(v: number): boolean {
    const at = this.timestampOffset();
    if (at >= 0) this.rewriteWord32At(at + OPT_TS_ECR, v);
    return at >= 0;
  }

  /** The SACK option's offset, or −1. */
  private sackOffset(): number {
    return findTcpOption(this.buf, this.optionsOffset, this.optionsEnd, OPT_SACK);
  }
  /** Whether the segment carries a SACK option. */
  hasSack(): boolean {
    return this.sackOffset() >= 0;
  }
  /** The SACK blocks, whole blocks only (the option's length comes from the peer); [] without the option. */
  /** The SACK blocks, in order; a segment without any gives one shared, frozen empty array. */
  sackBlocks(): ReadonlyArray<[number, number]> {
    const at = this.sackOffset();
    if (at < 0) return NO_SACK_BLOCKS;
    const out: Array<[number, number]> = [];
    for (let i = 0; i < this.sackRoom(at); i++) {
      const b = at + 2 + i * OPT_SACK_BLOCK_LEN;
      out.push([this.buf.readUInt32BE(b), this.buf.readUInt32BE(b + 4)]);
    }
    return out;
  }
  private sackRoom(at: number): number {
    return Math.floor((this.buf[at + 1]! - 2) / OPT_SACK_BLOCK_LEN);
  }

  // Raw writes: the field only. The caller completes the checksum with
  // fillChecksum(), or leaves it to the kernel (GSO, CHECKSUM_PARTIAL),
  // after a batch of them.
  writeSeq(v: number): void {
    this.buf.writeUInt32BE(v >>> 0, this.off + TCP_SEQ);
  }
  writeAck(v: number): void {
    this.buf.writeUInt32BE(v >>> 0, this.off + TCP_ACK);
  }
  writeWindow(v: number): void {
    this.buf.writeUInt16BE(v, this.off + TCP_WINDOW);
  }
  /** Clears flag bits of byte 13 (not AE). */
  clearFlags(flags: number): void {
    this.buf[this.off + TCP_FLAGS] = this.buf[this.off + TCP_FLAGS]! & ~flags;
  }
  writeTsval(v: number): void {
    const at = this.timestampOffset();
    if (at >= 0) this.buf.writeUInt32BE(v >>> 0, at + OPT_TS_VAL);
  }
  writeTsecr(v: number): void {
    const at = this.timestampOffset();
    if (at >= 0) this.buf.writeUInt32BE(v >>> 0, at + OPT_TS_ECR);
  }
  /** Adds `delta` to both edges of every whole SACK block (from one sequence space into another). */
  shiftSackBlocks(delta: number): void {
    const at = this.sackOffset();
    if (at < 0) return;
    for (let i = 0; i < this.sackRoom(at); i++) {
      const b = at + 2 + i * OPT_SACK_BLOCK_LEN;
      this.buf.writeUInt32BE((this.buf.readUInt32BE(b) + delta) >>> 0, b);
      this.buf.writeUInt32BE((this.buf.readUInt32BE(b + 4) + delta) >>> 0, b + 4);
    }
  }
  /**
   * Replaces the SACK blocks in place with `blocks` (as many as the option
   * has room for), NOPs where fewer; no blocks: the option becomes NOPs.
   * The header length never changes.
   */
  writeSackBlocks(blocks: ReadonlyArray<readonly [number, number]>): void {
    const at = this.sackOffset();
    if (at < 0) return;
    const len = this.buf[at + 1]!;
    const n = Math.min(blocks.length, this.sackRoom(at));
    if (n === 0) {
      this.buf.fill(OPT_NOP, at, at + len);
      return;
    }
    this.buf[at + 1] = 2 + n * OPT_SACK_BLOCK_LEN;
    for (let i = 0; i < n; i++) {
      this.buf.writeUInt32BE(blocks[i]![0] >>> 0, at + 2 + i * OPT_SACK_BLOCK_LEN);
      this.buf.writeUInt32BE(blocks[i]![1] >>> 0, at + 6 + i * OPT_SACK_BLOCK_LEN);
    }
    this.buf.fill(OPT_NOP, at + 2 + n * OPT_SACK_BLOCK_LEN, at + len);
  }
  /** The MSS option's value, or null. */
  mss(): number | null {
    const at = findTcpOption(this.buf, this.optionsOffset, this.optionsEnd, OPT_MSS);
    return at >= 0 && this.buf[at + 1] === OPT_MSS_LEN ? this.buf.readUInt16BE(at + 2) : null;
  }
  /** Writes the MSS option's value, if the segment has one. */
  writeMss(v: number): void {
    const at = findTcpOption(this.buf, this.optionsOffset, this.optionsEnd, OPT_MSS);
    if (at >= 0 && this.buf[at + 1] === OPT_MSS_LEN) this.buf.writeUInt16BE(v, at + 2);
  }
  /** Writes the window-scale shift; null turns the option into NOPs (no scaling). */
  writeWscale(shift: number | null): void {
    const at = findTcpOption(this.buf, this.optionsOffset, this.optionsEnd, OPT_WSCALE);
    if (at < 0 || this.buf[at + 1] !== OPT_WSCALE_LEN) return;
    if (shift === null) this.buf.fill(OPT_NOP, at, at + OPT_WSCALE_LEN);
    else this.buf[at + 2] = shift;
  }
  /** Turns the SACK-permitted option into NOPs. */
  removeSackPermitted(): void {
    const at = findTcpOption(this.buf, this.optionsOffset, this.optionsEnd, OPT_SACK_PERMITTED);
    if (at >= 0 && this.buf[at + 1] === OPT_SACK_PERMITTED_LEN) this.buf.fill(OPT_NOP, at, at + OPT_SACK_PERMITTED_LEN);
  }
  /** Turns the timestamp option into NOPs. */
  removeTimestamps(): void {
    const at = this.timestampOffset();
    if (at >= 0) this.buf.fill(OPT_NOP, at, at + OPT_TIMESTAMP_LEN);
    this.tsAt = -1;
  }

  private setCheck(v: number): void {
    this.buf.writeUInt16BE(v, this.off + TCP_CHECKSUM);
  }
  private rewrite16(field: number, v: number): void {
    const old = this.buf.readUInt16BE(this.off + field);
    this.buf.writeUInt16BE(v, this.off + field);
    this.setCheck(update16(this.checksum, old, v));
  }
  private rewrite32(field: number, v: number): void {
    const old = this.buf.readUInt32BE(this.off + field);
    this.buf.writeUInt32BE(v >>> 0, this.off + field);
    this.setCheck(update32(this.checksum, old, v >>> 0));
  }
}

/** The high-level value of a TCP segment. */
export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgent: number;
  options: TcpOption[];
  payload: Buffer;
}

export function parseTcpRepr(s: TcpSegment): TcpRepr | WireError {
  const options = s.options();
  if (options instanceof WireError) return options;
  return {
    srcPort: s.srcPort,
    dstPort: s.dstPort,
    seq: s.seq,
    ack: s.ack,
    flags: s.flags,
    window: s.window,
    urgent: s.urgent,
    options,
    payload: Buffer.from(s.payload),
  };
}

/** Encoded header length of `r`. */
export function tcpHeaderLength(r: Pick<TcpRepr, 'options'>): number {
  return TCP_MIN_HEADER_LEN + optionsLength(r.options);
}

/**
 * Writes `r` at `off` in `buf` (which must have room for header + payload) with
 * a correct checksum for the pseudo header of `src`→`dst`. Returns the length.
 */
export function emitTcp(r: TcpRepr, src: number, dst: number, buf: Buffer, off = 0): number {
  return emitTcpSummed(r, addressSum4(src, dst), buf, off);
}

/** emitTcp with the pseudo header's address words given (`addrSum`: IPv4's or IPv6's). */
export function emitTcpSummed(r: TcpRepr, addrSum: number, buf: Buffer, off = 0): number {
  const hl = tcpHeaderLength(r);
  if (hl - TCP_MIN_HEADER_LEN > MAX_OPTIONS_LEN) throw new RangeError('TCP options too long');
  buf.writeUInt16BE(r.srcPort, off + TCP_SRC_PORT);
  buf.writeUInt16BE(r.dstPort, off + TCP_DST_PORT);
  buf.writeUInt32BE(r.seq >>> 0, off + TCP_SEQ);
  buf.writeUInt32BE(r.ack >>> 0, off + TCP_ACK);
  buf[off + TCP_DATA_OFF] = ((hl >> 2) << 4) | ((r.flags >> 8) & 0x01);
  buf[off + TCP_FLAGS] = r.flags & 0xff;
  buf.writeUInt16BE(r.window, off + TCP_WINDOW);
  buf.writeUInt16BE(0, off + TCP_CHECKSUM);
  buf.writeUInt16BE(r.urgent, off + TCP_URGENT);
  emitTcpOptions(r.options, buf, off + TCP_OPTIONS);
  buf.set(r.payload, off + hl);
  const len = hl + r.payload.length;
  buf.writeUInt16BE(checksum(buf, off, len, addrSum + IPPROTO_TCP + len), off + TCP_CHECKSUM);
  return len;
}

export interface Ipv4TcpFields {
  src: number;
  dst: number;
  ttl?: number;
  id?: number;
  tos?: number;
  dontFragment?: boolean;
}

/** Builds a complete IPv4 packet carrying `tcp`, both checksums filled in. */
export function buildIpv4Tcp(ip: Ipv4TcpFields, tcp: TcpRepr): Buffer {
  const tcpLen = tcpHeaderLength(tcp) + tcp.payload.length;
  const out = Buffer.allocUnsafe(IP_MIN_HEADER_LEN + tcpLen);
  emitIpv4Header(
    {
      tos: ip.tos ?? 0,
      id: ip.id ?? 0,
      dontFragment: ip.dontFragment ?? true,
      ttl: ip.ttl ?? 64,
      protocol: IPPROTO_TCP,
      src: ip.src,
      dst: ip.dst,
      payloadLength: tcpLen,
    },
    out,
    0,
  );
  emitTcp(tcp, ip.src, ip.dst, out, IP_MIN_HEADER_LEN);
  return out;
}

/** Parses an IPv4 packet and the TCP segment in it. */
export function parseIpv4Tcp(
  buf: Buffer,
  off = 0,
  len = buf.length - off,
): { ip: Ipv4Packet; tcp: TcpSegment } | WireError {
  const ip = Ipv4Packet.parse(buf, off, len);
  if (ip instanceof WireError) return ip;
  const tcp = TcpSegment.fromIpv4(ip);
  if (tcp instanceof WireError) return tcp;
  return { ip, tcp };
}
