/**
 * The test rig: hosts in network namespaces on one Linux bridge, on this
 * machine, with real kernels. Used by the end-to-end tests, the demo and the
 * benchmarks.
 *
 *   client ─┐
 *   primary ─┼─ br0 (in its own "switch" namespace; hub mode floods every frame)
 *   secondary┘
 *
 * Modes: 'hub' (no learning: every frame reaches every host, as on the
 * paper's shared Ethernet), 'switch' (a learning switch), and 'mirror' (a
 * learning switch with port mirroring, SPAN: what other hosts send to the
 * primary's MAC is copied to the secondary's port, and to the secondary's MAC
 * to the primary's port — the secondary sees the clients' frames, but what it
 * sends the primary does not cross the clients' links).
 *
 * Every name carries a per-run prefix `tfo-<pid>-<rand>` so parallel runs
 * coexist, and a later run (or `sweepStaleRigs`) can tell whose owner died.
 * Everything is removed on destroy(), on process exit, on SIGINT/SIGTERM, and
 * by the next rig of any run after a SIGKILL.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, runSync, type RunOptions, type RunResult } from './exec.js';
import { slow } from './slow.js';

export const RIG_PREFIX = 'tfo';
const NAME_RE = /^tfo-(\d+)-([0-9a-f]+)-(.+)$/;

export type LanMode = 'hub' | 'switch' | 'mirror';

export interface LinkShape {
  /** tbf rate limit in Mbit/s on both directions of the host's link. */
  rateMbit?: number;
  /** Random loss per direction, 0..1, applied to IPv4 frames in the switch. */
  loss?: number;
  /**
   * Random duplication per direction, 0..1: the switch delivers the frame a
   * second time (nft netdev `dup`, so the copy bypasses the loss rules).
   */
  duplicate?: number;
  /**
   * Random reordering per direction, 0..1: that share of the host's IPv4 and IPv6 TCP
   * frames is put in a slow htb class (50 Mbit/s, 16 frames deep) on the
   * egress port, so frames sent after it overtake it — by up to a few ms; a
   * full slow class drops (the kernel has no netem here). Not with rateMbit.
   */
  reorder?: number;
}

/** The htb classes reordering uses on every switch port: fast (default) and slow. */
const REORDER_SLOW_CLASS = '1:20';
/**
 * The frames loss, duplication and reordering apply to: IPv4 ones, and IPv6
 * TCP (not neighbour discovery, as ARP is spared).
 */
const IMPAIRED = ['ether type ip', 'ether type ip6 ip6 nexthdr tcp'] as const;

export interface HostSpec {
  name: string;
  /** Last octet of the host's address in the rig subnet. */
  octet: number;
}

export interface RigOptions {
  mode?: LanMode;
  hosts?: HostSpec[];
  /** Per-host link shaping, by host name. */
  links?: Record<string, LinkShape>;
  /** Every link's MTU (a jumbo-frame LAN); the veth default, 1500, if absent. */
  mtu?: number;
}

/** Rig subnet: TEST-NET-1 (RFC 5737), never routed, and only ever inside our namespaces. */
export const RIG_SUBNET = '192.0.2';
export const RIG_PREFIX_LEN = 24;

export const DEFAULT_HOSTS: HostSpec[] = [
  { name: 'client', octet: 10 },
  { name: 'primary', octet: 1 },
  { name: 'secondary', octet: 2 },
];

export class RigUnavailableError extends Error {
  override readonly name = 'RigUnavailableError';
}

/** Fails loudly when the rig cannot run here: tests that need it must not skip. */
export function assertRigAvailable(): void {
  if (process.platform !== 'linux') throw new RigUnavailableError('the rig needs Linux network namespaces');
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new RigUnavailableError('the rig needs root (network namespaces, veth, netfilter); run the tests as root');
  }
  for (const tool of ['ip', 'tc', 'nft']) {
    if (!['/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(`${d}/${tool}`))) {
      throw new RigUnavailableError(`the rig needs \`${tool}\`; run scripts/setup-system.sh --dev`);
    }
  }
}

