/**
 * Where a small FTP transfer's time goes: N gets of the paper's 0.2 KB file
 * with the Debian ftp client (vsftpd, active mode), plain (the primary's own
 * address) and through the pair, each timed by tcpdump on the client: the
 * servers' SYN of the data connection, from the client's RETR; then, from
 * that SYN, in µs: the servers' ACK that completes its handshake (the
 * client's accept() returns with it), the client's FIN, the servers' last
 * ACK (of that FIN), and the control connection's "226" that ends the
 * transfer for the client (tnftp times the transfer until it), which is also
 * timed from the RETR: what the get took. Medians over
 * the gets, and the rate the client reported (coarse: tnftp times 0.2 KB);
 * the metrics say which path the data connections and their handshakes took.
 * With --put, N puts of the same file instead, timed from the STOR (the
 * client sends the data and closes first; the servers answer its FIN with
 * theirs). --kb picks another of the paper's sizes. --no-gso: for the pair's
 * gets, both nodes' LAN interfaces without TSO, GSO and GRO (ethtool; plain
 * runs first, with them), so each server's TCP sends MSS-sized segments: what
 * the kernel merge does with a stream when no burst is larger than a segment
 * (an experiment; tcpfo leaves the interfaces as they are). The primary's
 * kernel-merge counters follow the table.
 *
 *   npm run build && node dist/bench/micro/ftp-timeline.js [N=10] [--lan hub|mirror|switch] [--put] [--kb 0.2|1.3|18.2|…] [--no-gso]
 */
import { join } from 'node:path';
import { Capture, type CapturedFrame } from '../../rig/capture.js';
import { fileName, PAPER_FILE_KB, runFtp, startFtpPair } from '../../rig/ftp.js';
import { DEMO_PORT, TcpfoPair, VIP } from '../../rig/pair.js';
import { withRig, type LanMode } from '../../rig/rig.js';
import { median, runAsProgram } from '../../rig/main.js';
import { scrapeMetrics } from '../../rig/metrics.js';
import { parseIpv4Tcp, TCP_ACK_FLAG, TCP_FIN, TCP_SYN } from '../../bridge/wire/tcp.js';
import { WireError } from '../../bridge/wire/error.js';
import { cliArgs } from './hops.js';
import { KERNEL_HANDOVER_REASONS } from '../../bridge/primary/merge/kernel.js';

const ETH_HLEN = 14;

interface Moments {
  /** The servers' SYN, and their 226, from the client's RETR (or STOR): what the transfer took. */
  syn: number;
  get: number;
  handshakeAck: number;
  clientFin: number;
  /** The servers' first segment after the client's FIN: their ACK of it (a get), or their FIN (a put). */
  lastAck: number;
  reply226: number;
}

/**
 * The moments of the data connection (servers' port 20) and the 226 on port
 * 21, µs from its SYN, the SYN and the 226 also from the client's `verb`
 * (RETR or STOR); null if one is missing.
 */
function moments(frames: CapturedFrame[], verb: 'RETR' | 'STOR'): Moments | null {
  const segs = frames.flatMap((f) => {
    const p = parseIpv4Tcp(f.data, ETH_HLEN);
    return p instanceof WireError ? [] : [{ t: f.time * 1e6, tcp: p.tcp }];
  });
  const syn = segs.find((s) => s.tcp.srcPort === 20 && (s.tcp.flags & (TCP_SYN | TCP_ACK_FLAG)) === TCP_SYN);
  if (!syn) return null;
  const port = syn.tcp.dstPort;
  const after = segs.filter((s) => s.t >= syn.t);
  const fromServers = after.filter((s) => s.tcp.srcPort === 20 && s.tcp.dstPort === port);
  const pureAck = (s: (typeof after)[number]) =>
    s.tcp.payloadLength === 0 && (s.tcp.flags & (TCP_SYN | TCP_FIN)) === 0 && s.tcp.flags & TCP_ACK_FLAG;
  const handshakeAck = fromServers.find(pureAck);
  const clientFin = after.find((s) => s.tcp.srcPort === port && s.tcp.flags & TCP_FIN);
  const lastAck = clientFin && fromServers.find((s) => s.t > clientFin.t);
  const reply226 = after.find((s) => s.tcp.srcPort === 21 && s.tcp.payload.toString('latin1').startsWith('226'));
  const retr = segs
    .filter((s) => s.t <= syn.t && s.tcp.dstPort === 21 && s.tcp.payload.toString('latin1').startsWith(verb))
    .pop();
  if (!handshakeAck || !clientFin || !lastAck || !reply226 || !retr) return null;
  return {
    syn: syn.t - retr.t,
    get: reply226.t - retr.t,
    handshakeAck: handshakeAck.t - syn.t,
    clientFin: clientFin.t - syn.t,
    lastAck: lastAck.t - syn.t,
    reply226: reply226.t - syn.t,
  };
}

