/**
 * A tcpfo pair in the rig: a config file, the same server on both nodes, and
 * both bridges started through the real CLI. Used by the end-to-end tests,
 * the demo and the benchmarks.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { randomBytes } from 'node:crypto';
import { appendFileSync, createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { distScript } from './dist.js';
import type { Rig, RigHost } from './rig.js';
import { slow, TIME_SCALE } from './slow.js';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

export const VIP = '192.0.2.100';
/** The IPv6 service address of a dual-stack pair (`ipv6`); each host's own is v6Of its IPv4 one. */
export const VIP6 = '2001:db8::100';
export const DEMO_PORT = 7000;

/** The link-local address Linux gives an interface with MAC `mac` (EUI-64, RFC 4291 appendix A). */
export function linkLocalOf(mac: string): string {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  const w = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
  return `fe80::${w(b[0]! ^ 2, b[1]!)}:${w(b[2]!, 0xff)}:${w(0xfe, b[3]!)}:${w(b[4]!, b[5]!)}`;
}

/** A rig host's IPv6 address (documentation prefix, RFC 3849): the last octet of its IPv4 one. */
export function v6Of(ip4: string): string {
  return `2001:db8::${ip4.split('.').at(-1)}`;
}

export interface PairOptions {
  ports?: Array<number | string>;
  /** Extra YAML appended to the config. */
  extraYaml?: string;
  /** Start the demo server on both nodes (default true). */
  demoServer?: boolean;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  /** Extra Node.js options for the two bridge processes (e.g. --cpu-prof). */
  daemonNodeArgs?: string[];
  /** Start the bridges with TCPFO_TEST_FAULTS=1 (bridge/node/faults.ts): tests inject faults through `fault()`. */
  faults?: boolean;
  /** The secondary's data path (config `datapath`; default auto: the kernel path where the kernel can). */
  datapath?: 'auto' | 'kernel' | 'pcap';
  /** Extra environment for each node's bridge process (e.g. LD_PRELOAD). */
  daemonEnv?: Partial<Record<'primary' | 'secondary', Record<string, string>>>;
  /** A command each bridge process runs under (e.g. setpriv with the systemd unit's capabilities). */
  daemonWrap?: string[];
  /**
   * A dual-stack service: every host gets an IPv6 address (v6Of), the
   * service VIP and VIP6, the nodes both families, and the demo servers
   * listen on [::] (both). 'link-local': the nodes' IPv6 addresses in the
   * configuration are their link-local ones.
   */
  ipv6?: boolean | 'link-local';
}

export interface Daemon {
  proc: ChildProcess;
  log: string;
  /** Resolves once everything the daemon wrote is in the log file (the process may exit earlier). */
  flushed: Promise<void>;
}

export class TcpfoPair {
  primary?: Daemon;
  secondary?: Daemon;
  /** The demo servers: the primary's first, then the secondary's (killNode kills a node's), then any others. */
  readonly servers: ChildProcess[] = [];
  /** More server processes of each node, killed with it (killNode) and stopped with the pair. */
  readonly nodeServers: Record<'primary' | 'secondary', ChildProcess[]> = { primary: [], secondary: [] };

  constructor(
    readonly rig: Rig,
    readonly configFile: string,
    private readonly daemonNodeArgs: readonly string[] = [],
    private readonly faults = false,
    private readonly daemonWrap: readonly string[] = [],
    /** Where the demo servers listen: the VIP, or [::] for a dual-stack pair. */
    readonly serverAddr = VIP,
  ) {}