export class RigHost {
  readonly ifname = 'eth0';
  constructor(
    readonly rig: Rig,
    readonly name: string,
    readonly ns: string,
    readonly ip: string,
    readonly mac: string,
  ) {}

  /** Runs a command inside the host's namespace. */
  exec(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return run(['ip', 'netns', 'exec', this.ns, ...argv], opts);
  }

  /** Runs a shell script inside the host's namespace. */
  sh(script: string, opts?: RunOptions): Promise<RunResult> {
    return this.exec(['bash', '-c', script], opts);
  }

  /** Turns IPv6 on for eth0 and lo (the rig keeps it off), gives eth0 `addr`/64 without DAD, and waits for the link-local address. */
  async ipv6(addr: string): Promise<void> {
    await this.exec(['sysctl', '-qw', 'net.ipv6.conf.eth0.disable_ipv6=0', 'net.ipv6.conf.lo.disable_ipv6=0']);
    await this.exec(['ip', '-6', 'addr', 'add', `${addr}/64`, 'dev', 'eth0', 'nodad']);
    // The link-local address is tentative until its DAD is done (a second or two): until then
    // Linux sends no neighbour solicitation for an address that is not the interface's own (a
    // service address on lo), and a node's first answers wait in its neighbour queue. Real
    // nodes have had IPv6 up for long.
    for (const end = Date.now() + slow(10_000); ; await new Promise((r) => setTimeout(r, 50))) {
      const t = await this.exec(['ip', '-6', '-o', 'addr', 'show', 'dev', 'eth0', 'tentative']);
      if (!t.stdout.trim()) return;
      if (Date.now() > end) throw new Error(`${this.name}: IPv6 addresses still tentative: ${t.stdout.trim()}`);
    }
  }

  /** Starts a long-running process in the host's namespace; the rig kills it on destroy. */
  spawn(argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    return this.rig.track(
      spawn('ip', ['netns', 'exec', this.ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...opts, detached: true }),
    );
  }
}

const liveRigs = new Set<Rig>();
let handlersInstalled = false;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const r of liveRigs) r.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const r of liveRigs) r.destroySync();
      process.kill(process.pid, sig);
    });
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function listNamespaces(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

function killNamespace(ns: string): void {
  // Processes first: a namespace with live processes lingers after `del`.
  let pids = '';
  try {
    pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5000 });
  } catch {
    /* namespace already gone */
  }
  for (const p of pids.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  runSync(['ip', 'netns', 'del', ns]);
}

/**
 * Removes every rig whose owning process is gone (a run that was SIGKILLed).
 * With `all`, removes every rig, live owner or not (the `cleanup` path).
 */
export function sweepStaleRigs(all = false): string[] {
  const removed: string[] = [];
  for (const ns of listNamespaces()) {
    const m = NAME_RE.exec(ns);
    if (!m) continue;
    const pid = Number(m[1]);
    if (!all && (pidAlive(pid) || pid === process.pid)) continue;
    killNamespace(ns);
    removed.push(ns);
  }
  for (const d of safeReaddir(tmpdir())) {
    const m = /^tfo-(\d+)-[0-9a-f]+-/.exec(d);
    if (m && (all || !pidAlive(Number(m[1])))) rmSync(join(tmpdir(), d), { recursive: true, force: true });
  }
  return removed;
}

export class Rig {
  readonly hosts = new Map<string, RigHost>();
  readonly switchNs: string;
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;
  private readonly namespaces: string[] = [];
  /** A scratch directory for captures, configs and logs; removed with the rig. */
  readonly tmpdir: string;

  private constructor(
    readonly id: string,
    readonly mode: LanMode,
  ) {
    this.switchNs = `${id}-sw`;
    this.tmpdir = mkdtempSync(join(tmpdir(), `${id}-`));
  }

