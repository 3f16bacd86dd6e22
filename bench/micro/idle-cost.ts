/**
 * What an idle pair costs: each bridge's CPU (user + system, /proc/PID/stat)
 * as a share of one core, and how often its event loop woke (the main
 * thread's voluntary context switches, /proc/PID/status), over SECONDS of a
 * pair with no traffic; then the secondary is killed and the primary, alone,
 * is measured the same way. Heartbeats, timers, the sign of life to the ARP
 * thread and the metrics' own sampling are all there is to pay for.
 *
 *   npm run build && node dist/bench/micro/idle-cost.js [SECONDS=20]
 */
import { readFileSync } from 'node:fs';
import { TcpfoPair } from '../../rig/pair.js';
import { withRig } from '../../rig/rig.js';
import { runAsProgram } from '../../rig/main.js';
import { cpuSeconds } from '../../rig/cpu.js';

/** CPU seconds so far and the main thread's voluntary context switches (its wake-ups). */
function sample(pid: number): { cpu: number; wakeups: number } {
  const c = cpuSeconds(pid);
  const m = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpu: c.user + c.system, wakeups: Number(m?.[1] ?? NaN) };
}

async function measure(pid: number, seconds: number): Promise<{ share: number; wakeups: number }> {
  const a = sample(pid);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const b = sample(pid);
  return { share: (100 * (b.cpu - a.cpu)) / seconds, wakeups: (b.wakeups - a.wakeups) / seconds };
}

export async function main(argv: string[]): Promise<number> {
  const SECONDS = Number(argv[0] ?? 20);
  if (!(SECONDS >= 1)) throw new Error(`usage: idle-cost.js [SECONDS ≥ 1], not ${argv[0]}`);
  await withRig({ mode: 'hub' }, async (rig) => {
    const pair = await TcpfoPair.start(rig, {});
    const p = pair.primary!.proc.pid!;
    const s = pair.secondary!.proc.pid!;
    // Settle after the start (the merger's and the kernel path's first turns).
    await new Promise((r) => setTimeout(r, 3000));
    const [primary, secondary] = await Promise.all([measure(p, SECONDS), measure(s, SECONDS)]);
    pair.secondary!.proc.kill('SIGKILL');
    // The primary declares it failed and turns its (no) connections primary-only.
    await new Promise((r) => setTimeout(r, 3000));
    const alone = await measure(p, SECONDS);
    await pair.stop();
    const row = (what: string, m: { share: number; wakeups: number }) =>
      `| ${what} | ${m.share.toFixed(2)} % | ${Math.round(m.wakeups)} |`;
    console.log(`idle pair, hub, defaults; ${SECONDS} s each`);
    console.log('');
    console.log('| bridge | CPU, share of one core | event-loop wake-ups per second |');
    console.log('|---|---|---|');
    console.log(row('secondary, pair idle', secondary));
    console.log(row('primary, pair idle', primary));
    console.log(row('primary alone (secondary killed), idle', alone));
  });
  return 0;
}

runAsProgram(import.meta.url, main);
