/**
 * Link and kernel settings the bridge changes on its node — sysctls,
 * promiscuous mode, addresses — each recorded in a journal file *before* it
 * is changed, so that stop(), the next start after a SIGKILL, and
 * `tcpfo cleanup` can put the node back as it was.
 */
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { failureOf, run } from './run.js';
import { ipAddr, ipAddrToString } from '../../net/addr.js';

export type Change =
  | { kind: 'sysctl'; key: string; previous: string }
  | { kind: 'promisc'; dev: string; previous: boolean }
  | { kind: 'address'; dev: string; cidr: string }
  /** A clsact qdisc the bridge added (for its tc program); removed with everything on it. */
  | { kind: 'clsact'; dev: string }
  /** A route of table main through `dev`, as `ip route show` printed it before the bridge set its rto_min (`ip route change` puts it back). */
  | { kind: 'route'; dev: string; route: string };

/** This process's network namespace (e.g. "net:[4026531840]"): journals apply only where they were written. */
function currentNetns(): string {
  try {
    return readlinkSync('/proc/self/ns/net');
  } catch {
    return 'unknown';
  }
}

export class NodeStateError extends Error {
  override readonly name = 'NodeStateError';
}

async function ip(args: string[]): Promise<string> {
  try {
    return await run('ip', args, { timeoutMs: 10_000 });
  } catch (e) {
    throw new NodeStateError(failureOf('ip', args, e));
  }
}

function sysctlPath(key: string): string {
  if (!/^[a-z0-9_.\-/]+$/i.test(key) || key.includes('..')) throw new NodeStateError(`bad sysctl key ${key}`);
  return join('/proc/sys', key.replace(/\./g, '/'));
}

export function readSysctl(key: string): string {
  return readFileSync(sysctlPath(key), 'utf8').trim();
}

/** Whether this kernel has the sysctl `key`. */
export function hasSysctl(key: string): boolean {
  return existsSync(sysctlPath(key));
}

function writeSysctl(key: string, value: string): void {
  writeFileSync(sysctlPath(key), value);
}

async function isPromisc(dev: string): Promise<boolean> {
  const out = await ip(['-j', 'link', 'show', 'dev', dev]);
  const links = JSON.parse(out) as Array<{ flags?: string[] }>;
  return links[0]?.flags?.includes('PROMISC') ?? false;
}

async function hasAddress(dev: string, cidr: string): Promise<boolean> {
  const out = await ip(['-j', 'addr', 'show', 'dev', dev]);
  const links = JSON.parse(out) as Array<{ addr_info?: Array<{ local: string; prefixlen: number }> }>;
  return (links[0]?.addr_info ?? []).some((a) => `${a.local}/${a.prefixlen}` === cidr);
}

export class NodeState {
  private changes: Change[] = [];

  /** `journal`: the file recording changes, e.g. /run/tcpfo/<tag>.json. */
  constructor(readonly journal: string) {}

  private save(): void {
    mkdirSync(dirname(this.journal), { recursive: true });
    const tmp = `${this.journal}.tmp`;
    writeFileSync(tmp, JSON.stringify({ pid: process.pid, netns: currentNetns(), changes: this.changes }, null, 1));
    renameSync(tmp, this.journal);
  }

  private record(c: Change): void {
    this.changes.push(c);
    this.save();
  }

  /** Sets a sysctl (e.g. net.ipv4.conf.eth0.arp_ignore), remembering the old value. */
  async setSysctl(key: string, value: string | number): Promise<void> {
    const previous = readSysctl(key);
    if (previous === String(value)) return;
    this.record({ kind: 'sysctl', key, previous });
    writeSysctl(key, String(value));
  }

  async setPromisc(dev: string, on: boolean): Promise<void> {
    const previous = await isPromisc(dev);
    if (previous === on) return;
    this.record({ kind: 'promisc', dev, previous });
    await ip(['link', 'set', 'dev', dev, 'promisc', on ? 'on' : 'off']);
  }

