/**
 * A rolling upgrade: a node of another tcpfo version (its built checkout's
 * dist/cli.js) paired with this one, in either role — a 30 MB download
 * through the mixed pair, the primary killed in the middle: it must finish
 * byte-exact from the secondary. Prints one line per pairing.
 *
 *   git worktree add /tmp/tcpfo-old d45de2f   # 0.2.0 && (cd /tmp/tcpfo-old && npm ci && npm run build)
 *   npm run build && node dist/bench/failover/rolling-upgrade.js /tmp/tcpfo-old/dist/cli.js
 */
import { existsSync } from 'node:fs';
import { killNode, waitForLog } from '../../rig/failover.js';
import { TcpfoPair, transfer } from '../../rig/pair.js';
import { runAsProgram, UsageError } from '../../rig/main.js';
import { withRig } from '../../rig/rig.js';

async function pairing(otherCli: string, otherRole: 'primary' | 'secondary'): Promise<boolean> {
  return withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
    const pair = await TcpfoPair.start(rig, { heartbeatTimeoutMs: 300 });
    try {
      // Replace that role's bridge with the other version's (the secondary first, as an upgrade goes).
      await TcpfoPair.stopDaemon(pair.secondary);
      if (otherRole === 'primary') await TcpfoPair.stopDaemon(pair.primary);
      const start = (role: 'primary' | 'secondary') =>
        pair.startDaemon(rig.host(role), role, {}, role === otherRole ? otherCli : undefined);
      if (otherRole === 'primary') pair.primary = await start('primary');
      pair.secondary = await start('secondary');
      await waitForLog(pair, /primary is up/);
      await new Promise((r) => setTimeout(r, 1000));
      const t = transfer(rig.host('client'), 'get', 30_000_000, 5, 60_000);
      await new Promise((r) => setTimeout(r, 800));
      await killNode(pair, 'primary');
      const r = await t;
      const ok = !r.error && r.sha256 === r.expected;
      console.log(
        `the other version as ${otherRole}: ${ok ? 'byte-exact' : `FAILED (${r.error ?? 'wrong bytes'})`} after the primary's death, longest gap ${r.maxGapMs} ms`,
      );
      return ok;
    } finally {
      await pair.stop();
    }
  });
}

export async function main(args: string[]): Promise<number> {
  const [otherCli] = args;
  if (!otherCli || !existsSync(otherCli)) throw new UsageError('usage: rolling-upgrade.js OTHER_TCPFO/dist/cli.js');
  let ok = true;
  for (const role of ['secondary', 'primary'] as const) ok = (await pairing(otherCli, role)) && ok;
  return ok ? 0 : 1;
}

runAsProgram(import.meta.url, main);
