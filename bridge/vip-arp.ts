/**
 * ARP for the service address before a node claims it (RFC 5227): the probe
 * it broadcasts, and who else answers for the address; and for an IPv6 service
 * address the same by neighbour discovery (wire/ndisc.ts), with the frames
 * that announce a claim. (The active node's
 * answers to the LAN's requests come from a thread of their own: io/presence.ts.)
 * Pure: frames in and out.
 */
import { ipAddrBytes, ipv4ToString, type ServiceAddresses } from '../net/addr.js';
import { ArpPacket, ARP_REPLY, ARP_REQUEST, emitArp, gratuitousArpFrame } from './wire/arp.js';
import { addressClaimer, dadProbe, unsolicitedAdvertisement } from './wire/ndisc.js';
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

/**
 * The frames that announce the service at `mac` (a takeover, a claim, a return): a
 * gratuitous ARP, and for IPv6 an unsolicited neighbour advertisement, override set.
 */
export function announcementFrames(mac: Uint8Array, vips: ServiceAddresses): Buffer[] {
  const v4 = gratuitousArpFrame(mac, vips.v4);
  return vips.v6 === null ? [v4] : [v4, unsolicitedAdvertisement(mac, ipAddrBytes(vips.v6))];
}

/** The probes before a claim: ARP's (RFC 5227), and duplicate address detection's for IPv6 (RFC 4862). */
export function claimProbeFrames(mac: Uint8Array, vips: ServiceAddresses): Buffer[] {
  const v4 = arpProbeFrame(mac, vips.v4);
  return vips.v6 === null ? [v4] : [v4, dadProbe(mac, ipAddrBytes(vips.v6))];
}

/** The MAC of another station than `self` that claims one of the service's addresses, or null. */
export function serviceClaimer(frame: Buffer, vips: ServiceAddresses, self: string): string | null {
  return (
    vipClaimer(frame, vips.v4, self) ?? (vips.v6 === null ? null : addressClaimer(frame, ipAddrBytes(vips.v6), self))
  );
}

/** The capture filter that sees those claims: ARP for the IPv4 address, neighbour advertisements for IPv6. */
export function claimCaptureFilter(vips: ServiceAddresses): string {
  const arp = `arp and arp host ${ipv4ToString(vips.v4)}`;
  // ICMPv6 type 136 right after the fixed header (neighbour discovery carries no extension headers).
  return vips.v6 === null ? arp : `(${arp}) or (icmp6 and ip6[40] == 136)`;
}
