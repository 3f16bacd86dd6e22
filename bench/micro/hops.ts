/**
 * Shared by the benches that time a packet's hops from captures on the
 * client, the secondary and the primary (one kernel, one clock): the
 * captured TCP segments, percentiles, and the flags they take.
 */
import type { CapturedFrame } from '../../rig/capture.js';
import { EthernetFrame, ETHERTYPE_IPV4 } from '../../bridge/wire/ethernet.js';
import { WireError } from '../../bridge/wire/error.js';
import { Ipv4Packet } from '../../bridge/wire/ipv4.js';
import { TcpSegment } from '../../bridge/wire/tcp.js';
import { optionValue } from '../../rig/main.js';

/** A captured TCP segment: when (µs), its addresses, source MAC, ports, sequence number, flags, payload length. */
export interface Seen {
  time: number;
  src: number;
  dst: number;
  srcMac: string;
  sport: number;
  dport: number;
  seq: number;
  flags: number;
  len: number;
}

/** The TCP segments of captured frames (a frame cut short by the snaplen is parsed as if the rest were there). */
export function segments(frames: CapturedFrame[]): Seen[] {
  const out: Seen[] = [];
  for (const f of frames) {
    const eth = EthernetFrame.parse(f.data);
    if (eth instanceof WireError || eth.etherType !== ETHERTYPE_IPV4) continue;
    const data =
      f.originalLength > f.data.length
        ? Buffer.concat([f.data, Buffer.alloc(Math.min(f.originalLength, 65549) - f.data.length)])
        : f.data;
    const ip = Ipv4Packet.parse(data, eth.payloadOffset);
    if (ip instanceof WireError) continue;
    const t = TcpSegment.fromIpv4(ip);
    if (t instanceof WireError) continue;
    out.push({
      time: f.time * 1e6,
      src: ip.src,
      dst: ip.dst,
      srcMac: eth.srcString,
      sport: t.srcPort,
      dport: t.dstPort,
      seq: t.seq,
      flags: t.flags,
      len: t.payloadLength,
    });
  }
  return out;
}

/** The p-th percentile of the finite values, rounded; NaN when there are none. */
export function pct(xs: number[], p: number): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!) : NaN;
}

/** The positional arguments and `--name value` flags of the command line (only the names listed are flags). */
export function cliArgs(
  argv: string[],
  names: readonly string[],
): { args: string[]; flag: (name: string, def: string) => string } {
  const args = argv.filter((a, i) => !names.includes(a) && !names.includes(argv[i - 1]!));
  return { args, flag: (name, def) => optionValue(argv, name) ?? def };
}
