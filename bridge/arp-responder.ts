/**
 * The active node answers ARP for the service address itself (DESIGN.md):
 * the kernel holds the VIP dormant on `lo` with ARP suppressed, so a dead
 * bridge stops claiming the VIP by itself and the survivor can take it over.
 * Pure: a request frame in, the reply frame out.
 */
import { ArpPacket, ARP_REPLY, ARP_REQUEST, emitArp } from './wire/arp.js';
import { EthernetFrame, ETHERTYPE_ARP, emitEthernet } from './wire/ethernet.js';
import { WireError } from './wire/error.js';

/** The reply to an ARP request for `vip`, or null if the frame is not one. */
export function arpReplyFor(frame: Buffer, vip: number, mac: Uint8Array): Buffer | null {
  const eth = EthernetFrame.parse(frame);
  if (eth instanceof WireError || eth.etherType !== ETHERTYPE_ARP) return null;
  const arp = ArpPacket.parse(frame, eth.payloadOffset);
  if (arp instanceof WireError || arp.oper !== ARP_REQUEST || arp.targetIp !== vip) return null;
  // A gratuitous request from someone else announcing the VIP is not a question.
  if (arp.senderIp === vip) return null;
  const requester = Buffer.from(frame.subarray(eth.payloadOffset + 8, eth.payloadOffset + 14));
  const reply = emitArp({
    oper: ARP_REPLY,
    senderMac: mac,
    senderIp: vip,
    targetMac: requester,
    targetIp: arp.senderIp,
  });
  return emitEthernet(requester, mac, ETHERTYPE_ARP, reply);
}

/** An ARP probe for `vip` (RFC 5227: sender address 0), broadcast from `mac`. */
export function arpProbeFrame(mac: Uint8Array, vip: number): Buffer {
  const probe = emitArp({ oper: ARP_REQUEST, senderMac: mac, senderIp: 0, targetMac: Buffer.alloc(6), targetIp: vip });
  return emitEthernet(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), mac, ETHERTYPE_ARP, probe);
}

/** The MAC (aa:bb:…) of an ARP reply claiming `vip` from another station than `self`, or null. */
export function vipClaimer(frame: Buffer, vip: number, self: string): string | null {
  const eth = EthernetFrame.parse(frame);
  if (eth instanceof WireError || eth.etherType !== ETHERTYPE_ARP) return null;
  const a = ArpPacket.parse(frame, eth.payloadOffset);
  if (a instanceof WireError || a.oper !== ARP_REPLY || a.senderIp !== vip) return null;
  return a.senderMac !== self.toLowerCase() ? a.senderMac : null;
}
