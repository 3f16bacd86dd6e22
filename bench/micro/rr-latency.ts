/**
 * Where a request/answer round trip's time goes through the pair: N echo
 * round trips of SIZE bytes over one connection while tcpdump runs on the
 * client, the secondary and the primary (one kernel, one clock: the
 * timestamps compare). Per round trip:
 *
 *   request on the client's wire → seen at P, seen at S
 *   → S's answer leaves S                  (S: its TCP and its server)
 *   → S's answer arrives at P              (the wire)
 *   → the merged answer leaves P           (P: the merge; waits for P's own answer too)
 *   → answer at the client
 *
 * and the same round trips to the primary's own address (plain TCP).
 *
 *   npm run build && node dist/bench/micro/rr-latency.js [N=300] [SIZE=100] [--datapath kernel|pcap] [--inbound kernel|queue] [--rate MBIT] [--lan hub|mirror]
 *
 * --rate: the client's link shaped (tbf), as in bench/figures/interactive.ts.
 */
import { Capture } from '../../rig/capture.js';
import { distScript } from '../../rig/dist.js';
import { DEMO_PORT, startDemoServer, TcpfoPair, VIP } from '../../rig/pair.js';
import { withRig } from '../../rig/rig.js';
import { cliArgs, pct, segments, type Seen } from './hops.js';
import { ipv4 } from '../../net/addr.js';
import { runAsProgram } from '../../rig/main.js';

export async function main(argv: string[]): Promise<number> {
  const { args, flag } = cliArgs(argv, ['--datapath', '--inbound', '--rate', '--lan']);
  const DATAPATH = flag('--datapath', 'auto') as 'auto' | 'kernel' | 'pcap';
  const INBOUND = flag('--inbound', 'auto') as 'auto' | 'kernel' | 'queue';
  const RATE = Number(flag('--rate', '0'));
  const LAN = flag('--lan', 'hub') as 'hub' | 'mirror';
  const N = Number(args[0] ?? 300);
  const SIZE = Number(args[1] ?? 100);
  const PLAIN_PORT = 7100;

  await withRig({ mode: LAN, links: RATE ? { client: { rateMbit: RATE } } : {} }, async (rig) => {
    const pair = await TcpfoPair.start(rig, {
      heartbeatTimeoutMs: 500,
      datapath: DATAPATH,
      extraYaml: `inbound: ${INBOUND}\n`,
    });
    try {
      const [c, p, s] = [rig.host('client'), rig.host('primary'), rig.host('secondary')];
      pair.servers.push(await startDemoServer(p, p.ip, PLAIN_PORT));
      const filter = `tcp and (port ${DEMO_PORT} or port ${PLAIN_PORT})`;
      const caps = await Promise.all([
        Capture.start(c, filter, 'rc', 128),
        Capture.start(s, filter, 'rs', 128),
        Capture.start(p, filter, 'rp', 128),
      ]);
      const echo = async (host: string, port: number) =>
        (
          JSON.parse(
            (
              await c.exec(
                [
                  process.execPath,
                  distScript('rig/servers/rr-client.js'),
                  'echo',
                  host,
                  String(port),
                  String(SIZE),
                  String(N),
                ],
                { timeoutMs: 120_000 },
              )
            ).stdout,
          ) as { rttUs: number[] }
        ).rttUs;
      const plain = await echo(p.ip, PLAIN_PORT);
      const tcpfo = await echo(VIP, DEMO_PORT);
      const [fc, fs, fp] = (await Promise.all(caps.map((x) => x.stop()))).map((f) =>
        segments(f).filter((x) => x.len > 0),
      ) as [Seen[], Seen[], Seen[]];
      console.log(
        `${N} round trips of ${SIZE} B over one connection, the secondary's data path ${DATAPATH}, the primary's inbound translation ${INBOUND}, ${LAN}${RATE ? `, client link ${RATE} Mbit/s` : ''} (client round trip, µs): plain median ${pct(plain, 50)} p99 ${pct(plain, 99)}; tcpfo median ${pct(tcpfo, 50)} p99 ${pct(tcpfo, 99)}; added ${pct(tcpfo, 50) - pct(plain, 50)}`,
      );
      const hops = breakdown(fc, fs, fp, ipv4(VIP), s.mac, p.mac);
      console.log(
        `where the tcpfo round trip's time goes (${hops.total!.length} round trips matched on all three captures), µs:`,
      );
      for (const [k, v] of Object.entries(hops))
        console.log(
          `  ${k.padEnd(52)} median ${String(pct(v, 50)).padStart(6)}  p90 ${String(pct(v, 90)).padStart(6)}  p99 ${String(pct(v, 99)).padStart(6)}`,
        );
    } finally {
      await pair.stop();
    }
  });

  function breakdown(
    fc: Seen[],
    fs: Seen[],
    fp: Seen[],
    vip: number,
    sMac: string,
    pMac: string,
  ): Record<string, number[]> {
    const hops: Record<string, number[]> = {
      'hub: request on the client wire → seen at S': [],
      'S: request seen → S’s answer leaves S': [],
      'wire: S → P': [],
      'P: S’s answer in → merged answer out': [],
      'wire: P → client': [],
      'P: request seen → merged answer out': [],
      total: [],
    };
    const key = (x: Seen) => `${x.sport}/${x.dport}/${x.seq}`;
    const index = (xs: Seen[], pred: (x: Seen) => boolean) => {
      const m = new Map<string, Seen>();
      for (const x of xs) if (pred(x) && !m.has(key(x))) m.set(key(x), x);
      return m;
    };
    const reqS = index(fs, (x) => x.dst === vip);
    const reqP = index(fp, (x) => x.dst === vip);
    // S's answers: from S's MAC on either data path (kernel: source the VIP; pcap: readdressed to P).
    const ansS = index(fs, (x) => x.srcMac === sMac);
    const ansAtP = index(fp, (x) => x.srcMac === sMac);
    const merged = index(fp, (x) => x.src === vip && x.srcMac === pMac);
    const ansC = index(fc, (x) => x.src === vip && x.srcMac === pMac);
    // The answer to a request: the first segment from the service that starts after the answer to the previous one.
    const requests = fc.filter((x) => x.dst === vip);
    const answers = [...merged.values()].sort((a, b) => a.time - b.time);
    for (const rq of requests) {
      const atS = reqS.get(key(rq));
      const atP = reqP.get(key(rq));
      const out = answers.find((a) => a.time > rq.time && a.dport === rq.sport);
      if (!atS || !atP || !out) continue;
      const sOut = ansS.get(key(out));
      const sIn = ansAtP.get(key(out));
      const back = ansC.get(key(out));
      if (!sOut || !sIn || !back) continue;
      hops['hub: request on the client wire → seen at S']!.push(atS.time - rq.time);
      hops['S: request seen → S’s answer leaves S']!.push(sOut.time - atS.time);
      hops['wire: S → P']!.push(sIn.time - sOut.time);
      hops['P: S’s answer in → merged answer out']!.push(out.time - sIn.time);
      hops['wire: P → client']!.push(back.time - out.time);
      hops['P: request seen → merged answer out']!.push(out.time - atP.time);
      hops.total!.push(back.time - rq.time);
    }
    return hops;
  }
  return 0;
}

runAsProgram(import.meta.url, main);