  static async create(opts: RigOptions = {}): Promise<Rig> {
    assertRigAvailable();
    sweepStaleRigs();
    installExitHandlers();
    const id = `${RIG_PREFIX}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const rig = new Rig(id, opts.mode ?? 'hub');
    liveRigs.add(rig);
    try {
      await rig.build(opts.hosts ?? DEFAULT_HOSTS, opts.links ?? {}, opts.mtu);
    } catch (e) {
      await rig.destroy();
      throw e;
    }
    return rig;
  }

  host(name: string): RigHost {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`rig has no host ${JSON.stringify(name)} (hosts: ${[...this.hosts.keys()].join(', ')})`);
    return h;
  }

  /** Runs a command in the switch namespace. */
  switchExec(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return run(['ip', 'netns', 'exec', this.switchNs, ...argv], opts);
  }

  /** Port name of a host's link on the switch. */
  portOf(host: string): string {
    return `p-${host}`.slice(0, 15);
  }

  track(c: ChildProcess): ChildProcess {
    this.children.add(c);
    c.once('exit', () => this.children.delete(c));
    return c;
  }

  private async addNs(ns: string): Promise<void> {
    await run(['ip', 'netns', 'add', ns]);
    this.namespaces.push(ns);
    await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    // IPv4 only: no IPv6 autoconfiguration noise on the rig's links.
    await run([
      'ip',
      'netns',
      'exec',
      ns,
      'sysctl',
      '-qw',
      'net.ipv6.conf.all.disable_ipv6=1',
      'net.ipv6.conf.default.disable_ipv6=1',
    ]);
  }

  private async build(hosts: HostSpec[], links: Record<string, LinkShape>, mtu?: number): Promise<void> {
    const seen = new Set<string>();
    for (const h of hosts) {
      if (!/^[a-z][a-z0-9]{0,12}$/.test(h.name)) throw new Error(`bad rig host name ${JSON.stringify(h.name)}`);
      if (seen.has(h.name)) throw new Error(`duplicate rig host ${h.name}`);
      seen.add(h.name);
    }
    await this.addNs(this.switchNs);
    const sw = this.switchNs;
    // Hub mode: ageing time 0 means no learned entries, so every frame floods.
    const ageing = this.mode === 'hub' ? ['ageing_time', '0'] : [];
    await run([
      'ip',
      '-n',
      sw,
      'link',
      'add',
      'br0',
      'type',
      'bridge',
      'stp_state',
      '0',
      'forward_delay',
      '0',
      ...ageing,
    ]);
    await run(['ip', '-n', sw, 'link', 'set', 'br0', 'up']);
    for (const [i, h] of hosts.entries()) {
      const ns = `${this.id}-${h.name}`;
      await this.addNs(ns);
      const port = this.portOf(h.name);
      const mac = `02:00:00:00:00:${(i + 1).toString(16).padStart(2, '0')}`;
      const ip = `${RIG_SUBNET}.${h.octet}`;
      await run(['ip', '-n', sw, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      if (mtu !== undefined) {
        await run(['ip', '-n', sw, 'link', 'set', port, 'mtu', String(mtu)]);
        await run(['ip', '-n', ns, 'link', 'set', 'eth0', 'mtu', String(mtu)]);
      }
      await run(['ip', '-n', sw, 'link', 'set', port, 'master', 'br0', 'up']);
      // Hub: no learning on the port, so no unicast destination is ever known and every frame floods.
      if (this.mode === 'hub')
        await run(['bridge', '-n', sw, 'link', 'set', 'dev', port, 'learning', 'off', 'flood', 'on']);
      await run(['ip', '-n', ns, 'link', 'set', 'eth0', 'address', mac]);
      await run(['ip', '-n', ns, 'addr', 'add', `${ip}/${RIG_PREFIX_LEN}`, 'dev', 'eth0']);
      await run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
      this.hosts.set(h.name, new RigHost(this, h.name, ns, ip, mac));
    }
    if (mtu !== undefined) await run(['ip', '-n', sw, 'link', 'set', 'br0', 'mtu', String(mtu)]);
    if (this.mode === 'mirror') await this.mirrorPorts();
    for (const [name, shape] of Object.entries(links)) await this.shape(name, shape);
  }

  /** 'mirror' mode: frames from every other host to the primary's (secondary's) MAC are copied to the secondary's (primary's) port. */
  private async mirrorPorts(): Promise<void> {
    const p = this.hosts.get('primary');
    const s = this.hosts.get('secondary');
    if (!p || !s) throw new Error("mirror mode needs hosts named 'primary' and 'secondary'");
    const lines = ['table netdev span {'];
    for (const h of this.hosts.values()) {
      if (h === p || h === s) continue;
      lines.push(
        `  chain from_${h.name} { type filter hook ingress device "${this.portOf(h.name)}" priority -10; policy accept;`,
        `    ether daddr ${p.mac} counter dup to "${this.portOf(s.name)}"`,
        `    ether daddr ${s.mac} counter dup to "${this.portOf(p.name)}"`,
        '  }',
      );
    }
    lines.push('}');
    await this.switchExec(['nft', '-f', '-'], { input: lines.join('\n') });
  }

  /** Applies a rate limit, random loss, duplication and/or reordering to one host's link (both directions). */
  async shape(hostName: string, shape: LinkShape): Promise<void> {
    const h = this.host(hostName);
    if (shape.rateMbit !== undefined) {
      if (!(shape.rateMbit > 0)) throw new Error(`bad rate ${shape.rateMbit}`);
      if (this.reorderPorts.size)
        throw new Error('reorder and rateMbit cannot be combined in the rig (both need the port’s root qdisc)');
      // Burst: at least one jiffy's worth at the rate, and a few full frames.
      const burst = Math.max(32 * 1024, Math.ceil((shape.rateMbit * 1e6) / 8 / 250));
      const tbf = ['root', 'tbf', 'rate', `${shape.rateMbit}mbit`, 'burst', String(burst), 'latency', '50ms'];
      await run(['ip', 'netns', 'exec', h.ns, 'tc', 'qdisc', 'replace', 'dev', 'eth0', ...tbf]);
      await this.switchExec(['tc', 'qdisc', 'replace', 'dev', this.portOf(hostName), ...tbf]);
    }
    if (shape.loss !== undefined) {
      if (!(shape.loss >= 0 && shape.loss < 1)) throw new Error(`bad loss ${shape.loss}`);
      await this.switchExec(['nft', 'delete', 'table', 'bridge', `loss_${hostName}`], { allowFail: true });
    }
    if (shape.loss) {
      const table = `loss_${hostName}`;
      const port = this.portOf(hostName);
      const threshold = Math.round(shape.loss * 1_000_000);
      const rules = [
        `table bridge ${table} {`,
        '  chain lossy {',
        '    type filter hook forward priority 0; policy accept;',
        ...IMPAIRED.flatMap((m) => [
          `    iifname "${port}" ${m} numgen random mod 1000000 < ${threshold} counter drop`,
          `    oifname "${port}" ${m} numgen random mod 1000000 < ${threshold} counter drop`,
        ]),
        '  }',
        '}',
      ].join('\n');
      await this.switchExec(['nft', '-f', '-'], { input: rules });
    }
    if (shape.duplicate !== undefined) await this.impair(hostName, 'duplicate', shape.duplicate);
    if (shape.reorder !== undefined) {
      if (shape.rateMbit !== undefined || this.shapedRates.size)
        throw new Error('reorder and rateMbit cannot be combined in the rig (both need the port’s root qdisc)');
      await this.impair(hostName, 'reorder', shape.reorder);
    }
    if (shape.rateMbit !== undefined) this.shapedRates.add(hostName);
  }

  private readonly shapedRates = new Set<string>();

  /** Frames of `hostName` (both directions) that nft duplicates or reorders. */
  private async impair(hostName: string, kind: 'duplicate' | 'reorder', share: number): Promise<void> {
    if (!(share >= 0 && share < 1)) throw new Error(`bad ${kind} share ${share}`);
    const port = this.portOf(hostName);
    const table = `${kind}_${hostName}`;
    const family = kind === 'duplicate' ? 'netdev' : 'bridge';
    await this.switchExec(['nft', 'delete', 'table', family, table], { allowFail: true });
    const threshold = Math.round(share * 1_000_000);
    if (threshold === 0) return;
    const others = [...this.hosts.keys()].filter((n) => n !== hostName).map((n) => this.portOf(n));
    const rnd = `numgen random mod 1000000 < ${threshold}`;
    const lines = [`table ${family} ${table} {`];
    if (kind === 'duplicate') {
      // From the host: a copy straight to each other port. To the host: a copy
      // of what any other port brings in (the hub floods everything anyway).
      lines.push(`  chain from_host { type filter hook ingress device "${port}" priority 0; policy accept;`);
      for (const o of others) for (const m of IMPAIRED) lines.push(`    ${m} ${rnd} counter dup to "${o}"`);
      lines.push('  }');
      others.forEach((o, i) => {
        lines.push(
          `  chain to_host_${i} { type filter hook ingress device "${o}" priority 0; policy accept;`,
          ...IMPAIRED.map((m) => `    ${m} ${rnd} counter dup to "${port}"`),
          '  }',
        );
      });
    } else {
      for (const n of this.hosts.keys()) await this.reorderQdisc(this.portOf(n));
      lines.push(
        '  chain slow { type filter hook forward priority 0; policy accept;',
        ...IMPAIRED.flatMap((m) => [
          `    iifname "${port}" ${m} ${rnd} counter meta priority set ${REORDER_SLOW_CLASS}`,
          `    oifname "${port}" ${m} ${rnd} counter meta priority set ${REORDER_SLOW_CLASS}`,
        ]),
        '  }',
      );
    }
    lines.push('}');
    await this.switchExec(['nft', '-f', '-'], { input: lines.join('\n') });
  }

  private readonly reorderPorts = new Set<string>();

  /** htb on a switch port: class 1:10 fast (the default), 1:20 slow and short. */
  private async reorderQdisc(port: string): Promise<void> {
    if (this.reorderPorts.has(port)) return;
    this.reorderPorts.add(port);
    const tc = (...a: string[]) => this.switchExec(['tc', ...a]);
    await tc('qdisc', 'replace', 'dev', port, 'root', 'handle', '1:', 'htb', 'default', '10');
    await tc('class', 'add', 'dev', port, 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '20gbit');
    await tc(
      'class',
      'add',
      'dev',
      port,
      'parent',
      '1:',
      'classid',
      REORDER_SLOW_CLASS,
      'htb',
      'rate',
      '50mbit',
      'ceil',
      '50mbit',
    );
    await tc('qdisc', 'add', 'dev', port, 'parent', REORDER_SLOW_CLASS, 'pfifo', 'limit', '16');
  }

  /** Removes everything the rig created, and waits for its processes to be reaped. Safe to call twice. */
  async destroy(): Promise<void> {
    const exits = [...this.children]
      .filter((c) => c.exitCode === null && c.signalCode === null)
      .map(
        (c) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 5000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
          }),
      );
    this.destroySync();
    await Promise.all(exits);
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const c of this.children) {
      if (c.pid !== undefined) {
        try {
          process.kill(-c.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    this.children.clear();
    for (const ns of [...this.namespaces].reverse()) killNamespace(ns);
    keepLogs(this.tmpdir);
    rmSync(this.tmpdir, { recursive: true, force: true });
    liveRigs.delete(this);
  }
}

/** Creates a rig, runs `body` with it, and always removes it. */
export async function withRig<T>(opts: RigOptions, body: (rig: Rig) => Promise<T>): Promise<T> {
  const rig = await Rig.create(opts);
  try {
    return await body(rig);
  } finally {
    await rig.destroy();
  }
}

/** Names of namespaces that belong to a given rig id (for leak checks in tests). */
export function namespacesOf(id: string): string[] {
  return listNamespaces().filter((n) => n.startsWith(`${id}-`));
}

/**
 * TCPFO_RIG_KEEP_LOGS=DIR: the bridges' and servers' logs of every rig are
 * copied there before the rig is removed (scripts/kernel-vm.sh --logs, where
 * nothing of the VM outlives it otherwise).
 */
function keepLogs(dir: string): void {
  const to = process.env.TCPFO_RIG_KEEP_LOGS;
  if (!to) return;
  try {
    const into = join(to, dir.split('/').pop()!);
    mkdirSync(into, { recursive: true });
    for (const f of safeReaddir(dir)) if (f.endsWith('.log')) copyFileSync(join(dir, f), join(into, f));
  } catch {
    /* diagnostics only */
  }
}
