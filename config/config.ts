/**
 * The YAML configuration, one file for both nodes. Validated by a zod schema;
 * every error names the file, the path in the document and what is wrong.
 * Unknown keys are errors. Nothing is installed before the whole file is valid.
 */
import { readFileSync, statSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { ipAddr, ipv4, parseIpv4, parseIpv6, parseMac, type ServiceAddresses } from '../net/addr.js';
import type { PortSet } from '../net/ports.js';

/** One address, or a list of at most one per family (a dual-stack service or node). */
const addressList = z
  .union([z.string(), z.array(z.string())], {
    error: 'need an address, or a list of one IPv4 and one IPv6 address',
  })
  .transform((v) => (typeof v === 'string' ? [v] : v))
  .superRefine((list, ctx) => {
    if (list.length < 1 || list.length > 2)
      ctx.addIssue({ code: 'custom', message: 'list one address, or one IPv4 and one IPv6 address' });
    list.forEach((a, i) => {
      if (parseIpv4(a) === null && parseIpv6(a) === null)
        ctx.addIssue({
          code: 'custom',
          path: list.length > 1 ? [i] : [],
          message: 'not an IPv4 (a.b.c.d) or IPv6 address',
        });
    });
    if (list.length === 2 && (parseIpv4(list[0]!) === null) === (parseIpv4(list[1]!) === null))
      ctx.addIssue({
        code: 'custom',
        message: 'two addresses of one family: list at most one IPv4 and one IPv6 address',
      });
  });
/** The IPv4 and the IPv6 address of a list (null where it has none). */
function byFamily(list: readonly string[]): { v4: string | null; v6: string | null } {
  return {
    v4: list.find((a) => parseIpv4(a) !== null) ?? null,
    v6: list.find((a) => parseIpv4(a) === null) ?? null,
  };
}
const macText = z.string().refine((s) => parseMac(s) !== null, { message: 'not a MAC address (aa:bb:cc:dd:ee:ff)' });
const ifname = z.string().regex(/^[a-zA-Z0-9._@-]{1,15}$/, 'not an interface name');
const port = z.number().int().min(1).max(65535);
/** A failover port entry: a port number or a "LOW-HIGH" range. */
const portItem = z.union([z.number(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 1 || v > 65535) {
      ctx.addIssue({ code: 'custom', message: `bad port ${v}: need an integer 1-65535` });
      return z.NEVER;
    }
    return v;
  }
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(v);
  const lo = Number(m?.[1]);
  const hi = Number(m?.[2]);
  if (!m || lo < 1 || hi > 65535 || lo > hi) {
    ctx.addIssue({
      code: 'custom',
      message: `bad port range ${JSON.stringify(v)}: need "LOW-HIGH" with 1 ≤ LOW ≤ HIGH ≤ 65535`,
    });
    return z.NEVER;
  }
  return [lo, hi] as const;
});
const hostPort = z.string().refine((s) => {
  const m = /^(.+):(\d{1,5})$/.exec(s);
  return !!m && parseIpv4(m[1]!) !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
}, 'need ADDRESS:PORT with an IPv4 address');

const node = z.strictObject({
  /**
   * The node's own address (heartbeats, diverted segments), or one of each
   * family: an IPv4 one (heartbeats run over it), and an IPv6 one where the
   * service has one (the secondary routes its IPv6 answers to the
   * primary's). Link-local is fine for the IPv6 one.
   */
  address: addressList,
  /** The LAN interface. */
  interface: ifname,
  mac: macText,
  /** This node's metrics address (ADDRESS:PORT), instead of metrics.listen. */
  metrics_listen: z.string().optional(),
});

