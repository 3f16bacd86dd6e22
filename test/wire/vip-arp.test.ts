/** The split-brain probe for the service address and the answer that says someone else holds it (bridge/vip-arp.ts). */
import { describe, expect, it } from 'vitest';
import { ipAddr, ipAddrBytes, ipv4, mac } from '../../net/addr.js';
import { ArpPacket, ARP_REPLY, ARP_REQUEST, emitArp, gratuitousArpFrame } from '../../bridge/wire/arp.js';
import { EthernetFrame, ETHERTYPE_ARP, emitEthernet } from '../../bridge/wire/ethernet.js';
import { WireError } from '../../bridge/wire/error.js';
import {
  announcementFrames,
  arpProbeFrame,
  claimCaptureFilter,
  claimProbeFrames,
  serviceClaimer,
  vipClaimer,
} from '../../bridge/vip-arp.js';
import {
  ICMP6_NEIGHBOUR_ADVERTISEMENT,
  ICMP6_NEIGHBOUR_SOLICITATION,
  NA_FLAG_OVERRIDE,
  parseNdisc,
  unsolicitedAdvertisement,
} from '../../bridge/wire/ndisc.js';

const VIP = ipv4('192.0.2.100');
const SELF = '02:00:00:00:00:01';
const OTHER = '02:00:00:00:00:02';

function reply(senderMac: string, senderIp: number): Buffer {
  const arp = emitArp({
    oper: ARP_REPLY,
    senderMac: mac(senderMac),
    senderIp,
    targetMac: mac(SELF),
    targetIp: 0,
  });
  return emitEthernet(mac(SELF), mac(senderMac), ETHERTYPE_ARP, arp);
}

describe('the probe for the service address (RFC 5227)', () => {
  it('is broadcast, from our MAC, a request for the address with sender address 0', () => {
    const f = arpProbeFrame(mac(SELF), VIP);
    const eth = EthernetFrame.parse(f);
    if (eth instanceof WireError) throw eth;
    expect(eth.etherType).toBe(ETHERTYPE_ARP);
    expect(eth.dstString).toBe('ff:ff:ff:ff:ff:ff');
    expect(eth.srcString).toBe(SELF);
    const a = ArpPacket.parse(f, eth.payloadOffset);
    if (a instanceof WireError) throw a;
    expect(a.oper).toBe(ARP_REQUEST);
    expect(a.senderIp).toBe(0);
    expect(a.senderMac).toBe(SELF);
    expect(a.targetIp).toBe(VIP);
  });
});

describe('who claims the service address', () => {
  it('another station’s reply for the address: its MAC', () => {
    expect(vipClaimer(reply(OTHER, VIP), VIP, SELF)).toBe(OTHER);
  });
  it('our own reply (any case of our MAC), a reply for another address, a request, a frame that is no ARP: nobody', () => {
    expect(vipClaimer(reply(SELF, VIP), VIP, SELF.toUpperCase())).toBeNull();
    expect(vipClaimer(reply(OTHER, ipv4('192.0.2.101')), VIP, SELF)).toBeNull();
    expect(vipClaimer(gratuitousArpFrame(mac(OTHER), VIP), VIP, SELF)).toBeNull();
    expect(vipClaimer(Buffer.alloc(60), VIP, SELF)).toBeNull();
  });
});

describe('the service’s addresses of both families: announce, probe, and who else claims them', () => {
  const VIP6 = ipAddr('2001:db8::100') as string;
  const v4only = { v4: VIP, v6: null };
  const dual = { v4: VIP, v6: VIP6 };

  it('without an IPv6 address, the frames and the filter are IPv4’s alone, byte for byte', () => {
    expect(announcementFrames(mac(SELF), v4only)).toEqual([gratuitousArpFrame(mac(SELF), VIP)]);
    expect(claimProbeFrames(mac(SELF), v4only)).toEqual([arpProbeFrame(mac(SELF), VIP)]);
    expect(claimCaptureFilter(v4only)).toBe('arp and arp host 192.0.2.100');
  });

  it('with one: an unsolicited advertisement, override set, and a DAD probe, for it', () => {
    const [, na] = announcementFrames(mac(SELF), dual);
    const a = parseNdisc(na!);
    expect(a).toMatchObject({ type: ICMP6_NEIGHBOUR_ADVERTISEMENT, lladdr: SELF, srcMac: SELF });
    expect(a!.flags & NA_FLAG_OVERRIDE).toBe(NA_FLAG_OVERRIDE);
    expect(a!.target.equals(ipAddrBytes(VIP6))).toBe(true);
    const [, dad] = claimProbeFrames(mac(SELF), dual);
    const p = parseNdisc(dad!);
    expect(p).toMatchObject({ type: ICMP6_NEIGHBOUR_SOLICITATION, lladdr: null });
    expect(p!.target.equals(ipAddrBytes(VIP6))).toBe(true);
    expect(claimCaptureFilter(dual)).toBe('(arp and arp host 192.0.2.100) or (icmp6 and ip6[40] == 136)');
  });

  it('another station’s advertisement for the IPv6 address is a claim, our own and an IPv4-only node’s view are not', () => {
    const theirs = unsolicitedAdvertisement(mac(OTHER), ipAddrBytes(VIP6));
    expect(serviceClaimer(theirs, dual, SELF)).toBe(OTHER);
    expect(serviceClaimer(unsolicitedAdvertisement(mac(SELF), ipAddrBytes(VIP6)), dual, SELF)).toBeNull();
    expect(serviceClaimer(theirs, v4only, SELF)).toBeNull();
    expect(serviceClaimer(reply(OTHER, VIP), dual, SELF)).toBe(OTHER);
    const elsewhere = unsolicitedAdvertisement(mac(OTHER), ipAddrBytes(ipAddr('2001:db8::7') as string));
    expect(serviceClaimer(elsewhere, dual, SELF)).toBeNull();
  });
});