  /** Adds an address (a.b.c.d/len) to a device; removed again on undo. */
  async addAddress(dev: string, cidr: string, flags: readonly string[] = []): Promise<void> {
    if (await hasAddress(dev, cidr)) return;
    this.record({ kind: 'address', dev, cidr });
    await ip(['addr', 'add', cidr, 'dev', dev, ...flags]);
  }

  /** Removes an address this instance added (and forgets it). */
  async removeAddress(dev: string, cidr: string): Promise<void> {
    const i = this.changes.findIndex((c) => c.kind === 'address' && c.dev === dev && c.cidr === cidr);
    if (i < 0) return;
    await undoChange(this.changes[i]!);
    this.changes.splice(i, 1);
    this.save();
  }

  /** Adds a clsact qdisc to `dev` (where the bridge's tc program hangs) unless there is one. */
  async addClsact(dev: string): Promise<void> {
    if (await hasClsact(dev)) return;
    this.record({ kind: 'clsact', dev });
    await tc(['qdisc', 'add', 'dev', dev, 'clsact']);
  }

  /**
   * Sets `rto_min` (locked: TCP takes it over its own minimum) on every
   * route of table main through `dev`: where the kernel has no
   * net.ipv4.tcp_rto_min_us (before 6.11), the node's bound on the
   * retransmission timeout is the route's. Multipath routes are left as
   * they are (their text is not an `ip route change` argument). Returns the
   * routes set.
   */
  async setRouteRtoMin(dev: string, ms: number): Promise<string[]> {
    const set: string[] = [];
    for (const route of unipathRoutes(await ip(['route', 'show', 'table', 'main', 'dev', dev]))) {
      const plain = withoutRtoMin(route);
      if (plain !== route) continue; // set already (by whom, the journal would say)
      this.record({ kind: 'route', dev, route: plain });
      await ip(['route', 'change', ...routeArgs(plain), 'dev', dev, 'rto_min', `${ms}ms`]);
      set.push(plain);
    }
    return set;
  }

  /**
   * A dormant service address: configured on `lo` so the kernel accepts
   * packets for it and sockets can use it, while ARP answers for it are
   * suppressed on every interface (arp_ignore=1: answer only for addresses
   * of the receiving interface; arp_announce=2: never use it as ARP source).
   * An IPv6 one (`vip6`) the same way, without duplicate address detection
   * (its probe would ask the LAN whether the active node holds it): Linux
   * answers solicitations only for the receiving interface's addresses, so
   * one on `lo` is never answered on the LAN.
   */
  async addDormantAddress(vip: string, lanDev: string, vip6: string | null = null): Promise<void> {
    for (const d of ['all', lanDev]) {
      await this.setSysctl(`net.ipv4.conf.${d}.arp_ignore`, 1);
      await this.setSysctl(`net.ipv4.conf.${d}.arp_announce`, 2);
    }
    await this.addAddress('lo', `${vip}/32`);
    if (vip6 !== null) await this.addAddress('lo', `${ipAddrToString(ipAddr(vip6))}/128`, ['nodad']);
  }

  get recorded(): readonly Change[] {
    return this.changes;
  }

