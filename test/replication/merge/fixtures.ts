/** What the merger's tests share: two servers' initial sequence numbers, an established connection, both families. */
import { afterEach, beforeEach, describe } from 'vitest';
import { seqAdd } from '../../../bridge/wire/seq.js';
import { WireError } from '../../../bridge/wire/error.js';
import { parseIpTcp } from '../../../bridge/wire/ip.js';
import type { TcpSegment } from '../../../bridge/wire/tcp.js';
import { FAMILIES, Pair, useFamily, V4, type Family } from '../../../rig/in-process/harness.js';

export const B = (s: string) => Buffer.from(s);
/** A test packet edited by hand gets its checksums filled in again (the merger verifies them). */
export function refill(pkt: Buffer): void {
  const p = parseIpTcp(pkt);
  if (p instanceof WireError) throw p;
  if ('fillChecksum' in p.ip) p.ip.fillChecksum(); // IPv4's; IPv6 has none
  p.tcp.fillChecksum();
}
/** The TCP segment of a packet of either family. */
export function tcpOf(pkt: Buffer): TcpSegment {
  const p = parseIpTcp(pkt);
  if (p instanceof WireError) throw p;
  return p.tcp;
}
export const ISN_P = 1_000_000;
export const ISN_S = 7_000_000;

export function established(
  p: Partial<ConstructorParameters<typeof Pair>[0]> = {},
  s: Partial<ConstructorParameters<typeof Pair>[1]> = {},
) {
  const pair = new Pair({ isn: ISN_P, ts: 50_000, ...p }, { isn: ISN_S, ts: 90_000, ...s });
  const cisn = pair.handshake();
  return { pair, cack: seqAdd(cisn, 1) };
}

/** `body`'s tests once over IPv4 and once over IPv6: each pair and client segment made without a family named is of that family. */
export function eachFamily(body: (fam: Family) => void): void {
  describe.each(FAMILIES)('over %s', (_name, fam) => {
    beforeEach(() => useFamily(fam));
    afterEach(() => useFamily(V4));
    body(fam);
  });
}