export async function main(argv: string[]): Promise<number> {
  const put = argv.includes('--put');
  const noGso = argv.includes('--no-gso');
  const { args, flag } = cliArgs(
    argv.filter((a) => a !== '--put' && a !== '--no-gso'),
    ['--lan', '--kb'],
  );
  const N = Number(args[0] ?? 10);
  const lan = flag('--lan', 'mirror') as LanMode;
  const kb = Number(flag('--kb', '0.2'));
  if (!(N >= 1) || !['hub', 'mirror', 'switch'].includes(lan) || !(PAPER_FILE_KB as readonly number[]).includes(kb))
    throw new Error(
      `usage: ftp-timeline.js [N ≥ 1] [--lan hub|mirror|switch] [--put] [--kb ${PAPER_FILE_KB.join('|')}] [--no-gso]`,
    );
  const verb = put ? 'STOR' : 'RETR';
  await withRig({ mode: lan, links: { client: { rateMbit: 100 } } }, async (rig) => {
    const pair = await TcpfoPair.start(rig, { ports: [DEMO_PORT, 20, 21] });
    try {
      const roots = await startFtpPair(rig, VIP, pair.servers);
      const c = rig.host('client');
      console.log(
        `${N} ${put ? 'puts' : 'gets'} of ${fileName(kb)} (Debian ftp, active mode), ${lan}, client link 100 Mbit/s${noGso ? '; the pair without TSO, GSO and GRO' : ''}`,
      );
      console.log(`µs at the client, median (min–max): the SYN and the 226 from the ${verb}, the rest from the SYN\n`);
      console.log(
        `| | SYN | 226 | handshake’s last ACK | client’s FIN | servers’ ${put ? 'FIN' : 'last ACK'} | 226 from the SYN | rate, KB/s | incomplete |`,
      );
      console.log('|---|---|---|---|---|---|---|---|---|');
      for (const [label, addr] of [
        ['plain', rig.host('primary').ip],
        ['tcpfo', VIP],
      ] as const) {
        if (label === 'tcpfo' && noGso)
          for (const h of ['primary', 'secondary'])
            await rig.host(h).exec(['ethtool', '-K', 'eth0', 'tso', 'off', 'gso', 'off', 'gro', 'off']);
        const got: Moments[] = [];
        const rates: number[] = [];
        let incomplete = 0;
        for (let i = 0; i < N; i++) {
          const cap = await Capture.start(c, 'tcp port 20 or tcp port 21', `ftp-${label}-${i}`);
          const x = await runFtp(c, addr, [
            put
              ? `put ${join(roots.tcpfoRoot, 'pub', fileName(kb))} incoming/up-${label}-${i}-${Date.now()}`
              : `get pub/${fileName(kb)} ${join(rig.tmpdir, `got-${label}-${i}`)}`,
          ]);
          const m = moments(await cap.stop(), verb);
          if (x.completed !== 1 || !m) incomplete++;
          else got.push(m);
          if (x.rates[0] !== undefined) rates.push(x.rates[0]);
        }
        const col = (f: (m: Moments) => number) => {
          const xs = got.map(f);
          return `${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;
        };
        console.log(
          `| ${label} | ${col((m) => m.syn)} | ${col((m) => m.get)} | ${col((m) => m.handshakeAck)} | ${col((m) => m.clientFin)} | ${col((m) => m.lastAck)} | ${col((m) => m.reply226)} | ${median(rates).toFixed(0)} | ${incomplete} |`,
        );
      }
      const m = await scrapeMetrics(rig, 'primary');
      const series = (name: string, label: string, values: readonly string[]) =>
        values
          .map((v) => [v, m(`${name}{${label}="${v}"}`) || 0] as const)
          .filter(([, n]) => n > 0)
          .map(([v, n]) => `${v} ${n}`)
          .join(', ') || 'none';
      console.log(
        `\nthe primary's kernel merge: ${series('tcpfo_kernel_merge_total', 'action', ['held', 'released-p', 'released-s', 'stashed'])}; connections handed to the bridge, by reason: ${series(
          'tcpfo_kernel_handovers_total',
          'reason',
          KERNEL_HANDOVER_REASONS.filter((r) => r !== 'none'),
        )}`,
      );
      console.log(
        `\nthe primary: connections handed to the bridge ${m('tcpfo_kernel_handovers_total{reason="bridge"}') || 0}, client segments out of the windows ${m('tcpfo_kernel_inbound_total{action="out-of-window"}') || 0}, segments back to the kernel after waiting their turn ${m('tcpfo_kernel_outbound_total{action="returned"}') || 0}, handshakes merged in the kernel ${m('tcpfo_kernel_handshakes_total{action="merged"}') || 0}`,
      );
    } finally {
      await pair.stop();
    }
  });
  return 0;
}

runAsProgram(import.meta.url, main);
