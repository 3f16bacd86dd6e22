/** The split-brain probe for the service address and the answer that says someone else holds it (bridge/vip-arp.ts). */
import { describe, expect, it } from 'vitest';
import { ipv4, mac } from '../../net/addr.js';
import { ArpPacket, ARP_REPLY, ARP_REQUEST, emitArp, gratuitousArpFrame } from '../../bridge/wire/arp.js';
import { EthernetFrame, ETHERTYPE_ARP, emitEthernet } from '../../bridge/wire/ethernet.js';
import { WireError } from '../../bridge/wire/error.js';
import { arpProbeFrame, vipClaimer } from '../../bridge/vip-arp.js';

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