  /** Undoes every change, newest first, and removes the journal. */
  async undoAll(): Promise<void> {
    const errors: string[] = [];
    for (const c of [...this.changes].reverse()) {
      try {
        await undoChange(c);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    this.changes = [];
    rmSync(this.journal, { force: true });
    if (errors.length) throw new NodeStateError(`undo incomplete: ${errors.join('; ')}`);
  }

  /** Undoes what a previous (killed) instance recorded in `journal`, if anything. */
  static async recover(journal: string): Promise<Change[]> {
    let parsed: { changes?: Change[]; netns?: string };
    try {
      parsed = JSON.parse(readFileSync(journal, 'utf8')) as { changes?: Change[]; netns?: string };
    } catch {
      rmSync(journal, { force: true });
      return [];
    }
    // Written in another network namespace (another node sharing this
    // filesystem, or a container): not ours to undo.
    if (parsed.netns !== undefined && parsed.netns !== currentNetns()) return [];
    const s = new NodeState(journal);
    s.changes = parsed.changes ?? [];
    const undone = [...s.changes];
    await s.undoAll();
    return undone;
  }

  /** Recovers every journal in a directory (the `cleanup` path). */
  static async recoverAll(dir: string): Promise<Change[]> {
    let files: string[] = [];
    try {
      files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    } catch {
      return [];
    }
    const all: Change[] = [];
    for (const f of files) all.push(...(await NodeState.recover(join(dir, f))));
    return all;
  }
}

async function undoChange(c: Change): Promise<void> {
  switch (c.kind) {
    case 'sysctl':
      writeSysctl(c.key, c.previous);
      return;
    case 'promisc':
      await ip(['link', 'set', 'dev', c.dev, 'promisc', c.previous ? 'on' : 'off']);
      return;
    case 'address':
      if (await hasAddress(c.dev, c.cidr)) await ip(['addr', 'del', c.cidr, 'dev', c.dev]);
      return;
    case 'clsact':
      if (await hasClsact(c.dev)) await tc(['qdisc', 'del', 'dev', c.dev, 'clsact']);
      return;
    case 'route':
      // Gone meanwhile (its address or link removed): nothing to put back.
      if (
        unipathRoutes(await ip(['route', 'show', 'table', 'main', 'dev', c.dev])).some((r) => sameRoute(r, c.route))
      ) {
        await ip(['route', 'change', ...routeArgs(c.route), 'dev', c.dev]);
      }
      return;
  }
}

/** Words `ip route show` prints about a route's state that `ip route change` does not take. */
const STATE_FLAGS = new Set([
  'linkdown',
  'dead',
  'offload',
  'trap',
  'offload_failed',
  'rt_offload',
  'rt_trap',
  'rt_offload_failed',
  'pervasive',
  'notify',
]);

/** The single-path routes of `ip route show … dev X` output, one line each (a multipath route's nexthop lines follow it, indented). */
export function unipathRoutes(out: string): string[] {
  const lines = out.split('\n');
  const routes: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (!l.trim() || /^\s/.test(l)) continue;
    if (/^\s/.test(lines[i + 1] ?? '') || /\bnexthop\b/.test(l)) continue;
    routes.push(l.trim().split(/\s+/).join(' '));
  }
  return routes;
}

/** A route's text without its rto_min metric (as `ip route show` prints it: `rto_min lock 20ms`). */
export function withoutRtoMin(route: string): string {
  return route.replace(/ rto_min (lock )?\S+/, '');
}

/** A route's text as `ip route change` arguments (state words left out). */
export function routeArgs(route: string): string[] {
  return route.split(' ').filter((w) => w && !STATE_FLAGS.has(w));
}

function sameRoute(a: string, b: string): boolean {
  return routeArgs(withoutRtoMin(a)).join(' ') === routeArgs(b).join(' ');
}

async function tc(args: string[]): Promise<string> {
  try {
    return await run('tc', args, { timeoutMs: 10_000 });
  } catch (e) {
    throw new NodeStateError(failureOf('tc', args, e));
  }
}

async function hasClsact(dev: string): Promise<boolean> {
  const out = await tc(['-j', 'qdisc', 'show', 'dev', dev]).catch(() => '[]');
  return (JSON.parse(out || '[]') as Array<{ kind?: string }>).some((q) => q.kind === 'clsact');
}

/** One journal entry in words (for `tcpfo cleanup` and logs). */
export function describeChange(c: Change): string {
  switch (c.kind) {
    case 'sysctl':
      return `sysctl ${c.key}=${c.previous}`;
    case 'promisc':
      return `promisc ${c.dev} ${c.previous ? 'on' : 'off'}`;
    case 'address':
      return `address ${c.cidr} off ${c.dev}`;
    case 'clsact':
      return `clsact qdisc off ${c.dev}`;
    case 'route':
      return `route ${c.route} dev ${c.dev} without rto_min`;
  }
}
