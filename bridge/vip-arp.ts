/**
 * ARP for the service address before a node claims it (RFC 5227): the probe
 * it broadcasts, and who else answers for the address. (The active node's
 * answers to the LAN's requests come from a thread of their own: io/presence.ts.)
 * Pure: frames in and out.
 */
import { ArpPacket, ARP_REPLY, ARP_REQUEST, emitArp } from './wire/arp.js';
import { EthernetFrame, ETHERTYPE_ARP, emitEthernet } from './wire/ethernet.js';
import { WireError } from './wire/error.js';

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
