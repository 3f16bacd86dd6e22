/** Ethernet II frame: a view over a Buffer, field offsets named once here. */
import { macToString } from '../../net/addr.js';
import { WireError } from './error.js';

export const ETH_DST = 0; // 6 bytes
export const ETH_SRC = 6; // 6 bytes
export const ETH_TYPE = 12; // 2 bytes
export const ETH_HEADER_LEN = 14;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_VLAN = 0x8100;

export class EthernetFrame {
  constructor(
    readonly buf: Buffer,
    readonly off = 0,
    readonly len = buf.length - off,
  ) {}

  /** Checks that `len` bytes at `off` hold an Ethernet header. */
  static parse(buf: Buffer, off = 0, len = buf.length - off): EthernetFrame | WireError {
    if (off < 0 || len < ETH_HEADER_LEN || off + len > buf.length) {
      return new WireError('ethernet', 'truncated', `${len} bytes, need ${ETH_HEADER_LEN}`);
    }
    return new EthernetFrame(buf, off, len);
  }

  get dst(): Buffer {
    return this.buf.subarray(this.off + ETH_DST, this.off + ETH_DST + 6);
  }
  get src(): Buffer {
    return this.buf.subarray(this.off + ETH_SRC, this.off + ETH_SRC + 6);
  }
  get dstString(): string {
    return macToString(this.buf, this.off + ETH_DST);
  }
  get srcString(): string {
    return macToString(this.buf, this.off + ETH_SRC);
  }
  get etherType(): number {
    return this.buf.readUInt16BE(this.off + ETH_TYPE);
  }
  set etherType(v: number) {
    this.buf.writeUInt16BE(v, this.off + ETH_TYPE);
  }
  setDst(mac: Uint8Array): void {
    this.buf.set(mac.subarray(0, 6), this.off + ETH_DST);
  }
  setSrc(mac: Uint8Array): void {
    this.buf.set(mac.subarray(0, 6), this.off + ETH_SRC);
  }
  /** Offset of the payload in `buf`. */
  get payloadOffset(): number {
    return this.off + ETH_HEADER_LEN;
  }
  get payloadLength(): number {
    return this.len - ETH_HEADER_LEN;
  }
  get payload(): Buffer {
    return this.buf.subarray(this.payloadOffset, this.off + this.len);
  }
}

export interface EthernetRepr {
  dst: string;
  src: string;
  etherType: number;
}

/** Writes an Ethernet header for `repr` in front of `payload` into a new Buffer. */
export function emitEthernet(dst: Uint8Array, src: Uint8Array, etherType: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(ETH_HEADER_LEN + payload.length);
  out.set(dst.subarray(0, 6), ETH_DST);
  out.set(src.subarray(0, 6), ETH_SRC);
  out.writeUInt16BE(etherType, ETH_TYPE);
  out.set(payload, ETH_HEADER_LEN);
  return out;
}
