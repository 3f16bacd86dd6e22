/**
 * NFQUEUE throughput: a bulk TCP flow from client to primary in the rig
 * (unshaped veth), measured plain and through an accept-all queue program on
 * the sender's OUTPUT, with and without NFQA_CFG_F_GSO, in one run.
 *
 *   npm run build && node dist/bench/micro/nfqueue-throughput.js [seconds]
 */
import { once } from 'node:events';
import { distScript } from '../../rig/dist.js';
import { withRig, type Rig } from '../../rig/rig.js';
import { runAsProgram } from '../../rig/main.js';

export async function main(argv: string[]): Promise<number> {
  const SECONDS = Number(argv[0] ?? 5);
  const PORT = 9000;

  async function flow(rig: Rig): Promise<number> {
    const c = rig.host('client');
    const p = rig.host('primary');
    const server = p.spawn(['bash', '-c', `socat -u TCP-LISTEN:${PORT},reuseaddr - | wc -c`]);
    let out = '';
    server.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await p.sh(`for i in $(seq 50); do ss -ltn | grep -q ':${PORT} ' && exit 0; sleep 0.1; done; exit 1`);
    await c.sh(`timeout ${SECONDS} socat -u /dev/zero TCP:${p.ip}:${PORT}`, {
      allowFail: true,
      timeoutMs: (SECONDS + 10) * 1000,
    });
    if (server.exitCode === null) await once(server, 'exit');
    return Number(out.trim());
  }

  interface QueueReport {
    received: number;
    bytes: number;
    maxLen: number;
    secs: number;
    cpuSecs: number;
    enobufs: number;
    batches: number;
    parseErrors: number;
  }

  async function queued(rig: Rig, gso: boolean, copyRange?: number): Promise<{ bytes: number; q: QueueReport }> {
    const c = rig.host('client');
    const prog = c.spawn([
      process.execPath,
      distScript('bench/micro/nfqueue-accept.js'),
      'nqb',
      '5',
      String(PORT),
      gso ? 'gso' : 'nogso',
      ...(copyRange ? [String(copyRange)] : []),
    ]);
    const lines: string[] = [];
    prog.stdout?.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    while (!lines.length) await new Promise((r) => setTimeout(r, 50));
    const bytes = await flow(rig);
    const exited = once(prog, 'exit');
    prog.kill('SIGTERM');
    await exited;
    return { bytes, q: JSON.parse(lines.at(-1)!) as QueueReport };
  }

  const mbit = (bytes: number) => (bytes * 8) / SECONDS / 1e6;

  await withRig({ mode: 'switch' }, async (rig) => {
    console.log(`bulk TCP client→primary, ${SECONDS} s each, unshaped veth, Linux defaults (GSO/TSO/GRO on)\n`);
    const plain = await flow(rig);
    console.log(`plain (no queue)         ${mbit(plain).toFixed(0).padStart(7)} Mbit/s`);
    // Reference for the per-packet path: the same flow with the sender's
    // segmentation offloads off, so every MTU-size packet crosses the whole
    // stack on its own (what the queue forces without F_GSO). Turned back on after.
    const c = rig.host('client');
    await c.exec(['ethtool', '-K', 'eth0', 'tso', 'off', 'gso', 'off']);
    const cnt0 = await c.exec(['cat', '/sys/class/net/eth0/statistics/tx_packets']);
    const perPacket = await flow(rig);
    const cnt1 = await c.exec(['cat', '/sys/class/net/eth0/statistics/tx_packets']);
    await c.exec(['ethtool', '-K', 'eth0', 'tso', 'on', 'gso', 'on']);
    const refPps = (Number(cnt1.stdout) - Number(cnt0.stdout)) / SECONDS;
    console.log(
      `plain, sender GSO/TSO off ${mbit(perPacket).toFixed(0).padStart(6)} Mbit/s  ${(refPps / 1000).toFixed(1).padStart(6)} k packets/s  (per-packet reference, no queue)`,
    );
    const variants: Array<[string, boolean, number | undefined]> = [
      ['queue, MTU, whole pkt', false, undefined],
      ['queue, MTU, 128 B hdr', false, 128],
      ['queue, F_GSO, whole  ', true, undefined],
    ];
    for (const [label, gso, copyRange] of variants) {
      const { bytes, q } = await queued(rig, gso, copyRange);
      const pps = q.received / q.secs;
      console.log(
        `${label}    ${mbit(bytes).toFixed(0).padStart(7)} Mbit/s  ` +
          `${(pps / 1000).toFixed(1).padStart(6)} k packets/s  avg ${(q.bytes / Math.max(1, q.received)).toFixed(0)} B, max ${q.maxLen} B  ` +
          `ratio ${(bytes / plain).toFixed(3)}  queue CPU ${((q.cpuSecs / q.secs) * 100).toFixed(0)}%  ${(q.received / Math.max(1, q.batches)).toFixed(1)} pkts/batch  enobufs ${q.enobufs}  parse errors ${q.parseErrors}`,
      );
    }
  });
  return 0;
}

runAsProgram(import.meta.url, main);
