/** ARP for IPv4 over Ethernet (RFC 826), and gratuitous ARP (RFC 5227 §3). */
import { BROADCAST_MAC, macToString } from '../../net/addr.js';
import { emitEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from './ethernet.js';
import { WireError } from './error.js';

export const ARP_HTYPE = 0; // 2
export const ARP_PTYPE = 2; // 2
export const ARP_HLEN = 4; // 1
export const ARP_PLEN = 5; // 1
export const ARP_OPER = 6; // 2
export const ARP_SHA = 8; // 6
export const ARP_SPA = 14; // 4
export const ARP_THA = 18; // 6
export const ARP_TPA = 24; // 4
export const ARP_LEN = 28;

export const ARP_HTYPE_ETHERNET = 1;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

export class ArpPacket {
  constructor(
    readonly buf: Buffer,
    readonly off = 0,
  ) {}

  static parse(buf: Buffer, off = 0, len = buf.length - off): ArpPacket | WireError {
    if (off < 0 || len < ARP_LEN || off + len > buf.length) {
      return new WireError('arp', 'truncated', `${len} bytes, need ${ARP_LEN}`);
    }
    const p = new ArpPacket(buf, off);
    if (p.htype !== ARP_HTYPE_ETHERNET || p.ptype !== ETHERTYPE_IPV4 || p.hlen !== 6 || p.plen !== 4) {
      return new WireError(
        'arp',
        'bad-arp',
        `htype ${p.htype} ptype 0x${p.ptype.toString(16)} hlen ${p.hlen} plen ${p.plen}`,
      );
    }
    return p;
  }

  get htype(): number {
    return this.buf.readUInt16BE(this.off + ARP_HTYPE);
  }
  get ptype(): number {
    return this.buf.readUInt16BE(this.off + ARP_PTYPE);
  }
  get hlen(): number {
    return this.buf[this.off + ARP_HLEN]!;
  }
  get plen(): number {
    return this.buf[this.off + ARP_PLEN]!;
  }
  get oper(): number {
    return this.buf.readUInt16BE(this.off + ARP_OPER);
  }
  get senderMac(): string {
    return macToString(this.buf, this.off + ARP_SHA);
  }
  get senderIp(): number {
    return this.buf.readUInt32BE(this.off + ARP_SPA);
  }
  get targetMac(): string {
    return macToString(this.buf, this.off + ARP_THA);
  }
  get targetIp(): number {
    return this.buf.readUInt32BE(this.off + ARP_TPA);
  }
}

export interface ArpRepr {
  oper: number;
  senderMac: Uint8Array;
  senderIp: number;
  targetMac: Uint8Array;
  targetIp: number;
}

export function emitArp(r: ArpRepr): Buffer {
  const b = Buffer.alloc(ARP_LEN);
  b.writeUInt16BE(ARP_HTYPE_ETHERNET, ARP_HTYPE);
  b.writeUInt16BE(ETHERTYPE_IPV4, ARP_PTYPE);
  b[ARP_HLEN] = 6;
  b[ARP_PLEN] = 4;
  b.writeUInt16BE(r.oper, ARP_OPER);
  b.set(r.senderMac.subarray(0, 6), ARP_SHA);
  b.writeUInt32BE(r.senderIp >>> 0, ARP_SPA);
  b.set(r.targetMac.subarray(0, 6), ARP_THA);
  b.writeUInt32BE(r.targetIp >>> 0, ARP_TPA);
  return b;
}

/**
 * A gratuitous ARP announcing that `ip` is at `mac`, as a broadcast Ethernet
 * frame. Sent as a request (RFC 5227 §3 "ARP Announcement": SPA = TPA), which
 * Linux neighbours accept to update an existing entry (and to create one with
 * arp_accept=1). `reply` sends the reply form, as some routers prefer.
 */
export function gratuitousArpFrame(mac: Uint8Array, ip: number, reply = false): Buffer {
  const arp = emitArp({
    oper: reply ? ARP_REPLY : ARP_REQUEST,
    senderMac: mac,
    senderIp: ip,
    targetMac: reply ? BROADCAST_MAC : Buffer.alloc(6),
    targetIp: ip,
  });
  return emitEthernet(BROADCAST_MAC, mac, ETHERTYPE_ARP, arp);
}
