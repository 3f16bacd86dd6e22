/**
 * IPv6 neighbour discovery (RFC 4861) for the service address, the IPv6
 * counterparts of gratuitous ARP and the ARP probe: the unsolicited neighbour
 * advertisement a node taking the address sends (override set, so every
 * neighbour's cache moves to its MAC), the duplicate address detection probe
 * (RFC 4862 §5.4.2: a solicitation from the unspecified address) that asks
 * whether someone holds it, and the advertisement that says someone does.
 * ICMPv6's checksum covers the IPv6 pseudo header. Pure: frames in and out.
 */
import { addressSum6, checksum } from './checksum.js';
import { EthernetFrame, ETHERTYPE_IPV6, emitEthernet } from './ethernet.js';
import { WireError } from './error.js';
import { emitIpv6Header, IP6_HEADER_LEN, Ipv6Packet } from './ipv6.js';
import { macToString } from '../../net/addr.js';

export const NH_ICMPV6 = 58;
export const ICMP6_NEIGHBOUR_SOLICITATION = 135;
export const ICMP6_NEIGHBOUR_ADVERTISEMENT = 136;
/** Neighbour discovery packets are sent, and accepted, only with this hop limit (RFC 4861 §7.1). */
export const NDISC_HOP_LIMIT = 255;

// ICMPv6 message: type (1), code (1), checksum (2); NS and NA: flags/reserved (4), target (16), options.
const ICMP_TYPE = 0;
const ICMP_CODE = 1;
const ICMP_CHECKSUM = 2;
const ND_FLAGS = 4;
const ND_TARGET = 8;
const ND_OPTIONS = 24;
export const NA_FLAG_ROUTER = 0x80;
export const NA_FLAG_SOLICITED = 0x40;
export const NA_FLAG_OVERRIDE = 0x20;
// Options: type (1), length in 8-octet units (1).
export const ND_OPT_SOURCE_LLADDR = 1;
export const ND_OPT_TARGET_LLADDR = 2;
const LLADDR_OPT_LEN = 8;

const ALL_NODES = Buffer.from('ff020000000000000000000000000001', 'hex');
const UNSPECIFIED = Buffer.alloc(16);

/** The solicited-node multicast address of `addr` (RFC 4291 §2.7.1): ff02::1:ff and its last 24 bits. */
export function solicitedNode(addr: Uint8Array): Buffer {
  const out = Buffer.from('ff0200000000000000000001ff000000', 'hex');
  out.set(addr.subarray(13, 16), 13);
  return out;
}

/** The Ethernet address of an IPv6 multicast group (RFC 2464 §7): 33:33 and its last 32 bits. */
export function multicastMac(group: Uint8Array): Buffer {
  return Buffer.from([0x33, 0x33, group[12]!, group[13]!, group[14]!, group[15]!]);
}

function icmp6Frame(srcMac: Uint8Array, src: Uint8Array, dst: Uint8Array, msg: Buffer): Buffer {
  msg.writeUInt16BE(0, ICMP_CHECKSUM);
  msg.writeUInt16BE(checksum(msg, 0, msg.length, addressSum6(src, dst) + NH_ICMPV6 + msg.length), ICMP_CHECKSUM);
  const ip = Buffer.alloc(IP6_HEADER_LEN + msg.length);
  emitIpv6Header(
    {
      trafficClass: 0,
      flowLabel: 0,
      nextHeader: NH_ICMPV6,
      hopLimit: NDISC_HOP_LIMIT,
      src,
      dst,
      payloadLength: msg.length,
    },
    ip,
    0,
  );
  msg.copy(ip, IP6_HEADER_LEN);
  return emitEthernet(multicastMac(dst), srcMac, ETHERTYPE_IPV6, ip);
}

/**
 * The unsolicited neighbour advertisement (RFC 4861 §7.2.6) of a node that takes
 * `addr`: to all nodes, override set, not solicited, its MAC as the target's.
 */
