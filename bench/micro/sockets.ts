/**
 * The node's sockets at a takeover: listing N connections on the service
 * address and aborting some of them (diverged connections), by netlink
 * sock_diag (bridge/io/sockets.ts) against `ss`, which the bridge ran before
 * (one `ss -K` per 64 sockets, each scanning every socket). In one rig host,
 * N connections to a Node server from the same namespace.
 *
 *   npm run build && node dist/bench/micro/sockets.js [N=9000] [ABORT=950]
 */
import { createInterface } from 'node:readline';
import { runAsProgram, UsageError } from '../../rig/main.js';
import { distScript } from '../../rig/dist.js';
import { withRig } from '../../rig/rig.js';

const PORT = 7000;
const CLIENT = '192.0.2.77';

export async function main(args: string[]): Promise<number> {
  const n = Number(args[0] ?? 9000);
  const abort = Number(args[1] ?? 950);
  // Client and server sockets in one process: under the sandbox's 20,000 open files.
  if (!Number.isInteger(n) || n < 1 || n > 9900 || !Number.isInteger(abort) || abort < 0 || abort > n / 2)
    throw new UsageError('usage: sockets.js [N ≤ 9900] [ABORT ≤ N/2]');
  await withRig({ mode: 'hub' }, async (rig) => {
    const h = rig.host('primary');
    await h.exec(['ip', 'addr', 'add', `${CLIENT}/32`, 'dev', 'lo']);
    const proc = h.spawn(
      [
        'bash',
        '-c',
        `ulimit -n ${2 * n + 256} && exec "$@"`,
        'probe',
        process.execPath,
        distScript('rig/servers/sockets-probe.js'),
        h.ip,
        CLIENT,
        String(PORT),
        String(n),
        '0',
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
    const next = async () => JSON.parse((await lines.next()).value as string) as Record<string, unknown>;
    const { ready } = (await next()) as { ready: number[] };
    const ask = async (cmd: string) => {
      proc.stdin!.write(`${cmd}\n`);
      return next();
    };
    const ss = async (argv: string[]) => {
      const t0 = performance.now();
      const r = await h.exec(['ss', ...argv]);
      return { lines: r.stdout.split('\n').filter((l) => l.trim()).length, ms: performance.now() - t0 };
    };
    for (let round = 0; round < 3; round++) {
      const nl = await ask('time list');
      const sl = await ss(['-Htn', 'state', 'connected', 'exclude', 'time-wait', 'src', h.ip]);
      console.log(
        `list ${n} connections: sock_diag ${(nl.ms as number).toFixed(1)} ms (${nl.n}), ss ${sl.ms.toFixed(1)} ms (${sl.lines} lines, text not parsed)`,
      );
    }
    // Abort `abort` of them each way: one half by sock_diag, the other by ss -K in runs of 64.
    const mine = ready.slice(0, abort);
    const theirs = ready.slice(abort, 2 * abort);
    const nd = await ask(`time destroy ${JSON.stringify(mine)}`);
    let ssMs = 0;
    let ssN = 0;
    for (let i = 0; i < theirs.length; i += 64) {
      const terms = theirs.slice(i, i + 64).map((p) => `( dst ${CLIENT}:${p} and sport = :${PORT} )`);
      const r = await ss([
        '-K',
        '-Htn',
        'state',
        'connected',
        'exclude',
        'time-wait',
        'src',
        h.ip,
        `( ${terms.join(' or ')} )`,
      ]);
      ssMs += r.ms;
      ssN += r.lines;
    }
    console.log(
      `abort ${abort} of ${n}: sock_diag ${(nd.ms as number).toFixed(1)} ms (${nd.n} aborted), ss -K in runs of 64 ${ssMs.toFixed(1)} ms (${ssN} aborted)`,
    );
  });
  return 0;
}

runAsProgram(import.meta.url, main);
