/**
 * What each LAN mode costs in link bytes: a 100 MB download and a 100 MB
 * upload through the pair, and the same to the primary's own address (plain
 * TCP), on a hub, a mirroring switch and a learning switch; for each, the
 * bytes the switch's port towards the client, the primary and the secondary
 * carried (both directions, from the port's counters). On a hub the
 * secondary's diverted copy of every byte crosses the client's link; with
 * port mirroring only the nodes' links carry the copies; on a learning
 * switch the primary copies every client frame to the secondary, so its own
 * link carries the client's data twice.
 *
 *   npm run build && node dist/bench/micro/link-bytes.js [MB=100] [client-link-Mbit/s=100]
 */
import { DEMO_PORT, startDemoServer, TcpfoPair, transfer, VIP } from '../../rig/pair.js';
import { withRig, type LanMode, type Rig } from '../../rig/rig.js';
import { runAsProgram } from '../../rig/main.js';

export async function main(argv: string[]): Promise<number> {
  const MB = Number(argv[0] ?? 100);
  const RATE = Number(argv[1] ?? 100);
  const PLAIN_PORT = 7100;
  const HOSTS = ['client', 'primary', 'secondary'] as const;

  async function portBytes(rig: Rig): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const h of HOSTS) {
      const dev = rig.portOf(h);
      const r = await rig.switchExec([
        'sh',
        '-c',
        `cat /sys/class/net/${dev}/statistics/tx_bytes /sys/class/net/${dev}/statistics/rx_bytes`,
      ]);
      out[h] = r.stdout
        .trim()
        .split('\n')
        .map(Number)
        .reduce((a, b) => a + b, 0);
    }
    return out;
  }

  const rows: string[] = [];
  for (const lan of ['hub', 'mirror', 'switch'] as LanMode[]) {
    await withRig({ mode: lan, links: RATE > 0 ? { client: { rateMbit: RATE } } : {} }, async (rig) => {
      const pair = await TcpfoPair.start(rig);
      try {
        const p = rig.host('primary');
        pair.servers.push(await startDemoServer(p, p.ip, PLAIN_PORT));
        const c = rig.host('client');
        for (const mode of ['get', 'put'] as const) {
          for (const [what, host, port] of [
            ['plain', p.ip, PLAIN_PORT],
            ['tcpfo', VIP, DEMO_PORT],
          ] as const) {
            const before = await portBytes(rig);
            const r = await transfer(c, mode, MB * 1e6, 9, 180_000, host, port);
            const ok = mode === 'get' ? r.sha256 === r.expected : r.reply === `OK ${r.sha256}`;
            if (!ok) throw new Error(`${lan} ${what} ${mode}: not byte-exact`);
            const after = await portBytes(rig);
            const mb = (h: string) => ((after[h]! - before[h]!) / 1e6).toFixed(1);
            rows.push(
              `| ${lan} | ${mode === 'get' ? 'download' : 'upload'} | ${what} | ${(r.ms / 1000).toFixed(2)} | ${mb('client')} | ${mb('primary')} | ${mb('secondary')} |`,
            );
          }
        }
      } finally {
        await pair.stop();
      }
    });
  }
  console.log(
    `${MB} MB each way, client link ${RATE > 0 ? `${RATE} Mbit/s` : 'unshaped'}; MB each switch port carried (both directions):\n`,
  );
  console.log('| LAN | transfer | path | seconds | client port | primary port | secondary port |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  return 0;
}

runAsProgram(import.meta.url, main);