export const configSchema = z.strictObject({
  service: z.strictObject({
    /**
     * The service address (VIP) clients connect to, held by the active
     * node; or one of each family (a dual-stack service: each failover port
     * is served on both).
     */
    address: addressList,
    /** Failover ports: replicated connections. Single ports and "LOW-HIGH" ranges. */
    ports: z.array(portItem).min(1, 'list at least one failover port'),
  }),
  primary: node,
  secondary: node,
  /**
   * The secondary's data path. kernel: the client's frames go straight into
   * S's TCP and S's segments are routed to the primary unchanged, all in the
   * kernel (nftables netdev ingress, a route chain, policy routing); pcap: the
   * paper's way, libpcap capture and raw-socket injection in, NFQUEUE and a
   * divert option out. auto (the default): kernel where this kernel can.
   */
  datapath: z.enum(['auto', 'kernel', 'pcap']).default('auto'),
  /**
   * Where the primary translates the client's segments for its own TCP.
   * kernel: a tc ingress program does the common segment (queue: the rest);
   * queue: every one through the bridge. auto (the default): kernel where
   * the kernel loads the program.
   */
  inbound: z.enum(['auto', 'kernel', 'queue']).default('auto'),
  /**
   * Where the primary merges. auto (the default): kernel where the kernel
   * and iptables allow it, else queue. kernel: tc programs merge the common
   * case — answers both servers cut alike, and their ACKs, the second copy
   * of each going to the client — and release P's segments of primary-only
   * connections (the secondary failed, the replicas diverged, or it began
   * while the primary was alone), past the queue (an iptables xt_bpf match);
   * the bridge keeps handshakes, closes and whatever else, and a client's
   * answers leave in the order the servers produced them. release: only the
   * primary-only connections in the kernel. queue: every segment through
   * the bridge. Needs `inbound` in the kernel (the same programs).
   */
  merge: z.enum(['auto', 'kernel', 'release', 'queue']).default('auto'),
  lan: z
    .strictObject({
      /**
       * How the secondary gets the client's frames to the primary. hub: it
       * sees them (a hub, a flooding bridge); mirror: a switch port mirrors
       * them to it (SPAN); switch: an ordinary learning switch, and the
       * primary copies each one to the secondary, in the kernel.
       */
      mode: z.enum(['hub', 'mirror', 'switch']).default('hub'),
      mtu: z.number().int().min(576).max(9000).default(1500),
    })
    .default({ mode: 'hub', mtu: 1500 }),
  heartbeat: z.strictObject({
    port: port.default(7946),
    interval_ms: z.number().int().min(5).max(10_000).default(20),
    timeout_ms: z.number().int().min(20).max(60_000).default(100),
    /**
     * How long a starting node waits for its peer's first heartbeat (on
     * top of timeout_ms) before it acts as if the peer were down: the
     * peer's start, which loads programs and rules, must fit in it.
     */
    startup_grace_ms: z.number().int().min(0).max(600_000).default(5000),
    /** Shared secret (≥ 16 bytes, mode 600) authenticating heartbeats: the same file on both nodes. */
    key_file: z.string().min(1),
  }),
  failover: z
    .strictObject({
      /**
       * The minimum TCP retransmission timeout the bridge sets on its node
       * (net.ipv4.tcp_rto_min_us). It bounds how long a backed-off
       * retransmission timer delays the first segment after a takeover; 200
       * keeps the kernel's default.
       */
      rto_min_ms: z.number().int().min(5).max(200).default(20),
      /**
       * Where rto_min_ms is set: 'sysctl' (net.ipv4.tcp_rto_min_us, every TCP
       * socket of the node; Linux 6.11 on), 'routes' (the rto_min metric of
       * each route of table main through the LAN interface: only what goes
       * over the LAN; every kernel), 'auto' (the default): sysctl where the
       * kernel has it, else routes.
       */
      rto_bound: z.enum(['auto', 'sysctl', 'routes']).default('auto'),
      /**
       * A primary restarted while the secondary serves the service address:
       * 'swap-roles' (the default) joins as the secondary of that node, which
       * becomes the merging primary for new connections; 'refuse' exits, and
       * the pair runs on one node until an operator restarts it.
       */
      rejoin: z.enum(['swap-roles', 'refuse']).default('swap-roles'),
      /**
       * The node that should serve when both run: after it rejoins as the
       * secondary (a failover, a restart, standby), and once the pair has
       * been in sync for preferred_delay_s, it takes the service back by a
       * planned switchover (no connection lost; refused, and asked again,
       * while a connection lives in one server only). 'none': roles stay
       * where failures left them.
       */
      preferred: z.enum(['primary', 'secondary', 'none']).default('none'),
      preferred_delay_s: z.number().int().min(1).max(86_400).default(60),
    })
    .default({ rto_min_ms: 20, rto_bound: 'auto', rejoin: 'swap-roles', preferred: 'none', preferred_delay_s: 60 }),
  /** Bounds of the primary's connection table (memory and the kernel queue stay bounded under a SYN flood). */
  limits: z
    .strictObject({
      max_connections: z.number().int().min(16).max(4_000_000).default(65536),
      /** Handshakes holding P's SYN-ACK in the kernel's queue (16384 deep) at once. */
      max_pending_handshakes: z.number().int().min(16).max(8192).default(4096),
      /** A connection the client has not acknowledged this long after it began is forgotten. */
      handshake_timeout_ms: z.number().int().min(1000).max(600_000).default(30_000),
      /** An established connection silent this long is forgotten. */
      idle_timeout_s: z
        .number()
        .int()
        .min(60)
        .max(7 * 24 * 3600)
        .default(7200),
      /** The secondary's bytes stored per connection while the primary's lag. */
      max_stored_bytes: z
        .number()
        .int()
        .min(65536)
        .max(1 << 30)
        .default(8 << 20),
      /**
       * All connections together: the secondary's bytes stored and the
       * primary's segments held. Beyond it the primary's new segments wait in
       * its TCP (sent again) instead of in the bridge's memory, but for each
       * connection's first (none starves); never beyond twice it.
       */
      max_buffered_bytes: z
        .number()
        .int()
        .min(1 << 20)
        .max(2 ** 34)
        .default(256 << 20),
      /**
       * A connection the secondary (alive) makes no progress on this long while
       * it waits for it goes on primary-only (the secondary lost its socket).
       */
      secondary_silence_ms: z.number().int().min(200).max(600_000).default(2000),
      /**
       * Socket buffer of each of the bridge's queues: what may wait while its
       * event loop is busy. Beyond, the kernel drops packets (TCP sends them
       * again), counted as tcpfo_nfqueue_enobufs_total.
       */
      queue_buffer_bytes: z
        .number()
        .int()
        .min(65536)
        .max(1 << 30)
        .default(64 << 20),
      /**
       * The primary's stream of a connection ends where the secondary's goes
       * on (its server died?): its FIN is held this long — keep it above the
       * time `track` takes to notice a dead server — before the connection
       * goes on primary-only.
       */
      early_end_grace_ms: z.number().int().min(0).max(600_000).default(3000),
    })
    .default({
      max_connections: 65536,
      max_pending_handshakes: 4096,
      handshake_timeout_ms: 30_000,
      idle_timeout_s: 7200,
      max_stored_bytes: 8 << 20,
      max_buffered_bytes: 256 << 20,
      secondary_silence_ms: 2000,
      queue_buffer_bytes: 64 << 20,
      early_end_grace_ms: 3000,
    }),
  security: z
    .strictObject({
      /** After setup, keep only CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF, set no_new_privs. */
      limit_capabilities: z.boolean().default(true),
    })
    .default({ limit_capabilities: true }),
  /** A bridge that looks alive always runs: it ends itself (exit 4) when stuck, so the peer takes over. */
  liveness: z
    .strictObject({
      /**
       * The event loop stuck this long: the bridge stops answering ARP for the
       * service address and exits. Shorter stalls (a starved CPU) are ridden out:
       * the ARP answers come from a thread of their own. Counted from the
       * "bridge up" line: setup (BPF programs verified and loaded) may hold
       * the loop up to 20 s.
       */
      loop_stall_ms: z.number().int().min(200).max(60_000).default(1000),
      /** Packets waiting in one of the bridge's queues and none read this long: it exits. */
      queue_stall_ms: z.number().int().min(200).max(60_000).default(2000),
    })
    .default({ loop_stall_ms: 1000, queue_stall_ms: 2000 }),
  scheduling: z
    .strictObject({
      /**
       * The bridge's nice value (−20 … 19): below 0 it is scheduled ahead of
       * ordinary processes on a busy node. Needs CAP_SYS_NICE (root has it).
       */
      nice: z.number().int().min(-20).max(19).default(-10),
      /**
       * The real-time priority (SCHED_FIFO, 1 … 99; 0: none) of the two
       * threads whose lateness the peer would take for death: the ARP answers
       * for the service address and the heartbeat thread. Needs CAP_SYS_NICE
       * and CAP_SYS_RESOURCE at start (root has them).
       */
      realtime_priority: z.number().int().min(0).max(99).default(10),
    })
    .default({ nice: -10, realtime_priority: 10 }),
  metrics: z
    .strictObject({
      listen: hostPort.default('127.0.0.1:9464'),
    })
    .default({ listen: '127.0.0.1:9464' }),
  /** pino's levels; TCPFO_LOG_LEVEL in the environment wins. Reloaded by SIGHUP. */
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  hooks: z
    .strictObject({
      /**
       * A command run on every role change as `sh -c COMMAND tcpfo ROLE REASON`
       * (ROLE: primary, secondary, alone, active, stopped), in the background.
       */
      on_role_change: z.string().min(1).optional(),
      timeout_ms: z.number().int().min(100).max(600_000).default(10_000),
    })
    .default({ timeout_ms: 10_000 }),
  /**
   * A check of the local server. A node whose server fails `fall` checks in a
   * row (after it answered once) gives up its part, so the other node serves.
   */
  track: z
    .strictObject({
      /** Ports on the service address to connect to, from the node itself. */
      connect: z.array(port).min(1).optional(),
      /** Or a command: exit status 0 means healthy. */
      command: z.string().min(1).optional(),
      interval_ms: z.number().int().min(100).max(60_000).default(1000),
      timeout_ms: z.number().int().min(50).max(60_000).default(1000),
      fall: z.number().int().min(1).max(100).default(3),
    })
    .optional(),
  /** NFQUEUE numbers used by this instance: base, base+1 (the primary) and base+2 (the secondary on the pcap path). */
  queue_base: z.number().int().min(0).max(65533).default(100),
  state_dir: z.string().min(1).default('/run/tcpfo'),
  /** Tag naming this instance's rules and journal (lets two instances share a machine in tests). */
  instance: z
    .string()
    .regex(/^[a-z0-9]{1,8}$/, '1-8 of [a-z0-9]')
    .default('tcpfo'),
  /**
   * The pair's name in the metrics (tcpfo_pair_info{pair}), which the
   * split-brain alert groups by: both nodes of a pair must have the same,
   * two pairs scraped by one Prometheus different ones. Default: the
   * service address and the instance ("192.0.2.100/tcpfo").
   */
  pair: z
    .string()
    .regex(/^[A-Za-z0-9_.:/-]{1,64}$/, '1-64 of [A-Za-z0-9_.:/-]')
    .optional(),
});

