/** IPv4 header (RFC 791): a view over a Buffer, field offsets named once here. */
import { checksum, update16, update32 } from './checksum.js';
import { WireError } from './error.js';

export const IP_VER_IHL = 0; // 1: version (4 bits) and IHL (4 bits, 32-bit words)
export const IP_TOS = 1; // 1: DSCP (6 bits) and ECN (2 bits)
export const IP_TOTAL_LEN = 2; // 2
export const IP_ID = 4; // 2
export const IP_FLAGS_FRAG = 6; // 2: flags (3 bits) and fragment offset (13 bits)
export const IP_TTL = 8; // 1
export const IP_PROTOCOL = 9; // 1
export const IP_CHECKSUM = 10; // 2
export const IP_SRC = 12; // 4
export const IP_DST = 16; // 4
export const IP_MIN_HEADER_LEN = 20;

export const IP_FLAG_DF = 0x4000;
export const IP_FLAG_MF = 0x2000;
export const IP_FRAG_OFFSET_MASK = 0x1fff;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export class Ipv4Packet {
  constructor(
    readonly buf: Buffer,
    readonly off = 0,
  ) {}

  /**
   * Validates an IPv4 header at `off` within `len` bytes of `buf`: version,
   * IHL ≥ 5, total length within the buffer, not a fragment. Trailing bytes
   * past the total length (Ethernet padding) are allowed and ignored.
   */
  static parse(buf: Buffer, off = 0, len = buf.length - off): Ipv4Packet | WireError {
    if (off < 0 || len < IP_MIN_HEADER_LEN || off + len > buf.length) {
      return new WireError('ipv4', 'truncated', `${len} bytes, need ${IP_MIN_HEADER_LEN}`);
    }
    const p = new Ipv4Packet(buf, off);
    if (p.version !== 4) return new WireError('ipv4', 'bad-version', `version ${p.version}`);
    const hl = p.headerLength;
    if (hl < IP_MIN_HEADER_LEN) return new WireError('ipv4', 'bad-header-length', `IHL ${hl >> 2}`);
    const total = p.totalLength;
    if (total < hl) return new WireError('ipv4', 'bad-total-length', `total length ${total} < header ${hl}`);
    if (total > len) return new WireError('ipv4', 'bad-total-length', `total length ${total} > ${len} bytes`);
    if (p.moreFragments || p.fragmentOffset !== 0) {
      return new WireError('ipv4', 'fragment', `MF ${p.moreFragments ? 1 : 0} offset ${p.fragmentOffset}`);
    }
    return p;
  }

  get version(): number {
    return this.buf[this.off + IP_VER_IHL]! >> 4;
  }
  /** Header length in bytes. */
  get headerLength(): number {
    return (this.buf[this.off + IP_VER_IHL]! & 0x0f) << 2;
  }
  get tos(): number {
    return this.buf[this.off + IP_TOS]!;
  }
  get ecn(): number {
    return this.buf[this.off + IP_TOS]! & 0x03;
  }
  get totalLength(): number {
    return this.buf.readUInt16BE(this.off + IP_TOTAL_LEN);
  }
  get id(): number {
    return this.buf.readUInt16BE(this.off + IP_ID);
  }
  get dontFragment(): boolean {
    return (this.buf.readUInt16BE(this.off + IP_FLAGS_FRAG) & IP_FLAG_DF) !== 0;
  }
  get moreFragments(): boolean {
    return (this.buf.readUInt16BE(this.off + IP_FLAGS_FRAG) & IP_FLAG_MF) !== 0;
  }
  get fragmentOffset(): number {
    return this.buf.readUInt16BE(this.off + IP_FLAGS_FRAG) & IP_FRAG_OFFSET_MASK;
  }
  get ttl(): number {
    return this.buf[this.off + IP_TTL]!;
  }
  get protocol(): number {
    return this.buf[this.off + IP_PROTOCOL]!;
  }
  get checksum(): number {
    return this.buf.readUInt16BE(this.off + IP_CHECKSUM);
  }
  get src(): number {
    return this.buf.readUInt32BE(this.off + IP_SRC);
  }
  get dst(): number {
    return this.buf.readUInt32BE(this.off + IP_DST);
  }
  /** Offset of the transport header in `buf`. */
  get payloadOffset(): number {
    return this.off + this.headerLength;
  }
  get payloadLength(): number {
    return this.totalLength - this.headerLength;
  }

  /** True when the header checksum is correct. */
  checksumValid(): boolean {
    return checksum(this.buf, this.off, this.headerLength) === 0;
  }
  /** Recomputes the header checksum from scratch. */
  fillChecksum(): void {
    this.buf.writeUInt16BE(0, this.off + IP_CHECKSUM);
    this.buf.writeUInt16BE(checksum(this.buf, this.off, this.headerLength), this.off + IP_CHECKSUM);
  }

  /** Rewrites the source address, updating the header checksum incrementally. */
  setSrc(addr: number): void {
    this.rewrite32(IP_SRC, addr);
  }
  /** Rewrites the destination address, updating the header checksum incrementally. */
  setDst(addr: number): void {
    this.rewrite32(IP_DST, addr);
  }
  /** Rewrites the total length, updating the header checksum incrementally. */
  setTotalLength(len: number): void {
    const old = this.totalLength;
    this.buf.writeUInt16BE(len, this.off + IP_TOTAL_LEN);
    this.buf.writeUInt16BE(update16(this.checksum, old, len), this.off + IP_CHECKSUM);
  }
  setTtl(ttl: number): void {
    const at = this.off + IP_TTL;
    const oldWord = this.buf.readUInt16BE(at);
    this.buf[at] = ttl;
    this.buf.writeUInt16BE(update16(this.checksum, oldWord, this.buf.readUInt16BE(at)), this.off + IP_CHECKSUM);
  }

  private rewrite32(field: number, value: number): void {
    const old = this.buf.readUInt32BE(this.off + field);
    this.buf.writeUInt32BE(value >>> 0, this.off + field);
    this.buf.writeUInt16BE(update32(this.checksum, old, value >>> 0), this.off + IP_CHECKSUM);
  }
}

