/** What the IPv6 tests share: a random address, and an upper-layer checksum summed the slow way. */
import fc from 'fast-check';
import { checksum } from '../../bridge/wire/checksum.js';
import { IP6_HEADER_LEN, IP6_PAYLOAD_LEN, IP6_SRC } from '../../bridge/wire/ipv6.js';

export const addr16 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a));

/**
 * The checksum over the IPv6 packet `ip` (from its fixed header) of the upper-layer
 * message at `upperAt` to the end of its payload, with the RFC 8200 §8.1 pseudo header
 * laid out in bytes: 0 when the message's checksum is right.
 */
export function naiveSum6(ip: Buffer, upperAt: number, nextHeader: number): number {
  const msg = ip.subarray(upperAt, IP6_HEADER_LEN + ip.readUInt16BE(IP6_PAYLOAD_LEN));
  const pseudo = Buffer.alloc(40);
  ip.copy(pseudo, 0, IP6_SRC, IP6_SRC + 32);
  pseudo.writeUInt32BE(msg.length, 32);
  pseudo[39] = nextHeader;
  const all = Buffer.concat([pseudo, msg]);
  return checksum(all, 0, all.length);
}