export type RawConfig = z.infer<typeof configSchema>;

/** A node's block, its addresses by family. */
export interface NodeConfig extends Omit<RawConfig['primary'], 'address'> {
  /** The IPv4 address (heartbeats). */
  address: string;
  /** The IPv6 address, where the service has one. */
  address6: string | null;
}

export interface Config extends Omit<RawConfig, 'service' | 'primary' | 'secondary'> {
  /** `address`: the IPv4 service address; `address6`: the IPv6 one, if any. */
  service: { address: string; address6: string | null; ports: PortSet };
  primary: NodeConfig;
  secondary: NodeConfig;
  file: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

function pathText(path: ReadonlyArray<PropertyKey>): string {
  if (path.length === 0) return '(top level)';
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');
}

/** Parses and validates YAML text; throws ConfigError listing every problem. */
/** Larger files are refused before parsing: a configuration is a few KB. */
export const MAX_CONFIG_BYTES = 1 << 20;
/** YAML aliases a file may use (an alias bomb expands exponentially). */
const MAX_ALIASES = 100;

export function parseConfig(text: string, file: string): Config {
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES)
    throw new ConfigError(file, [`larger than ${MAX_CONFIG_BYTES} bytes: not a tcpfo configuration`]);
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => {
        const at = e.pos[0];
        const before = text.slice(0, at);
        const line = before.split('\n').length;
        const col = at - before.lastIndexOf('\n');
        return `YAML line ${line}, column ${col}: ${e.message.split('\n')[0]}`;
      }),
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (e) {
    // yaml's own guard against alias expansion (a "billion laughs" file).
    throw new ConfigError(file, [`YAML: ${(e as Error).message.split('\n')[0]}`]);
  }
  const r = configSchema.safeParse(raw ?? {});
  if (!r.success) {
    throw new ConfigError(
      file,
      r.error.issues.map((i) => {
        if (i.code === 'unrecognized_keys')
          return `${pathText(i.path)}: unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => JSON.stringify(k)).join(', ')}`;
        return `${pathText(i.path)}: ${i.message}`;
      }),
    );
  }
  const c = r.data;
  const problems: string[] = [];
  const service = byFamily(c.service.address);
  const primary = byFamily(c.primary.address);
  const secondary = byFamily(c.secondary.address);
  const all = [...c.service.address, ...c.primary.address, ...c.secondary.address];
  if (new Set(all.map(canonical)).size !== all.length)
    problems.push('service.address, primary.address and secondary.address must all differ');
  for (const [path, list] of [
    ['service.address', c.service.address],
    ['primary.address', c.primary.address],
    ['secondary.address', c.secondary.address],
  ] as const) {
    for (const a of list) {
      const why = notUnicast(a, path === 'service.address');
      if (why) problems.push(`${path}: ${a} is ${why}: need a unicast address`);
    }
  }
  if (!service.v4)
    problems.push(
      'service.address: an IPv6 address alone: list an IPv4 service address beside it (IPv6-only is not served yet)',
    );
  for (const [path, n] of [
    ['primary.address', primary],
    ['secondary.address', secondary],
  ] as const) {
    if (!n.v4) problems.push(`${path}: list the node's IPv4 address (the heartbeats run over IPv4)`);
    if (service.v6 && !n.v6)
      problems.push(
        `${path}: the service has an IPv6 address: list the node's own IPv6 address too (link-local is fine)`,
      );
  }
  if (c.primary.mac.toLowerCase() === c.secondary.mac.toLowerCase())
    problems.push('primary.mac and secondary.mac must differ');
  for (const [path, m] of [
    ['primary.mac', c.primary.mac],
    ['secondary.mac', c.secondary.mac],
  ] as const) {
    const first = parseInt(m.slice(0, 2), 16);
    if (first & 1) problems.push(`${path}: ${m} is a multicast MAC: need a station's unicast MAC`);
    else if (/^(00:){5}00$/i.test(m)) problems.push(`${path}: ${m} is not a station's MAC`);
  }
  for (const [path, l] of [
    ['primary.metrics_listen', c.primary.metrics_listen],
    ['secondary.metrics_listen', c.secondary.metrics_listen],
  ] as const) {
    if (l !== undefined && !hostPort.safeParse(l).success)
      problems.push(`${path}: need ADDRESS:PORT with an IPv4 address`);
  }
  if (c.heartbeat.timeout_ms < 2 * c.heartbeat.interval_ms)
    problems.push('heartbeat.timeout_ms must be at least twice heartbeat.interval_ms');
  if ((c.merge === 'kernel' || c.merge === 'release') && c.inbound === 'queue')
    problems.push(`merge: ${c.merge} needs the kernel translation of client segments: inbound must be kernel or auto`);
  // Overlapping ports and ranges: one port listed twice is a mistake somewhere.
  const spans = c.service.ports.map((p) => (typeof p === 'number' ? [p, p] : p)).sort((x, y) => x[0]! - y[0]!);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]![0]! <= spans[i - 1]![1]!)
      problems.push(`service.ports: ${spanText(spans[i - 1]!)} and ${spanText(spans[i]!)} overlap`);
  }
  if (!c.state_dir.startsWith('/')) problems.push(`state_dir: ${c.state_dir} is relative: need an absolute path`);
  if (c.track) {
    if (!c.track.connect && !c.track.command) problems.push('track: give `connect` (ports) or `command`');
    for (const p of c.track.connect ?? []) {
      if (!spans.some(([lo, hi]) => p >= lo! && p <= hi!))
        problems.push(
          `track.connect: ${p} is not one of service.ports (track checks the server on the service address)`,
        );
    }
    const notice = c.track.fall * c.track.interval_ms + c.track.timeout_ms + c.heartbeat.timeout_ms;
    // Not given: long enough for the track configured (a second more than it takes to notice).
    const rawLimits = (raw as { limits?: Record<string, unknown> } | null)?.limits;
    if (rawLimits?.early_end_grace_ms === undefined && c.limits.early_end_grace_ms < notice)
      c.limits.early_end_grace_ms = notice + 1000;
    if (c.limits.early_end_grace_ms < notice) {
      problems.push(
        `limits.early_end_grace_ms (${c.limits.early_end_grace_ms}) must exceed the time track takes to notice a dead server and the peer to take over (${notice} ms: fall × interval_ms + timeout_ms + heartbeat.timeout_ms)`,
      );
    }
  }
  if (problems.length) throw new ConfigError(file, problems);
  const nodeOf = (n: RawConfig['primary'], a: { v4: string | null; v6: string | null }): NodeConfig => ({
    ...n,
    address: a.v4!,
    address6: a.v6,
  });
  return {
    ...c,
    service: { address: service.v4!, address6: service.v6, ports: c.service.ports },
    primary: nodeOf(c.primary, primary),
    secondary: nodeOf(c.secondary, secondary),
    file,
  };
}

