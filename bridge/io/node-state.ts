/**
 * Link and kernel settings the bridge changes on its node — sysctls,
 * promiscuous mode, addresses — each recorded in a journal file *before* it
 * is changed, so that stop(), the next start after a SIGKILL, and
 * `tcpfo cleanup` can put the node back as it was.
 */
import { mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { failureOf, run } from './run.js';

export type Change =
  | { kind: 'sysctl'; key: string; previous: string }
  | { kind: 'promisc'; dev: string; previous: boolean }
  | { kind: 'address'; dev: string; cidr: string }
  /** A clsact qdisc the bridge added (for its tc program); removed with everything on it. */
  | { kind: 'clsact'; dev: string };

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
  async addAddress(dev: string, cidr: string): Promise<void> {
    if (await hasAddress(dev, cidr)) return;
    this.record({ kind: 'address', dev, cidr });
    await ip(['addr', 'add', cidr, 'dev', dev]);
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
   * A dormant service address: configured on `lo` so the kernel accepts
   * packets for it and sockets can use it, while ARP answers for it are
   * suppressed on every interface (arp_ignore=1: answer only for addresses
   * of the receiving interface; arp_announce=2: never use it as ARP source).
   */
  async addDormantAddress(vip: string, lanDev: string): Promise<void> {
    for (const d of ['all', lanDev]) {
      await this.setSysctl(`net.ipv4.conf.${d}.arp_ignore`, 1);
      await this.setSysctl(`net.ipv4.conf.${d}.arp_announce`, 2);
    }
    await this.addAddress('lo', `${vip}/32`);
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
  }
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
  }
}
