/**
 * What this kernel offers each data path mode, found without changing
 * anything: the release, the sysctls, and whether the modules are built in,
 * loaded or loadable. The bridges log it at start, `tcpfo status` and
 * `tcpfo check-config` print it. Each mode still proves itself when it
 * starts (a program that does not load, a rule that is refused) and falls
 * back as its config allows; this says beforehand what to expect, and why.
 * docs/kernels.md has the same table with the versions.
 */
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { hasSysctl } from './node-state.js';

export interface Facility {
  /** What the kernel provides. */
  readonly name: string;
  /** The first Linux release that has it. */
  readonly since: string;
  /** What uses it (the config setting and value). */
  readonly usedBy: string;
  /** What runs instead on a kernel without it. */
  readonly fallback: string;
  /** Present here: true, false, or null where it cannot be told (no module lists). */
  readonly present: boolean | null;
}

export interface KernelReport {
  readonly release: string;
  readonly facilities: readonly Facility[];
}

/** Where the kernel's module lists are (a test may point elsewhere). */
export interface KernelSources {
  release: string;
  /** /lib/modules/<release>. */
  modulesDir: string;
  /** /sys/module: loaded modules (and built-ins with parameters). */
  sysModule: string;
  /** Whether /proc/sys/<key> exists. */
  hasSysctl: (key: string) => boolean;
}

export function kernelRelease(): string {
  return release();
}

const HOST: () => KernelSources = () => ({
  release: kernelRelease(),
  modulesDir: `/lib/modules/${kernelRelease()}`,
  sysModule: '/sys/module',
  hasSysctl,
});

/** The release's major and minor numbers ("6.1.0-57-amd64" → [6, 1]); [0, 0] if unreadable. */
export function versionOf(rel: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

function atLeast(rel: string, major: number, minor: number): boolean {
  const [a, b] = versionOf(rel);
  return a > major || (a === major && b >= minor);
}

/** Whether module `name` is loaded, built in or loadable here; null when neither list can be read. */
export function moduleAvailable(src: KernelSources, name: string): boolean | null {
  const alt = name.replace(/-/g, '_');
  if (existsSync(`${src.sysModule}/${alt}`)) return true;
  let known = false;
  for (const list of ['modules.builtin', 'modules.dep']) {
    let text: string;
    try {
      text = readFileSync(`${src.modulesDir}/${list}`, 'utf8');
    } catch {
      continue;
    }
    known = true;
    const re = new RegExp(`(^|/)(${name}|${alt})\\.ko(\\.[a-z]+)?:?(\\s|$)`, 'm');
    if (re.test(text)) return true;
  }
  return known ? false : null;
}

/** Both: false if either is false, else null if either is unknown. */
function all(...xs: Array<boolean | null>): boolean | null {
  if (xs.includes(false)) return false;
  return xs.includes(null) ? null : true;
}

/** The facilities the data paths use, and whether this kernel has each. */
export function probeKernel(src: KernelSources = HOST()): KernelReport {
  const rel = src.release;
  const mod = (n: string) => moduleAvailable(src, n);
  const facilities: Facility[] = [
    {
      name: 'NFQUEUE with GSO (nfnetlink_queue)',
      since: '3.10',
      usedBy: 'merge: queue (and every mode’s slow path); datapath: pcap',
      fallback: 'none: required',
      present: all(atLeast(rel, 3, 10), mod('nfnetlink_queue')),
    },
    {
      name: 'nftables netdev ingress hook, meta pkttype set (nf_tables)',
      since: '4.2',
      usedBy: 'datapath: kernel (the secondary’s ingress rewrite and divert)',
      fallback: 'datapath: pcap',
      present: all(atLeast(rel, 4, 2), mod('nf_tables')),
    },
    {
      name: 'tc clsact with BPF programs (sch_ingress, cls_bpf), bpf_spin_lock, bpf_redirect_neigh, BPF ring buffer',
      since: '5.10',
      usedBy: 'inbound: kernel; merge: kernel (the primary’s translation and merge)',
      fallback: 'inbound: queue; merge: queue',
      present: all(atLeast(rel, 5, 10), mod('sch_ingress'), mod('cls_bpf')),
    },
    {
      name: 'iptables BPF match on a pinned program (xt_bpf)',
      since: '4.10',
      usedBy: 'merge: kernel / release (segments past the output queue)',
      fallback: 'merge: queue',
      present: all(atLeast(rel, 4, 10), mod('xt_bpf')),
    },
    {
      name: 'net.ipv4.tcp_rto_min_us',
      since: '6.11',
      usedBy: 'failover.rto_bound: sysctl (auto where present)',
      fallback: 'failover.rto_bound: routes (the rto_min metric of the LAN routes)',
      present: src.hasSysctl('net.ipv4.tcp_rto_min_us'),
    },
  ];
  return { release: rel, facilities };
}

/** The facilities `r` lacks (those it cannot tell are not among them). */
export function lacking(r: KernelReport): Facility[] {
  return r.facilities.filter((f) => f.present === false);
}

/** One line: the release, what it has and what it lacks (with what runs instead). */
export function describeKernel(r: KernelReport): string {
  const lacks = lacking(r);
  const unknown = r.facilities.filter((f) => f.present === null);
  const parts = [`kernel ${r.release}`];
  parts.push(
    lacks.length
      ? `lacks ${lacks.map((f) => `${f.name} (Linux ${f.since}; instead ${f.fallback})`).join('; ')}`
      : 'has every facility the data paths use',
  );
  if (unknown.length) parts.push(`cannot tell (no module lists): ${unknown.map((f) => f.name).join('; ')}`);
  return parts.join(': ');
}

/** This process's kernel: probed once; where the node's RTO bound went once prepareNode set it. */
let probed: KernelReport | undefined;
let rtoBoundHere: 'sysctl' | 'routes' | undefined;

export function thisKernel(): KernelReport {
  return (probed ??= probeKernel());
}

export function noteRtoBound(where: 'sysctl' | 'routes'): void {
  rtoBoundHere = where;
}

/** For `tcpfo status`: the release, what it lacks, where the RTO bound is set. */
export function kernelStatus(): { release: string; lacks: string[]; rtoBound: 'sysctl' | 'routes' | null } {
  const r = thisKernel();
  return { release: r.release, lacks: lacking(r).map((f) => f.name), rtoBound: rtoBoundHere ?? null };
}
