/** Killing a node of the pair in the rig: its bridge and server die and its link is cut, as when a host dies. */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { DEMO_PORT, startDemoServer, VIP, type Daemon, type TcpfoPair } from './pair.js';
import { slow } from './slow.js';

async function killHard(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = once(p, 'exit');
  p.kill('SIGKILL');
  await exited;
}

/**
 * The node dies: its switch port goes down (nothing more leaves or reaches
 * it), then its bridge and its server are SIGKILLed. Returns the time of the cut.
 */
export async function killNode(pair: TcpfoPair, node: 'primary' | 'secondary'): Promise<number> {
  const rig = pair.rig;
  await rig.switchExec(['ip', 'link', 'set', rig.portOf(node), 'down']);
  const at = Date.now();
  const d: Daemon | undefined = node === 'primary' ? pair.primary : pair.secondary;
  await killHard(d?.proc);
  await killHard(pair.servers[node === 'primary' ? 0 : 1]);
  for (const p of pair.nodeServers[node]) await killHard(p);
  return at;
}

/**
 * The node comes back after killNode: its link up, its bridge restarted
 * (which undoes what the killed one left), then its demo server.
 */
export async function restartNode(pair: TcpfoPair, node: 'primary' | 'secondary'): Promise<void> {
  const rig = pair.rig;
  await rig.switchExec(['ip', 'link', 'set', rig.portOf(node), 'up']);
  const d = await pair.startDaemon(rig.host(node), node);
  if (node === 'primary') pair.primary = d;
  else pair.secondary = d;
  pair.servers[node === 'primary' ? 0 : 1] = await startDemoServer(rig.host(node), VIP, DEMO_PORT);
}

/** How many times the pair's logs match `re` (global or not). */
export function logCount(pair: TcpfoPair, re: RegExp): number {
  const g = re.global ? re : new RegExp(re.source, `${re.flags}g`);
  return (pair.logs().match(g) ?? []).length;
}

/** Waits until the pair's logs match `re` at least `n` times; `what` names it in the error. */
export async function waitForLogCount(
  pair: TcpfoPair,
  re: RegExp,
  n: number,
  timeoutMs = 10_000,
  what = String(re),
): Promise<void> {
  const deadline = Date.now() + slow(timeoutMs);
  while (logCount(pair, re) < n) {
    if (Date.now() > deadline)
      throw new Error(`no ${what}${n > 1 ? ` (${n} times)` : ''} within ${timeoutMs} ms; the logs:\n${pair.logs()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** Waits until the pair's logs match `re`. */
export async function waitForLog(pair: TcpfoPair, re: RegExp, timeoutMs = 10_000): Promise<void> {
  await waitForLogCount(pair, re, 1, timeoutMs);
}
