/**
 * Kill campaign for the kernel merge (merge: kernel): an echo session (a
 * line every 50 ms over one connection, each answer merged in the kernel) on
 * a hub; the primary, then the secondary, killed at a random moment (link cut
 * and SIGKILL of bridge and server). Every session must go on with every echo
 * right and none lost. Prints N of N per victim and the slowest echo.
 *
 *   npm run build && node dist/bench/failover/kernel-merge-kills.js [kills-per-node=10]
 */
import { writeFileSync } from 'node:fs';
import { distScript } from '../../rig/dist.js';
import { killNode, waitForLog } from '../../rig/failover.js';
import { runAsProgram, UsageError } from '../../rig/main.js';
import { DEMO_PORT, TcpfoPair, VIP } from '../../rig/pair.js';
import { withRig } from '../../rig/rig.js';

interface Echo {
  echoed: number;
  mismatched: number;
  sent: number;
  maxRttMs: number;
  error?: string;
}

async function one(
  node: 'primary' | 'secondary',
  killAfterMs: number,
): Promise<{ ok: boolean; slowestMs: number; detail: string }> {
  return withRig({ mode: 'hub' }, async (rig) => {
    const pair = await TcpfoPair.start(rig, { extraYaml: 'merge: kernel\n' });
    try {
      const c = rig.host('client');
      const session = c.exec(
        [process.execPath, distScript('rig/servers/demo-client.js'), 'echo', VIP, String(DEMO_PORT), '0', '5000'],
        { timeoutMs: 30_000 },
      );
      await new Promise((r) => setTimeout(r, killAfterMs));
      await killNode(pair, node);
      await waitForLog(
        pair,
        node === 'primary' ? /took over the service address/ : /secondary failed: continuing alone/,
      );
      const e = JSON.parse((await session).stdout.trim()) as Echo;
      const ok = e.error === undefined && e.mismatched === 0 && e.echoed >= e.sent - 1 && e.echoed > 50;
      return { ok, slowestMs: e.maxRttMs, detail: JSON.stringify(e) };
    } finally {
      await pair.stop();
    }
  });
}

export async function main(argv: string[]): Promise<number> {
  const n = Number(argv[0] ?? 10);
  if (!Number.isInteger(n) || n < 1) throw new UsageError('usage: kernel-merge-kills.js [kills-per-node=10]');
  const lines: string[] = [`Command: node dist/bench/failover/kernel-merge-kills.js ${n}`, ''];
  let failed = 0;
  for (const node of ['primary', 'secondary'] as const) {
    const runs: Array<{ ok: boolean; slowestMs: number; detail: string; at: number }> = [];
    for (let i = 0; i < n; i++) {
      const at = 500 + Math.floor(Math.random() * 2500);
      const r = await one(node, at);
      runs.push({ ...r, at });
      process.stderr.write(`${node} killed at ${at} ms: ${r.ok ? 'ok' : 'FAILED'} ${r.detail}\n`);
    }
    const ok = runs.filter((r) => r.ok).length;
    failed += n - ok;
    const slow = runs.map((r) => r.slowestMs).sort((a, b) => a - b);
    lines.push(
      `kill the ${node} during an echo session merged in the kernel: ${ok} of ${n} sessions intact (every echo right, none lost); slowest echo median ${slow[Math.floor(slow.length / 2)]} ms, max ${slow.at(-1)} ms`,
    );
    for (const r of runs.filter((x) => !x.ok)) lines.push(`  failed, killed at ${r.at} ms: ${r.detail}`);
  }
  const text = lines.join('\n') + '\n';
  writeFileSync('bench/results/kernel-merge-kills.txt', text);
  console.log(text);
  return failed ? 1 : 0;
}

runAsProgram(import.meta.url, main);