  static async start(rig: Rig, opts: PairOptions = {}): Promise<TcpfoPair> {
    const p = rig.host('primary');
    const s = rig.host('secondary');
    const ports = opts.ports ?? [DEMO_PORT];
    const keyFile = join(rig.tmpdir, 'heartbeat.key');
    writeFileSync(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    if (opts.ipv6) await Promise.all([rig.host('client'), p, s].map((h) => h.ipv6(v6Of(h.ip))));
    const addresses = (ip4: string, ip6: string) => (opts.ipv6 ? `[${ip4}, "${ip6}"]` : ip4);
    const node6 = (h: RigHost) => (opts.ipv6 === 'link-local' ? linkLocalOf(h.mac) : v6Of(h.ip));
    const yaml = [
      'service:',
      `  address: ${addresses(VIP, VIP6)}`,
      `  ports: [${ports.map((x) => (typeof x === 'string' ? JSON.stringify(x) : x)).join(', ')}]`,
      'primary:',
      `  address: ${addresses(p.ip, node6(p))}`,
      '  interface: eth0',
      `  mac: "${p.mac}"`,
      'secondary:',
      `  address: ${addresses(s.ip, node6(s))}`,
      '  interface: eth0',
      `  mac: "${s.mac}"`,
      `datapath: ${opts.datapath ?? 'auto'}`,
      'lan:',
      `  mode: ${rig.mode}`,
      'heartbeat:',
      `  key_file: ${keyFile}`,
      `  interval_ms: ${slow(opts.heartbeatIntervalMs ?? 20)}`,
      // Scaled, within the configuration's bound (60 s).
      `  timeout_ms: ${Math.min(slow(opts.heartbeatTimeoutMs ?? 100), 60_000)}`,
      `  startup_grace_ms: ${slow(5000)}`,
      'instance: t',
      extraYaml(opts.extraYaml),
    ].join('\n');
    // One file per node, the same but for state_dir: real nodes have a /run
    // of their own, the rig's namespaces share one filesystem (and a node
    // that swaps roles must not meet the other node's journal or socket).
    for (const n of ['primary', 'secondary'])
      writeFileSync(join(rig.tmpdir, `tcpfo-${n}.yaml`), `${yaml}\nstate_dir: ${stateDirOf(rig, n)}\n`);
    const pair = new TcpfoPair(
      rig,
      join(rig.tmpdir, 'tcpfo-primary.yaml'),
      opts.daemonNodeArgs ?? [],
      opts.faults ?? false,
      opts.daemonWrap ?? [],
      opts.ipv6 ? '::' : VIP,
    );
    // Bridges first (they put the VIP on lo), then the servers bind it.
    pair.secondary = await pair.startDaemon(s, 'secondary', opts.daemonEnv?.secondary);
    pair.primary = await pair.startDaemon(p, 'primary', opts.daemonEnv?.primary);
    if (opts.demoServer ?? true) {
      for (const h of [p, s]) pair.servers.push(await startDemoServer(h, pair.serverAddr, DEMO_PORT));
    }
    return pair;
  }

  /** Starts a bridge; `cli`: another tcpfo's cli.js (an older version, for a rolling upgrade); `ready`: the log text that says it is up. */
  async startDaemon(
    host: RigHost,
    role: 'primary' | 'secondary',
    env: Record<string, string> = {},
    cli = distScript('cli.js'),
    ready = 'bridge up',
  ): Promise<Daemon> {
    const log = join(this.rig.tmpdir, `${role}.log`);
    // A restarted bridge appends to its predecessor's log: look only at what it writes.
    const from = safeRead(log).length;
    const out = createWriteStream(log, { flags: 'a' });
    const proc = host.spawn(
      [...this.daemonWrap, process.execPath, ...this.daemonNodeArgs, cli, role, '-c', this.configFor(host.name)],
      {
        env: {
          ...process.env,
          TCPFO_LOG_LEVEL: 'info',
          ...(this.faults ? { TCPFO_TEST_FAULTS: '1' } : {}),
          // In tests a packet view kept past its queue batch reads garbage (bridge/io/nfqueue.ts); benches run as shipped.
          ...(process.env.VITEST ? { TCPFO_TEST_POISON: '1' } : {}),
          ...env,
        },
      },
    );
    // Both pipes feed one file; it is finished once both have ended.
    proc.stdout?.pipe(out, { end: false });
    proc.stderr?.pipe(out, { end: false });
    // How each bridge process ended, for the story of a failure (a signal leaves no line of its own).
    proc.once('exit', (code, signal) => {
      // Best effort: the rig may be gone already (a bridge that outlived a failed start).
      try {
        appendFileSync(
          log,
          `${JSON.stringify({ rig: 'bridge exited', pid: proc.pid, role, code, signal, time: Date.now() })}\n`,
        );
      } catch {
        /* the rig's directory is removed */
      }
    });
    const flushed = Promise.all([
      proc.stdout ? once(proc.stdout, 'end') : null,
      proc.stderr ? once(proc.stderr, 'end') : null,
    ])
      .then(() => new Promise<void>((resolve) => out.end(resolve)))
      .catch(() => undefined);
    const deadline = Date.now() + slow(15_000);
    for (;;) {
      const text = safeRead(log).slice(from);
      if (text.includes(ready)) break;
      if (proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`${role} bridge did not start (exit ${proc.exitCode}):\n${text}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return { proc, log, flushed };
  }

  /**
   * Injects a fault into the bridge running on `node` (bridge/node/faults.ts;
   * the pair must have been started with `faults: true`). `role`: the
   * bridge role that daemon plays now (p or s).
   */
  async fault(node: 'primary' | 'secondary', role: 'p' | 's', command: string): Promise<void> {
    const path = join(stateDirOf(this.rig, node), `t${role}.faults.sock`);
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = createConnection(path);
      let buf = '';
      sock.on('data', (d: Buffer) => (buf += d.toString()));
      sock.on('end', () => resolve(buf.trim()));
      sock.on('error', reject);
      sock.write(`${command}\n`);
    });
    if (answer !== 'ok') throw new Error(`fault ${command} on the ${node}: ${answer}`);
  }

  /** The configuration file of the node `node` (its own state_dir). */
  configFor(node: string): string {
    return join(this.rig.tmpdir, `tcpfo-${node}.yaml`);
  }

  logs(): string {
    return ['primary', 'secondary']
      .map((r) => `--- ${r} ---\n${safeRead(join(this.rig.tmpdir, `${r}.log`))}`)
      .join('\n');
  }

  /** Stops a bridge with SIGTERM and waits for it. */
  static async stopDaemon(d: Daemon | undefined): Promise<number | null> {
    if (!d) return null;
    if (d.proc.exitCode === null && d.proc.signalCode === null) {
      const exited = once(d.proc, 'exit');
      d.proc.kill('SIGTERM');
      await exited;
    }
    // The log is complete only once the pipes are drained into it.
    await Promise.race([d.flushed, new Promise((r) => setTimeout(r, 3000))]);
    return d.proc.exitCode;
  }

  async stop(): Promise<void> {
    // Secondary first: stopping the primary first would make it take over.
    await TcpfoPair.stopDaemon(this.secondary);
    await TcpfoPair.stopDaemon(this.primary);
    for (const s of [...this.servers, ...this.nodeServers.primary, ...this.nodeServers.secondary]) s.kill();
  }
}

function safeRead(f: string): string {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The test's own YAML, over what emulation needs (TCPFO_RIG_TIME_SCALE > 1):
 * there the bridges' event loops stall past the default watchdog (1 s) now
 * and then, and a secondary's answer takes longer than the silence the
 * primary allows it (2 s) before it goes on alone. Merged key by key, the
 * test's settings winning.
 */
function extraYaml(extra = ''): string {
  const emulation: Record<string, Record<string, number>> = TIME_SCALE > 1
    ? {
        liveness: { loop_stall_ms: slow(1000), queue_stall_ms: slow(2000) },
        limits: { secondary_silence_ms: slow(2000), early_end_grace_ms: slow(3000) },
      }
    : {};
  const own = (parseYaml(extra) ?? {}) as Record<string, unknown>;
  const merged: Record<string, unknown> = { ...emulation };
  for (const [k, v] of Object.entries(own))
    merged[k] = v && typeof v === 'object' && !Array.isArray(v) && emulation[k] ? { ...emulation[k], ...v } : v;
  return Object.keys(merged).length ? stringifyYaml(merged) : '';
}

export async function startDemoServer(host: RigHost, addr: string, port: number): Promise<ChildProcess> {
  // Room for many connections (the idle-connection memory benchmark holds 10,000).
  const proc = host.spawn([
    'bash',
    '-c',
    `ulimit -n "$(ulimit -Hn)" && exec "${process.execPath}" "${distScript('rig/servers/demo-server.js')}" ${addr} ${port}`,
  ]);
  const [line] = (await Promise.race([
    once(proc.stdout!, 'data'),
    new Promise((_, rej) =>
      setTimeout(() => rej(new Error(`demo server on ${host.name} did not start`)), slow(10_000)),
    ),
  ])) as [Buffer];
  if (!line.toString().startsWith('listening')) throw new Error(`demo server on ${host.name}: ${line.toString()}`);
  return proc;
}

export interface TransferResult {
  bytes: number;
  sha256: string;
  expected?: string;
  reply?: string;
  ms: number;
  connectMs: number;
  maxGapMs: number;
  error?: string;
  /** Offset of the first byte that differs from the pattern (get), −1 if none. */
  firstDiff?: number;
  /** The client's port: find the connection in the bridges' logs. */
  localPort?: number;
}

/**
 * Holds a download open across events whose duration is the machine's: the
 * demo client stops reading after `atBytes` (its window closes; the server's
 * bytes wait in its TCP) until the test opens the gate.
 */
export class Gate {
  private static made = 0;
  private constructor(
    private readonly path: string,
    readonly atBytes: number,
  ) {}

  /** A gate in the rig's temporary directory (removed with the rig). */
  static in(rig: Rig, atBytes: number): Gate {
    return new Gate(join(rig.tmpdir, `gate-${++Gate.made}`), atBytes);
  }

  /** The client's environment for these gates (one download may pass several). */
  static env(...gates: Gate[]): string {
    return `TCPFO_DEMO_GATE=${gates.map((g) => `${g.path}:${g.atBytes}`).join(',')}`;
  }

  /** Resolves with the bytes the client had when it stopped reading. */
  async reached(timeoutMs = slow(60_000)): Promise<number> {
    for (const end = Date.now() + timeoutMs; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
      if (existsSync(`${this.path}.reached`)) return Number(readFileSync(`${this.path}.reached`, 'utf8'));
    }
    throw new Error(`the download did not reach ${this.atBytes} bytes within ${timeoutMs} ms`);
  }

  open(): void {
    writeFileSync(this.path, '');
  }
}

/** Runs the demo client in the client host. */
export async function transfer(
  client: RigHost,
  mode: 'get' | 'put',
  bytes: number,
  seed = 1,
  timeoutMs = 120_000,
  host = VIP,
  port = DEMO_PORT,
  gates: Gate[] = [],
): Promise<TransferResult> {
  const argv = [
    process.execPath,
    distScript('rig/servers/demo-client.js'),
    mode,
    host,
    String(port),
    String(bytes),
    String(seed),
  ];
  const r = await client.exec(gates.length ? ['env', Gate.env(...gates), ...argv] : argv, {
    timeoutMs,
    allowFail: true,
  });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  if (!line.startsWith('{')) throw new Error(`demo client ${mode} failed (exit ${r.code}): ${r.stderr}`);
  return JSON.parse(line) as TransferResult;
}

/** The counters a bridge logged when it stopped. */
export function finalCounters(log: string): Record<string, unknown> {
  const line = readFileSync(log, 'utf8')
    .split('\n')
    .find((l) => l.includes('"final counters"'));
  if (!line) throw new Error(`no final counters in ${log}`);
  return (JSON.parse(line) as { status: Record<string, unknown> }).status;
}

/** The state directory (journals, control sockets) of one rig node. */
export function stateDirOf(rig: Rig, node: string): string {
  return join(rig.tmpdir, `state-${node}`);
}
