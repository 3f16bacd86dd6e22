/** Neighbour discovery for the service address (bridge/wire/ndisc.ts): the IPv6 GARP, the DAD probe, who claims an address. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ipv6, ipv6ToString, mac, macToString } from '../../net/addr.js';
import { addr16, naiveSum6 } from './pseudo6.js';
import { WireError } from '../../bridge/wire/error.js';
import { EthernetFrame, ETH_HEADER_LEN } from '../../bridge/wire/ethernet.js';
import { IP6_HEADER_LEN, IP6_HOP_LIMIT, Ipv6Packet } from '../../bridge/wire/ipv6.js';
import {
  addressClaimer,
  dadProbe,
  ICMP6_NEIGHBOUR_ADVERTISEMENT,
  ICMP6_NEIGHBOUR_SOLICITATION,
  NA_FLAG_OVERRIDE,
  NA_FLAG_SOLICITED,
  NH_ICMPV6,
  parseNdisc,
  solicitedNode,
  unsolicitedAdvertisement,
} from '../../bridge/wire/ndisc.js';

const mac6 = fc
  .uint8Array({ minLength: 6, maxLength: 6 })
  .map((a) => Buffer.from([(a[0]! & 0xfe) | 0x02, ...a.subarray(1)]));

describe('neighbour discovery frames', () => {
  it('the unsolicited advertisement: to all nodes, hop limit 255, override set and not solicited, our MAC as the target’s', () => {
    fc.assert(
      fc.property(mac6, addr16, (m, a) => {
        const f = unsolicitedAdvertisement(m, a);
        const eth = EthernetFrame.parse(f);
        if (eth instanceof WireError) throw eth;
        expect(eth.dstString).toBe('33:33:00:00:00:01');
        expect(eth.srcString).toBe(macToString(m));
        const ip = Ipv6Packet.parse(f, eth.payloadOffset);
        if (ip instanceof WireError) throw ip;
        expect(ip.dstString).toBe('ff02::1');
        expect(ip.src).toEqual(a);
        expect(ip.hopLimit).toBe(255);
        expect(naiveSum6(f.subarray(ETH_HEADER_LEN), IP6_HEADER_LEN, NH_ICMPV6)).toBe(0);
        const n = parseNdisc(f);
        expect(n).toMatchObject({ type: ICMP6_NEIGHBOUR_ADVERTISEMENT, target: a, lladdr: macToString(m) });
        expect(n!.flags & NA_FLAG_OVERRIDE).toBeTruthy();
        expect(n!.flags & NA_FLAG_SOLICITED).toBeFalsy();
      }),
    );
  });

  it('the DAD probe: a solicitation from :: to the solicited-node group, no link-layer option', () => {
    fc.assert(
      fc.property(mac6, addr16, (m, a) => {
        const f = dadProbe(m, a);
        const ip = Ipv6Packet.parse(f, ETH_HEADER_LEN);
        if (ip instanceof WireError) throw ip;
        expect(ipv6ToString(ip.src)).toBe('::');
        expect(ip.dst).toEqual(solicitedNode(a));
        expect(f.subarray(0, 6)).toEqual(Buffer.from([0x33, 0x33, 0xff, a[13]!, a[14]!, a[15]!]));
        expect(naiveSum6(f.subarray(ETH_HEADER_LEN), IP6_HEADER_LEN, NH_ICMPV6)).toBe(0);
        expect(parseNdisc(f)).toMatchObject({ type: ICMP6_NEIGHBOUR_SOLICITATION, target: a, lladdr: null });
      }),
    );
    // RFC 4291 §2.7.1's example.
    expect(ipv6ToString(solicitedNode(ipv6('4037::01:800:200e:8c6c')))).toBe('ff02::1:ff0e:8c6c');
  });

  it('who claims the address: another station’s advertisement for it; not ours, not a solicitation, not another target, not one with a bad checksum or hop limit', () => {
    const A = ipv6('2001:db8::100');
    const SELF = '02:00:00:00:00:01';
    const OTHER = '02:00:00:00:00:02';
    expect(addressClaimer(unsolicitedAdvertisement(mac(OTHER), A), A, SELF)).toBe(OTHER);
    expect(addressClaimer(unsolicitedAdvertisement(mac(SELF), A), A, SELF.toUpperCase())).toBeNull();
    expect(addressClaimer(dadProbe(mac(OTHER), A), A, SELF)).toBeNull();
    expect(addressClaimer(unsolicitedAdvertisement(mac(OTHER), ipv6('2001:db8::101')), A, SELF)).toBeNull();
    const bad = unsolicitedAdvertisement(mac(OTHER), A);
    bad.writeUInt8(bad.readUInt8(bad.length - 1) ^ 0xff, bad.length - 1);
    expect(addressClaimer(bad, A, SELF)).toBeNull();
    const hop = unsolicitedAdvertisement(mac(OTHER), A);
    hop[ETH_HEADER_LEN + IP6_HOP_LIMIT] = 254;
    expect(addressClaimer(hop, A, SELF)).toBeNull();
    expect(addressClaimer(Buffer.alloc(90), A, SELF)).toBeNull();
  });
});
