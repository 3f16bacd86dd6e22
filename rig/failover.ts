/** Killing a node of the pair in the rig: its bridge and server die and its link is cut, as when a host dies. */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { DEMO_PORT, startDemoServer, type Daemon, type TcpfoPair } from './pair.js';
import { slow } from './slow.js';

/** Whether `p` is a process that has not exited. */
function running(p: ChildProcess | undefined): p is ChildProcess {
  return !!p && p.exitCode === null && p.signalCode === null;
}

/** SIGKILLs each (in this order, at once) and waits until all have exited. */
async function killHard(ps: Array<ChildProcess | undefined>): Promise<void> {
  const live = ps.filter(running);
  const exited = live.map((p) => once(p, 'exit'));
  for (const p of live) p.kill('SIGKILL');
  await Promise.all(exited);
}

/** The node's processes: its bridge, its demo server, its other servers. */
function processesOf(pair: TcpfoPair, node: 'primary' | 'secondary'): Array<ChildProcess | undefined> {
  const d: Daemon | undefined = node === 'primary' ? pair.primary : pair.secondary;
  return [d?.proc, pair.servers[node === 'primary' ? 0 : 1], ...pair.nodeServers[node]];
}

/** Its switch port goes down: nothing more leaves or reaches it. The time of the cut. */
async function cut(pair: TcpfoPair, node: 'primary' | 'secondary'): Promise<number> {
  await pair.rig.switchExec(['ip', 'link', 'set', pair.rig.portOf(node), 'down']);
  return Date.now();
}

/**
 * The node dies: its switch port goes down (nothing more leaves or reaches
 * it), then its bridge and its servers are SIGKILLed. Returns the time of the
 * cut.
 */
export async function killNode(pair: TcpfoPair, node: 'primary' | 'secondary'): Promise<number> {
  const at = await cut(pair, node);
  await killHard(processesOf(pair, node));
  return at;
}

/**
 * The node dies as a host does, at no cost to its peer: its port goes down
 * and every process of it is stopped (SIGSTOP) at once. Killing them (which
 * `kill` does, returning how long their exit took) closes their sockets in
 * this machine's kernel, on the cores the survivor shares: 100,000 of them
 * take it about a second.
 */
export async function freezeNode(
  pair: TcpfoPair,
  node: 'primary' | 'secondary',
): Promise<{ at: number; kill: () => Promise<number> }> {
  const at = await cut(pair, node);
  const ps = processesOf(pair, node);
  for (const p of ps) if (running(p)) p.kill('SIGSTOP');
  return {
    at,
    kill: async () => {
      const t0 = Date.now();
      await killHard(ps);
      return Date.now() - t0;
    },
  };
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
  pair.servers[node === 'primary' ? 0 : 1] = await startDemoServer(rig.host(node), pair.serverAddr, DEMO_PORT);
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
