/**
 * The merger's own cost, no I/O: N request/answer exchanges of 100 B on one
 * merged connection — P's segment held, S's covers it, P's released — fed
 * straight to Merger; prints the time per P+S pair. What the data path
 * around it adds (wake-ups, copies, verdicts) is rr-latency's and
 * profile-bridges' to measure. --ipv6: the connection over IPv6.
 *
 *   npm run build && node dist/bench/micro/merger-cost.js [N=200000] [--ipv6]
 */
import { Merger } from '../../bridge/primary/merger.js';
import { ipAddr, type IpAddr } from '../../net/addr.js';
import { buildIpTcp } from '../../bridge/wire/ip.js';
import { TCP_ACK_FLAG, TCP_PSH, TCP_SYN } from '../../bridge/wire/tcp.js';
import { runAsProgram, UsageError } from '../../rig/main.js';

const VIP = ipAddr('192.0.2.100');
const VIP6 = ipAddr('2001:db8::100') as string;
let service: IpAddr = VIP;
let client: IpAddr = ipAddr('192.0.2.10');
const ISN_P = 1000;
const ISN_S = 900_000;

function segment(seq: number, flags: number, payload: Buffer, syn = false): Buffer {
  return buildIpTcp(
    { src: service, dst: client },
    {
      srcPort: 7000,
      dstPort: 40000,
      seq,
      ack: 5001,
      flags,
      window: 500,
      urgent: 0,
      options: syn
        ? [
            { kind: 'mss', mss: 1460 },
            { kind: 'timestamp', tsval: 5, tsecr: 6 },
          ]
        : [{ kind: 'timestamp', tsval: 5, tsecr: 6 }],
      payload,
    },
  );
}

export async function main(args: string[]): Promise<number> {
  const ipv6 = args.includes('--ipv6');
  const rest = args.filter((a) => a !== '--ipv6');
  const n = Number(rest[0] ?? 200_000);
  if (!Number.isInteger(n) || n < 1 || rest.length > 1) throw new UsageError('usage: merger-cost.js [N] [--ipv6]');
  if (ipv6) [service, client] = [VIP6, ipAddr('2001:db8::10')];
  const m = new Merger(
    { service: VIP as number, service6: VIP6 },
    { accept() {}, drop() {}, send() {}, toSecondary() {} },
  );
  m.fromPrimary(1, segment(ISN_P, TCP_SYN | TCP_ACK_FLAG, Buffer.alloc(0), true), false, 0, 'verified');
  m.fromSecondary(2, segment(ISN_S, TCP_SYN | TCP_ACK_FLAG, Buffer.alloc(0), true), client, 0, 'verified');
  const body = Buffer.alloc(100, 7);
  const ps: Buffer[] = [];
  const ss: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    ps.push(segment(ISN_P + 1 + i * 100, TCP_ACK_FLAG | TCP_PSH, body));
    ss.push(segment(ISN_S + 1 + i * 100, TCP_ACK_FLAG | TCP_PSH, body));
  }
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    m.fromPrimary(10 + 2 * i, ps[i]!, false, 1, 'verified');
    m.fromSecondary(11 + 2 * i, ss[i]!, client, 1, 'verified');
  }
  const ns = Number(process.hrtime.bigint() - t0) / n;
  console.log(
    `${n} request/answer pairs of 100 B over ${ipv6 ? 'IPv6' : 'IPv4'} through the merger: ${(ns / 1000).toFixed(2)} µs per P+S pair (${m.stats.releasedSegments - 1} released)`,
  );
  return m.stats.releasedSegments === n + 1 ? 0 : 1;
}

runAsProgram(import.meta.url, main);
