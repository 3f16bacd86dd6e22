/**
 * Where the connection-setup time goes: N sequential connects
 * through the pair while tcpdump runs on the client, the secondary and the
 * primary (one kernel, one clock: the timestamps compare). Per connection:
 *
 *   SYN on the client's wire → SYN seen at S (the hub's delay)
 *   → S's SYN-ACK leaves S for P      (S: kernel path — ingress rewrite, S's TCP, divert route —
 *                                      or pcap — capture, node, injection, S's TCP, NFQUEUE, node, verdict)
 *   → it arrives at P                 (the wire)
 *   → the merged SYN-ACK leaves P     (P: NFQUEUE in, node, merger, verdict on P's held SYN-ACK)
 *   → SYN-ACK at the client
 *
 * (S's and P's SYN-ACKs are told apart by their source MAC, on either path.)
 *
 * and the same connect to the primary's own address (plain TCP) for the
 * baseline. Prints medians and p90s in µs, for connects back to back (each
 * while the previous connection closes through the bridges) and 5 ms apart
 * (each on an idle pair).
 *
 *   npm run build && node dist/bench/micro/setup-latency.js [connects=200] [--datapath kernel|pcap] [--inbound kernel|queue]
 */
import { Capture } from '../../rig/capture.js';
import { distScript } from '../../rig/dist.js';
import { DEMO_PORT, startDemoServer, TcpfoPair, VIP } from '../../rig/pair.js';
import { withRig } from '../../rig/rig.js';
import { cliArgs, pct, segments, type Seen } from './hops.js';
import { ipv4 } from '../../net/addr.js';
import { TCP_ACK_FLAG, TCP_SYN } from '../../bridge/wire/tcp.js';
import { runAsProgram } from '../../rig/main.js';

export async function main(argv: string[]): Promise<number> {
  const { args, flag } = cliArgs(argv, ['--datapath', '--inbound']);
  const DATAPATH = flag('--datapath', 'auto') as 'auto' | 'kernel' | 'pcap';
  const INBOUND = flag('--inbound', 'auto') as 'auto' | 'kernel' | 'queue';
  const N = Number(args[0] ?? 200);
  const PLAIN_PORT = 7100;

  await withRig({ mode: 'hub' }, async (rig) => {
    const pair = await TcpfoPair.start(rig, {
      heartbeatTimeoutMs: 500,
      datapath: DATAPATH,
      extraYaml: `inbound: ${INBOUND}\n`,
    });
    try {
      const [c, p, s] = [rig.host('client'), rig.host('primary'), rig.host('secondary')];
      pair.servers.push(await startDemoServer(p, p.ip, PLAIN_PORT));
      const filter = `tcp[tcpflags] & tcp-syn != 0`;
      // Back to back (each connect while the previous connection closes through
      // the bridges), then 5 ms apart (each on an idle pair).
      for (const gapMs of [0, 5]) {
        const caps = await Promise.all([
          Capture.start(c, filter, `lc${gapMs}`, 128),
          Capture.start(s, filter, `ls${gapMs}`, 128),
          Capture.start(p, filter, `lp${gapMs}`, 128),
        ]);
        const client = (host: string, port: number) =>
          c.exec(
            [
              process.execPath,
              distScript('rig/servers/demo-client.js'),
              'connect',
              host,
              String(port),
              String(gapMs),
              String(N),
            ],
            { timeoutMs: 120_000 },
          );
        const plain = JSON.parse((await client(p.ip, PLAIN_PORT)).stdout) as { connectUs: number[] };
        const tcpfo = JSON.parse((await client(VIP, DEMO_PORT)).stdout) as { connectUs: number[] };
        const [fc, fs, fp] = (await Promise.all(caps.map((x) => x.stop()))).map(segments) as [Seen[], Seen[], Seen[]];
        const hops = breakdown(fc, fs, fp, ipv4(VIP), s.mac, p.mac);
        const added = pct(tcpfo.connectUs, 50) - pct(plain.connectUs, 50);
        console.log(
          `${gapMs ? `\n${N} connects ${gapMs} ms apart` : `${N} connects back to back, the secondary's data path ${DATAPATH}, the primary's inbound translation ${INBOUND}`} (client connect() time, µs): plain median ${pct(plain.connectUs, 50)} p90 ${pct(plain.connectUs, 90)}; tcpfo median ${pct(tcpfo.connectUs, 50)} p90 ${pct(tcpfo.connectUs, 90)}; added ${added}`,
        );
        console.log(
          `where the tcpfo SYN-ACK's time goes (${hops.total!.length} connections matched on all three captures), µs:`,
        );
        for (const [k, v] of Object.entries(hops))
          console.log(
            `  ${k.padEnd(48)} median ${String(pct(v, 50)).padStart(6)}  p90 ${String(pct(v, 90)).padStart(6)}`,
          );
      }
    } finally {
      await pair.stop();
    }
  });

  /** Per connection, the time between the SYN-ACK's appearances on the three captures. */
  function breakdown(
    fc: Seen[],
    fs: Seen[],
    fp: Seen[],
    vip: number,
    sMac: string,
    pMac: string,
  ): Record<string, number[]> {
    const synAck = TCP_SYN | TCP_ACK_FLAG;
    const isSynAck = (x: Seen) => (x.flags & synAck) === synAck;
    const hops: Record<string, number[]> = {
      'hub: client SYN → seen at S': [],
      'S: SYN seen → its SYN-ACK leaves S': [],
      'wire: S → P': [],
      'P: S’s SYN-ACK in → merged SYN-ACK out': [],
      'wire: P → client': [],
      total: [],
    };
    for (const syn of fc.filter((x) => x.flags === TCP_SYN && x.dst === vip)) {
      const port = syn.sport;
      const atS = fs.find((x) => x.flags === TCP_SYN && x.sport === port && x.dst === vip);
      const sOut = fs.find((x) => isSynAck(x) && x.dport === port && x.srcMac === sMac);
      const sIn = fp.find((x) => isSynAck(x) && x.dport === port && x.srcMac === sMac);
      const merged = fp.find((x) => isSynAck(x) && x.dport === port && x.src === vip && x.srcMac === pMac);
      const back = fc.find((x) => isSynAck(x) && x.dport === port && x.src === vip && x.srcMac === pMac); // on a hub the client sees S's too
      if (!atS || !sOut || !sIn || !merged || !back) continue;
      hops['hub: client SYN → seen at S']!.push(atS.time - syn.time);
      hops['S: SYN seen → its SYN-ACK leaves S']!.push(sOut.time - atS.time);
      hops['wire: S → P']!.push(sIn.time - sOut.time);
      hops['P: S’s SYN-ACK in → merged SYN-ACK out']!.push(merged.time - sIn.time);
      hops['wire: P → client']!.push(back.time - merged.time);
      hops.total!.push(back.time - syn.time);
    }
    return hops;
  }
  return 0;
}

runAsProgram(import.meta.url, main);