export function unsolicitedAdvertisement(mac: Uint8Array, addr: Uint8Array): Buffer {
  const msg = Buffer.alloc(ND_OPTIONS + LLADDR_OPT_LEN);
  msg[ICMP_TYPE] = ICMP6_NEIGHBOUR_ADVERTISEMENT;
  msg[ICMP_CODE] = 0;
  msg[ND_FLAGS] = NA_FLAG_OVERRIDE;
  msg.set(addr.subarray(0, 16), ND_TARGET);
  msg[ND_OPTIONS] = ND_OPT_TARGET_LLADDR;
  msg[ND_OPTIONS + 1] = 1;
  msg.set(mac.subarray(0, 6), ND_OPTIONS + 2);
  return icmp6Frame(mac, addr, ALL_NODES, msg);
}

/**
 * The duplicate address detection probe for `addr` (RFC 4862 §5.4.2): a
 * solicitation from the unspecified address to its solicited-node group, with
 * no source link-layer option. A node holding `addr` answers with an
 * advertisement to all nodes.
 */
export function dadProbe(mac: Uint8Array, addr: Uint8Array): Buffer {
  const msg = Buffer.alloc(ND_OPTIONS);
  msg[ICMP_TYPE] = ICMP6_NEIGHBOUR_SOLICITATION;
  msg.set(addr.subarray(0, 16), ND_TARGET);
  return icmp6Frame(mac, UNSPECIFIED, solicitedNode(addr), msg);
}

/** A neighbour discovery message, parsed far enough to act on. */
export interface NdiscMessage {
  type: number;
  flags: number;
  target: Buffer;
  /** The link-layer address option's (source for NS, target for NA), or null. */
  lladdr: string | null;
  srcMac: string;
}

/**
 * Parses an Ethernet frame as a neighbour solicitation or advertisement:
 * IPv6 with hop limit 255, ICMPv6 code 0, a valid checksum, whole options;
 * null when it is not one.
 */
export function parseNdisc(frame: Buffer): NdiscMessage | null {
  const eth = EthernetFrame.parse(frame);
  if (eth instanceof WireError || eth.etherType !== ETHERTYPE_IPV6) return null;
  const ip = Ipv6Packet.parse(frame, eth.payloadOffset);
  if (ip instanceof WireError || ip.protocol !== NH_ICMPV6 || ip.hopLimit !== NDISC_HOP_LIMIT) return null;
  const at = ip.payloadOffset;
  const len = ip.transportLength;
  if (len < ND_OPTIONS) return null;
  const type = frame[at + ICMP_TYPE]!;
  if (type !== ICMP6_NEIGHBOUR_SOLICITATION && type !== ICMP6_NEIGHBOUR_ADVERTISEMENT) return null;
  if (frame[at + ICMP_CODE] !== 0) return null;
  if (checksum(frame, at, len, addressSum6(ip.src, ip.dst) + NH_ICMPV6 + len) !== 0) return null;
  let lladdr: string | null = null;
  const want = type === ICMP6_NEIGHBOUR_SOLICITATION ? ND_OPT_SOURCE_LLADDR : ND_OPT_TARGET_LLADDR;
  for (let o = at + ND_OPTIONS; o < at + len;) {
    const units = frame[o + 1];
    if (units === undefined || units === 0 || o + units * 8 > at + len) return null; // RFC 4861 §4.6: silently discard
    if (frame[o] === want && units === 1) lladdr = macToString(frame, o + 2);
    o += units * 8;
  }
  return {
    type,
    flags: frame[at + ND_FLAGS]!,
    target: Buffer.from(frame.subarray(at + ND_TARGET, at + ND_TARGET + 16)),
    lladdr,
    srcMac: eth.srcString,
  };
}

/**
 * The MAC of another station that says it holds `addr` — an advertisement for
 * it (its target link-layer address, else its frame's source) not from `self`
 * — or null: the IPv6 split-brain check, as vipClaimer is for ARP.
 */
export function addressClaimer(frame: Buffer, addr: Uint8Array, self: string): string | null {
  const m = parseNdisc(frame);
  if (!m || m.type !== ICMP6_NEIGHBOUR_ADVERTISEMENT || !m.target.equals(addr)) return null;
  const who = m.lladdr ?? m.srcMac;
  return who !== self.toLowerCase() ? who : null;
}