function spanText([lo, hi]: readonly number[]): string {
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

/** One spelling per address (IPv6 has many), to compare them. */
function canonical(text: string): string {
  const six = parseIpv4(text) === null ? parseIpv6(text) : null;
  return six ? six.toString('hex') : text;
}

/** Why an address is no unicast host address (`service`: one clients reach across routers), or null. */
function notUnicast(text: string, service: boolean): string | null {
  const a = parseIpv4(text);
  if (a === null) {
    const b = parseIpv6(text);
    if (b === null) return null; // reported by the schema
    if (b.every((x) => x === 0)) return 'the unspecified address';
    if (b.subarray(0, 15).every((x) => x === 0) && b[15] === 1) return 'the loopback address';
    if (b[0] === 0xff) return 'a multicast address';
    if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff)
      return 'an IPv4-mapped address (list the IPv4 address itself)';
    if (service && b[0] === 0xfe && (b[1]! & 0xc0) === 0x80)
      return 'a link-local address (no client off the link reaches it)';
    return null;
  }
  const first = a >>> 24;
  if (a === 0) return 'the unspecified address';
  if (a === 0xffffffff) return 'the broadcast address';
  if (first >= 224 && first <= 239) return 'a multicast address';
  if (first >= 240) return 'a reserved address';
  if (first === 127) return 'a loopback address';
  if (first === 0) return 'in 0.0.0.0/8';
  return null;
}

