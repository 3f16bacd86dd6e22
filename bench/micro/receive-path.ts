/**
 * Where a download through the pair loses its rate (bench/results/paper.md,
 * "What limits"): a 100 MB download at a shaped client link, plain and
 * through tcpfo, with both servers' TCP state (`ss -ti`: congestion control,
 * cwnd, RTT, retransmissions, D-SACKs) sampled twice mid-transfer and the
 * primary's merger counters at the end.
 *
 * The client's link (the switch port towards it) is counted too: in a hub it
 * also carries the secondary's diverted copy of every byte, which bounds a
 * download through the pair at about half the link; with port mirroring on a
 * switch ('mirror') it does not.
 *
 *   npm run build && node dist/bench/micro/receive-path.js [client-link-Mbit/s=100] [hub|mirror]
 */
import { DEMO_PORT, startDemoServer, TcpfoPair, transfer, VIP } from '../../rig/pair.js';
import { distScript } from '../../rig/dist.js';
import { withRig, type LanMode } from '../../rig/rig.js';
import { runAsProgram, UsageError } from '../../rig/main.js';

export async function main(argv: string[]): Promise<number> {
  const rate = Number(argv[0] ?? 100);
  const lan = (argv[1] ?? 'hub') as LanMode;
  if (!['hub', 'mirror'].includes(lan)) {
    throw new UsageError('usage: receive-path.js [client-link-Mbit/s] [hub|mirror]');
  }
  const BYTES = 100_000_000;
  const PLAIN_PORT = 7100;

  await withRig({ mode: lan, links: rate > 0 ? { client: { rateMbit: rate } } : {} }, async (rig) => {
    const pair = await TcpfoPair.start(rig);
    try {
      const p = rig.host('primary');
      pair.servers.push(await startDemoServer(p, p.ip, PLAIN_PORT));
      const c = rig.host('client');
      /** Bytes the switch sent the client so far (its port's TX counter). */
      const toClient = async () =>
        Number(
          (await rig.switchExec(['cat', `/sys/class/net/${rig.portOf('client')}/statistics/tx_bytes`])).stdout.trim(),
        );
      let linkBefore = await toClient();
      const plain = JSON.parse(
        (
          await c.exec(
            [
              process.execPath,
              distScript('rig/servers/demo-client.js'),
              'get',
              p.ip,
              String(PLAIN_PORT),
              String(BYTES),
              '5',
            ],
            { timeoutMs: 120_000 },
          )
        ).stdout.trim(),
      ) as { ms: number };
      const linkPlain = (await toClient()) - linkBefore;
      console.log(
        `plain: ${BYTES / 1e6} MB in ${plain.ms} ms = ${(BYTES / 1024 / (plain.ms / 1000)).toFixed(0)} KB/s; the client's link carried ${(linkPlain / 1e6).toFixed(1)} MB`,
      );
      linkBefore = await toClient();
      const t = transfer(c, 'get', BYTES, 5, 120_000);
      for (const at of [2, 4]) {
        await new Promise((r) => setTimeout(r, 2000));
        console.log(`\n-- ${at} s into the tcpfo download`);
        for (const n of ['client', 'primary', 'secondary']) {
          const ss = await rig.host(n).sh(`ss -tinH '( sport = :${DEMO_PORT} or dport = :${DEMO_PORT} )'`);
          console.log(`${n}: ${ss.stdout.replace(/\s+/g, ' ').trim()}`);
        }
      }
      const r = await t;
      if (r.sha256 !== r.expected) throw new Error('the download through the pair was not byte-exact');
      const linkTcpfo = (await toClient()) - linkBefore;
      console.log(
        `\ntcpfo: ${BYTES / 1e6} MB in ${r.ms} ms = ${(BYTES / 1024 / (r.ms / 1000)).toFixed(0)} KB/s (ratio ${(plain.ms / r.ms).toFixed(3)}), longest gap ${r.maxGapMs} ms; the client's link carried ${(linkTcpfo / 1e6).toFixed(1)} MB`,
      );
      const m = (await p.exec(['curl', '-sf', 'http://127.0.0.1:9464/metrics'])).stdout;
      console.log(
        m
          .split('\n')
          .filter(
            (l) =>
              /^tcpfo_(retransmissions|drops|merged_segments|diverted_segments|diverted_bytes|prefix_trimmed|nfqueue_packets|secondary_silent)/.test(
                l,
              ) && !l.endsWith(' 0'),
          )
          .join('\n'),
      );
      console.log(
        `(service address ${VIP}:${DEMO_PORT}, client link ${rate > 0 ? `${rate} Mbit/s` : 'unshaped'}, LAN: ${lan})`,
      );
    } finally {
      await pair.stop();
    }
  });
  return 0;
}

runAsProgram(import.meta.url, main);
