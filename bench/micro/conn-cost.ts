/**
 * What a connection costs, and who pays: N connections back to back (each
 * opens, says a word, closes — the request/answer report's "new connections
 * per second"), to the primary's own address (plain) and through the pair.
 * Prints the rate, and CPU µs per connection for each process — both
 * bridges, the demo server on each node — and for the whole machine (the
 * client, every host's packet path in softirq, everything). The rig runs on
 * this machine's cores: where the pair's rate falls short of plain, these
 * say whether the bridges or the second server's own work took the time.
 *
 *   npm run build && node dist/bench/micro/conn-cost.js [connects=2000] [rounds=3] [--merge auto|kernel|release|queue]
 */
import type { ChildProcess } from 'node:child_process';
import { distScript } from '../../rig/dist.js';
import { runAsProgram } from '../../rig/main.js';
import { DEMO_PORT, startDemoServer, TcpfoPair, VIP } from '../../rig/pair.js';
import { withRig } from '../../rig/rig.js';
import { cpuSeconds, machineSeconds } from '../../rig/cpu.js';
import { cliArgs, pct } from './hops.js';

const PLAIN_PORT = 7100;

interface Round {
  perSecond: number;
  /** CPU µs per connection, by process, and the machine's. */
  us: Record<string, number>;
}

export async function main(argv: string[]): Promise<number> {
  const { args, flag } = cliArgs(argv, ['--merge']);
  const N = Number(args[0] ?? 2000);
  const ROUNDS = Number(args[1] ?? 3);
  const MERGE = flag('--merge', 'auto');
  await withRig({ mode: 'hub' }, async (rig) => {
    const pair = await TcpfoPair.start(rig, { heartbeatTimeoutMs: 500, extraYaml: `merge: ${MERGE}\n` });
    try {
      const [c, p] = [rig.host('client'), rig.host('primary')];
      const plainServer = await startDemoServer(p, p.ip, PLAIN_PORT);
      pair.servers.push(plainServer);
      const procs: Record<string, ChildProcess> = {
        "P's bridge": pair.primary!.proc,
        "S's bridge": pair.secondary!.proc,
        "P's server": pair.servers[0]!,
        "S's server": pair.servers[1]!,
        "P's plain server": plainServer,
      };
      const connects = (addr: string, port: number, n: number) =>
        c.exec(
          [process.execPath, distScript('rig/servers/demo-client.js'), 'connect', addr, String(port), '0', String(n)],
          {
            timeoutMs: 300_000,
          },
        );
      const round = async (addr: string, port: number): Promise<Round> => {
        const before = Object.fromEntries(Object.entries(procs).map(([k, pr]) => [k, cpuSeconds(pr.pid!)]));
        const m0 = machineSeconds();
        const t0 = process.hrtime.bigint();
        await connects(addr, port, N);
        const secs = Number(process.hrtime.bigint() - t0) / 1e9;
        const m1 = machineSeconds();
        const us: Record<string, number> = {};
        for (const [k, pr] of Object.entries(procs)) {
          const a = cpuSeconds(pr.pid!);
          const b = before[k]!;
          us[k] = ((a.user + a.system - b.user - b.system) * 1e6) / N;
        }
        us['machine, softirq'] = ((m1.softirq - m0.softirq) * 1e6) / N;
        us['machine, all'] = ((m1.busy - m0.busy) * 1e6) / N;
        return { perSecond: N / secs, us };
      };
      // Warm: both servers' and both bridges' code past its first runs.
      await connects(VIP, DEMO_PORT, 200);
      await connects(p.ip, PLAIN_PORT, 200);
      const plain: Round[] = [];
      const tcpfo: Round[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        plain.push(await round(p.ip, PLAIN_PORT));
        tcpfo.push(await round(VIP, DEMO_PORT));
      }
      const med = (rs: Round[], f: (r: Round) => number) => pct(rs.map(f), 50);
      console.log(
        `${N} connections back to back, ${ROUNDS} rounds (plain, then tcpfo, in each), hub, merge: ${MERGE}; medians:`,
      );
      console.log(
        `connections per second: plain ${med(plain, (r) => r.perSecond).toFixed(0)}, tcpfo ${med(tcpfo, (r) => r.perSecond).toFixed(0)} (${(med(tcpfo, (r) => r.perSecond) / med(plain, (r) => r.perSecond)).toFixed(2)})`,
      );
      console.log('CPU µs per connection | plain | tcpfo');
      for (const k of Object.keys(tcpfo[0]!.us))
        console.log(`${k} | ${med(plain, (r) => r.us[k]!).toFixed(0)} | ${med(tcpfo, (r) => r.us[k]!).toFixed(0)}`);
    } finally {
      await pair.stop();
    }
  });
  return 0;
}

runAsProgram(import.meta.url, main);
