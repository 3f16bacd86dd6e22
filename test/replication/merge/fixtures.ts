/** What the merger's tests share: two servers' initial sequence numbers and an established connection. */
import { seqAdd } from '../../../bridge/wire/seq.js';
import { WireError } from '../../../bridge/wire/error.js';
import { parseIpv4Tcp } from '../../../bridge/wire/tcp.js';
import { Pair } from '../../../rig/in-process/harness.js';

export const B = (s: string) => Buffer.from(s);
/** A test packet edited by hand gets its checksums filled in again (the merger verifies them). */
export function refill(pkt: Buffer): void {
  const p = parseIpv4Tcp(pkt);
  if (p instanceof WireError) throw p;
  p.ip.fillChecksum();
  p.tcp.fillChecksum();
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
