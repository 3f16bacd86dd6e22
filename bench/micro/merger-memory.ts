/**
 * The merger's memory per connection, no I/O: N connections fed straight to
 * Merger — both servers' SYN-ACKs, the client's ACK, a 14-byte request, a
 * 7-byte answer from each server (P's held, S's covers it), the client's
 * ACK — then the JS heap after a full collection, against the empty merger.
 * What the bridge's process adds around it (queues, BPF maps, the runtime)
 * is the scale bench's RSS figure.
 *
 *   npm run build && node --expose-gc dist/bench/micro/merger-memory.js [N=100000]
 */
import { Merger } from '../../bridge/primary/merger.js';
import { ipv4 } from '../../net/addr.js';
import { buildIpv4Tcp, TCP_ACK_FLAG, TCP_PSH, TCP_SYN } from '../../bridge/wire/tcp.js';
import type { TcpOption } from '../../bridge/wire/tcp-options.js';
import { runAsProgram, UsageError } from '../../rig/main.js';

const VIP = ipv4('192.0.2.100');
const PORT = 6379;
// Initial sequence numbers as random as real ones: above 2^31, where V8
// keeps a number in a box of its own (small ones would flatter the figure).
const ISN_P = 3_000_000_000;
const ISN_S = 2_500_000_000;
const ISN_C = 4_000_000_000;
const SYN_OPTS: TcpOption[] = [
  { kind: 'mss', mss: 1460 },
  { kind: 'sack-permitted' },
  { kind: 'timestamp', tsval: 5, tsecr: 6 },
  { kind: 'wscale', shift: 7 },
];
const TS: TcpOption[] = [{ kind: 'timestamp', tsval: 7, tsecr: 8 }];

function fromServer(
  client: number,
  cport: number,
  seq: number,
  ack: number,
  flags: number,
  payload: Buffer,
  opts: TcpOption[],
): Buffer {
  return buildIpv4Tcp(
    { src: VIP, dst: client },
    { srcPort: PORT, dstPort: cport, seq, ack, flags, window: 500, urgent: 0, options: opts, payload },
  );
}

function fromClient(client: number, cport: number, seq: number, ack: number, payload: Buffer): Buffer {
  return buildIpv4Tcp(
    { src: client, dst: VIP },
    {
      srcPort: cport,
      dstPort: PORT,
      seq,
      ack,
      flags: TCP_ACK_FLAG | (payload.length ? TCP_PSH : 0),
      window: 500,
      urgent: 0,
      options: TS,
      payload,
    },
  );
}

function heapUsed(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new UsageError('run with node --expose-gc');
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

export async function main(args: string[]): Promise<number> {
  const n = Number(args[0] ?? 100_000);
  if (!Number.isInteger(n) || n < 1) throw new UsageError('usage: merger-memory.js [N]');
  let accepted = 0;
  const m = new Merger(
    { service: VIP, maxConnections: n + 1 },
    { accept: () => accepted++, drop() {}, send() {}, toSecondary() {} },
  );
  const req = Buffer.from('*1\r\n$4\r\nPING\r\n');
  const ans = Buffer.from('+PONG\r\n');
  const base = heapUsed();
  let id = 1;
  for (let i = 0; i < n; i++) {
    const client = ipv4('198.51.100.1') + (i >>> 14);
    const cport = 20000 + (i & 0x3fff);
    m.fromPrimary(
      id++,
      fromServer(client, cport, ISN_P, ISN_C + 1, TCP_SYN | TCP_ACK_FLAG, Buffer.alloc(0), SYN_OPTS),
      false,
      0,
      'verified',
    );
    m.fromSecondary(
      id++,
      fromServer(client, cport, ISN_S, ISN_C + 1, TCP_SYN | TCP_ACK_FLAG, Buffer.alloc(0), SYN_OPTS),
      client,
      0,
      'verified',
    );
    m.fromClient(id++, fromClient(client, cport, ISN_C + 1, ISN_S + 1, Buffer.alloc(0)), 1, 'verified');
    m.fromClient(id++, fromClient(client, cport, ISN_C + 1, ISN_S + 1, req), 2, 'verified');
    const ack = ISN_C + 1 + req.length;
    m.fromPrimary(
      id++,
      fromServer(client, cport, ISN_P + 1, ack, TCP_ACK_FLAG | TCP_PSH, ans, TS),
      false,
      3,
      'verified',
    );
    m.fromSecondary(
      id++,
      fromServer(client, cport, ISN_S + 1, ack, TCP_ACK_FLAG | TCP_PSH, ans, TS),
      client,
      3,
      'verified',
    );
    m.fromClient(id++, fromClient(client, cport, ack, ISN_S + 1 + ans.length, Buffer.alloc(0)), 4, 'verified');
  }
  const used = heapUsed() - base;
  const phases = m.phases();
  console.log(
    `${n} connections in the merger (each: handshake, a 14 B request, a 7 B answer from both servers): JS heap +${(used / 2 ** 20).toFixed(1)} MiB, ` +
      `${Math.round(used / n)} B per connection; phases ${JSON.stringify(phases)}; ${m.stats.releasedSegments} segments released`,
  );
  return phases.merging === n && m.stats.releasedSegments === 2 * n ? 0 : 1;
}

runAsProgram(import.meta.url, main);