/** The service's addresses as text: the IPv4 one, and the IPv6 one if there is one. */
export function serviceAddressList(cfg: Config): string[] {
  return cfg.service.address6 === null ? [cfg.service.address] : [cfg.service.address, cfg.service.address6];
}

/** The service addresses as the cores take them. */
export function serviceAddresses(cfg: Config): ServiceAddresses {
  const v6 = cfg.service.address6;
  return { v4: ipv4(cfg.service.address), v6: v6 === null ? null : (ipAddr(v6) as string) };
}

/** The metrics address of the node described by `self` (its own block's metrics_listen, else metrics.listen). */
export function metricsListen(cfg: Config, self: NodeConfig): string {
  return self.metrics_listen ?? cfg.metrics.listen;
}

export function loadConfig(file: string): Config {
  let text: string;
  try {
    if (statSync(file).size > MAX_CONFIG_BYTES)
      throw new ConfigError(file, [`larger than ${MAX_CONFIG_BYTES} bytes: not a tcpfo configuration`]);
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(file, [`cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`]);
  }
  return parseConfig(text, file);
}

/** What of a file still reads as YAML, without the schema (e.g. state_dir of a file half edited); {} if nothing does. */
export function lenientYaml(file: string): Record<string, unknown> {
  try {
    if (statSync(file).size > MAX_CONFIG_BYTES) return {};
    const v: unknown = parseDocument(readFileSync(file, 'utf8')).toJS({ maxAliasCount: MAX_ALIASES });
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The same pair seen from the other side: the primary and secondary blocks exchanged (after a failover, when the nodes swap roles). */
export function swapRoles(cfg: Config): Config {
  return { ...cfg, primary: cfg.secondary, secondary: cfg.primary };
}
