/**
 * What reaches the primary's input queue, told apart by its addresses (pure): the
 * client's segments go to the service address; the secondary's copies come from it on
 * the kernel path (to their client, unchanged) or to the primary's own address on the
 * pcap path (the client in the divert option). Either IP family, by the version nibble.
 */
import { ip6Addr, isIp6, type IpAddr, type ServiceAddresses } from '../../net/addr.js';
import { divertedClient } from '../wire/divert.js';
import { WireError } from '../wire/error.js';
import { parseIpTcp } from '../wire/ip.js';
import { IP_DST, IP_MIN_HEADER_LEN, IP_SRC } from '../wire/ipv4.js';
import { IP6_DST, IP6_HEADER_LEN, IP6_SRC } from '../wire/ipv6.js';

export type Inbound =
  | { from: 'client' }
  /** `client`: whom S's copy answers; null when a pcap-path copy names none (no divert option). */
  | { from: 'secondary'; path: 'kernel' | 'pcap'; client: IpAddr | null };

/** The client's: one shared answer, no allocation per segment. */
const FROM_CLIENT: Inbound = Object.freeze({ from: 'client' });

/** Where a packet of the input queue comes from; null for neither family's header. */
export function classifyInbound(pkt: Buffer, vip: ServiceAddresses): Inbound | null {
  const v = pkt.length ? pkt[0]! >> 4 : 0;
  let src: IpAddr;
  let dst: IpAddr;
  let service: IpAddr | null;
  if (v === 4 && pkt.length >= IP_MIN_HEADER_LEN) {
    [src, dst, service] = [pkt.readUInt32BE(IP_SRC), pkt.readUInt32BE(IP_DST), vip.v4];
  } else if (v === 6 && pkt.length >= IP6_HEADER_LEN) {
    [src, dst, service] = [ip6Addr(pkt, IP6_SRC), ip6Addr(pkt, IP6_DST), vip.v6];
  } else return null;
  if (dst === service) return FROM_CLIENT;
  if (src === service) return { from: 'secondary', path: 'kernel', client: dst };
  const p = parseIpTcp(pkt);
  const client = p instanceof WireError ? null : divertedClient(p.tcp);
  // A copy's option names a client of its own family, or none.
  return { from: 'secondary', path: 'pcap', client: client !== null && isIp6(client) === (v === 6) ? client : null };
}