/** The high-level value of an IPv4 header (options are not supported on emit). */
export interface Ipv4Repr {
  tos: number;
  id: number;
  dontFragment: boolean;
  ttl: number;
  protocol: number;
  src: number;
  dst: number;
  /** Bytes after the header. */
  payloadLength: number;
}

export function parseIpv4Repr(p: Ipv4Packet): Ipv4Repr {
  return {
    tos: p.tos,
    id: p.id,
    dontFragment: p.dontFragment,
    ttl: p.ttl,
    protocol: p.protocol,
    src: p.src,
    dst: p.dst,
    payloadLength: p.payloadLength,
  };
}

/** Writes a 20-byte IPv4 header with a correct checksum into `buf` at `off`. */
export function emitIpv4Header(r: Ipv4Repr, buf: Buffer, off = 0): void {
  buf[off + IP_VER_IHL] = 0x45;
  buf[off + IP_TOS] = r.tos;
  buf.writeUInt16BE(IP_MIN_HEADER_LEN + r.payloadLength, off + IP_TOTAL_LEN);
  buf.writeUInt16BE(r.id, off + IP_ID);
  buf.writeUInt16BE(r.dontFragment ? IP_FLAG_DF : 0, off + IP_FLAGS_FRAG);
  buf[off + IP_TTL] = r.ttl;
  buf[off + IP_PROTOCOL] = r.protocol;
  buf.writeUInt16BE(0, off + IP_CHECKSUM);
  buf.writeUInt32BE(r.src >>> 0, off + IP_SRC);
  buf.writeUInt32BE(r.dst >>> 0, off + IP_DST);
  buf.writeUInt16BE(checksum(buf, off, IP_MIN_HEADER_LEN), off + IP_CHECKSUM);
}
