/**
 * Many idle connections through a failover, shared by the scale bench
 * (bench/failover/scale.ts) and its rig test: Debian's redis on both nodes,
 * a client holding N connections (rig/servers/idle-client.ts), one node
 * killed, every connection PINGed again.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { distScript } from './dist.js';
import { machineSeconds } from './cpu.js';
import { freezeNode, waitForLog } from './failover.js';
import { startRedis } from './kv.js';
import { TcpfoPair, VIP } from './pair.js';
import { withRig, type RigHost } from './rig.js';
import { scrapeMetrics } from './metrics.js';

export type Victim = 'primary' | 'secondary';

/** The idle client (rig/servers/idle-client.ts), its JSON lines read one by one. */
class IdleClient {
  private readonly lines: string[] = [];
  private waiter: ((l: string) => void) | null = null;
  constructor(readonly proc: ChildProcess) {
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w(l);
      } else this.lines.push(l);
    });
  }
  static start(host: RigHost, addr: string, port: number, n: number): IdleClient {
    const files = n + 256;
    return new IdleClient(
      host.spawn(
        [
          'bash',
          '-c',
          `ulimit -n ${files} && exec "$@"`,
          'idle',
          process.execPath,
          distScript('rig/servers/idle-client.js'),
          addr,
          String(port),
          String(n),
          '60000',
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      ),
    );
  }
  next<T>(timeoutMs = 300_000): Promise<T> {
    const got = this.lines.shift();
    if (got !== undefined) return Promise.resolve(JSON.parse(got) as T);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('idle client: no answer')), timeoutMs);
      this.waiter = (l) => {
        clearTimeout(t);
        resolve(JSON.parse(l) as T);
      };
      this.proc.once('exit', (code) => reject(new Error(`idle client exited ${code}`)));
    });
  }
  say(line: string): void {
    this.proc.stdin!.write(`${line}\n`);
  }
  /** Settles when the process has exited. */
  get exited(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => this.proc.once('exit', () => resolve()));
  }
  end(): void {
    this.proc.kill('SIGKILL');
  }
}

export interface Opened {
  opened: number;
  failed: number;
  ms: number;
  perSecond: number;
}
export interface Pinged {
  answered: number;
  failed: number;
  lost: number;
  lastMs: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
}

function rssBytes(pid: number | undefined): number {
  if (!pid) return NaN;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Back-to-back PINGs on one connection (rig/servers/idle-client.ts, "busy"): round trips in µs. */
export interface Busy {
  roundTrips: number;
  p50Us: number | null;
  p99Us: number | null;
}

/** How long the busy connection PINGs, ms. */
const BUSY_MS = 2000;

export interface ScaleRun {
  n: number;
  victim: Victim;
  setup: Opened;
  plainSetup: Opened | null;
  /**
   * The machine's CPU (every core, /proc/stat) per connection while the
   * connections were set up, µs: through the pair, and plain. On a saturated
   * machine their ratio bounds setup's.
   */
  setupCpuUs: { tcpfo: number; plain: number | null };
  /** One request on each of the N connections at once, plain TCP (with plainSetup). */
  plainRound: Pinged | null;
  /**
   * One busy connection's round trips: beside the n idle ones, through the
   * pair with no other connection, and plain (to the primary's own address,
   * with `plain` only).
   */
  busy: { idle: Busy; none: Busy; plain: Busy | null };
  rss: { primary: number; secondary: number; primaryIdle: number; secondaryIdle: number };
  /** The primary bridge's JS heap in use (nodejs_heap_size_used_bytes), idle and with the connections. */
  heap: { primary: number; primaryIdle: number };
  /** Every connection PINGed once before the kill: the same round trip without a failure. */
  before: Pinged;
  /**
   * During that round, on the primary: connections the kernel merge handed to
   * the bridge, ranges sent again it kept, and P's segments that took the
   * output queue (`queued`), of them those that went straight back to the
   * kernel (`returned`: sent there by the order rule) and those set aside
   * behind an earlier answer (`waited`).
   */
  kernel: {
    handovers: Record<string, number>;
    again: number;
    queued: number;
    returned: number;
    waited: number;
    /** Counted segments that held their client's order 50 ms, and P's D-SACK ACKs the bridge cleared (absent in older reports). */
    heldTooLong?: number;
    dsackCleared?: number;
  };
  /**
   * One connection in SAMPLE_EVERY, spread over every client and server,
   * PINGed as the victim's link goes down, timed from that moment: how long
   * the failover keeps a connection waiting, apart from the time the machine
   * takes to answer all N at once.
   */
  sampled: Pinged;
  /** When the sample's PINGs were asked for, ms after the victim's link went down (its processes stopped, not killed). */
  sampleAfterMs: number;
  /** How long the victim's processes took to exit once killed, after the rounds (their sockets closed in this kernel). */
  killMs: number;
  /** Then every connection PINGed (the round timed from its own start); `afterKillMs`: from the kill to its last answer. */
  after: Pinged;
  afterKillMs: number;
  timeline: unknown;
  /** The pair's logs. */
  logs: string;
}

/**
 * One pair (hub), redis on both nodes, `n` idle connections; then `victim`
 * killed and every connection PINGed at once. `plain`: first the same
 * connections to a redis on the primary's own address (the setup rate of
 * plain TCP). `heartbeatTimeoutMs`: the detector's timeout (the product's
 * default, 100 ms, unless a test wants a margin against a starved machine);
 * `secondarySilenceMs`: limits.secondary_silence_ms (the default, 2 s).
 */
export async function scaleRun(
  n: number,
  victim: Victim,
  plain: boolean,
  heartbeatTimeoutMs = 100,
  secondarySilenceMs = 2000,
): Promise<ScaleRun> {
  // A process holds at most SHARD connections (the open-file limit of 20,000
  // here, which root cannot raise in this sandbox): one redis per node and one
  // client process per shard, each shard on its own port.
  const shards = Math.ceil(n / SHARD);
  const sizes = Array.from({ length: shards }, (_, i) => Math.floor(n / shards) + (i < n % shards ? 1 : 0));
  const ports = sizes.map((_, i) => SCALE_PORT + i);
  return withRig({ mode: 'hub' }, async (rig) => {
    const pair = await TcpfoPair.start(rig, {
      ports,
      demoServer: false,
      heartbeatTimeoutMs,
      extraYaml: `limits:\n  max_connections: ${Math.max(65536, 2 * n)}\n  secondary_silence_ms: ${secondarySilenceMs}\n`,
    });
    const clients: IdleClient[] = [];
    try {
      const [p, s, c] = [rig.host('primary'), rig.host('secondary'), rig.host('client')];
      // Each node's servers, killed with it.
      for (const [i, size] of sizes.entries())
        pair.nodeServers.primary.push(await startRedis(p, VIP, ports[i]!, size + 100));
      for (const [i, size] of sizes.entries())
        pair.nodeServers.secondary.push(await startRedis(s, VIP, ports[i]!, size + 100));
      let plainSetup: Opened | null = null;
      let plainRound: Pinged | null = null;
      let plainBusy: Busy | null = null;
      let plainSetupCpuUs: number | null = null;
      if (plain) {
        for (const [i, size] of sizes.entries())
          pair.servers.push(await startRedis(p, p.ip, PLAIN_PORT + i, size + 100));
        const pcs = sizes.map((size, i) => IdleClient.start(c, p.ip, PLAIN_PORT + i, size));
        clients.push(...pcs);
        ({ cpuUs: plainSetupCpuUs, ...plainSetup } = await setUp(pcs, n));
        // The floor of every round below: the same requests at once, one server per shard, plain TCP.
        for (const x of pcs) x.say('ping');
        plainRound = sumPinged(await Promise.all(pcs.map((x) => x.next<Pinged>())));
        for (const x of pcs) x.say('end');
        // Their closes (n sockets at once) keep both cores busy a while: measured after they are over, the
        // busy connection's plain round trip is the floor it is meant to be (at 100,000 it read 0.6 s before).
        await Promise.all(pcs.map((x) => x.exited));
        await new Promise((r) => setTimeout(r, Math.min(5000, n / 20)));
        const one = IdleClient.start(c, p.ip, PLAIN_PORT, 1);
        clients.push(one);
        await one.next<Opened>();
        one.say(`busy ${BUSY_MS}`);
        plainBusy = await one.next<Busy>();
        one.say('end');
      }
      // The same busy connection through the pair, before any idle one is there.
      const alone = IdleClient.start(c, VIP, ports[0]!, 1);
      clients.push(alone);
      await alone.next<Opened>();
      alone.say(`busy ${BUSY_MS}`);
      const busyNone = await alone.next<Busy>();
      alone.say('end');
      const heapOf = async () => (await scrapeMetrics(rig, 'primary'))('nodejs_heap_size_used_bytes');
      const idle = {
        primary: rssBytes(pair.primary?.proc.pid),
        secondary: rssBytes(pair.secondary?.proc.pid),
        heap: await heapOf(),
      };
      const cs = sizes.map((size, i) => IdleClient.start(c, VIP, ports[i]!, size));
      clients.push(...cs);
      const { cpuUs, ...setup } = await setUp(cs, n);
      const setupCpuUs = { tcpfo: cpuUs, plain: plainSetupCpuUs };
      const rss = {
        primary: rssBytes(pair.primary?.proc.pid),
        secondary: rssBytes(pair.secondary?.proc.pid),
        primaryIdle: idle.primary,
        secondaryIdle: idle.secondary,
      };
      const heap = { primary: await heapOf(), primaryIdle: idle.heap };
      cs[0]!.say(`busy ${BUSY_MS}`);
      const busy = { idle: await cs[0]!.next<Busy>(), none: busyNone, plain: plainBusy };
      const kernelCounts = async () => {
        const m = await scrapeMetrics(rig, 'primary');
        const v = (k: string) => (Number.isNaN(m(k)) ? 0 : m(k));
        const reasons = ['bridge', 'unaligned', 'diverged', 'full', 'segment'];
        return {
          handovers: Object.fromEntries(reasons.map((r) => [r, v(`tcpfo_kernel_handovers_total{reason="${r}"}`)])),
          again: v('tcpfo_kernel_merge_total{action="again"}'),
          queued: v('tcpfo_nfqueue_packets_total{queue="out"}'),
          returned: v('tcpfo_kernel_outbound_total{action="returned"}'),
          waited: v('tcpfo_kernel_outbound_total{action="waited"}'),
          heldTooLong: v('tcpfo_kernel_outbound_total{action="held-too-long"}'),
          dsackCleared: v('tcpfo_kernel_outbound_total{action="dsack-cleared"}'),
        };
      };
      const k0 = await kernelCounts();
      for (const x of cs) x.say('ping');
      const before = sumPinged(await Promise.all(cs.map((x) => x.next<Pinged>())));
      const k1 = await kernelCounts();
      const kernel = {
        handovers: Object.fromEntries(
          Object.entries(k1.handovers)
            .map(([r, count]) => [r, count - (k0.handovers[r] ?? 0)] as const)
            .filter(([, count]) => count > 0),
        ),
        again: k1.again - k0.again,
        queued: k1.queued - k0.queued,
        returned: k1.returned - k0.returned,
        waited: k1.waited - k0.waited,
        heldTooLong: k1.heldTooLong - k0.heldTooLong,
        dsackCleared: k1.dsackCleared - k0.dsackCleared,
      };
      await new Promise((r) => setTimeout(r, 1000));
      // Timed from the moment the victim's link went down.
      // The victim's link goes down and its processes stop, as a dead host's do; the
      // sample speaks at once and is timed from the cut. The processes are killed
      // after the rounds: their sockets' close would take the survivor's cores.
      const victimNode = await freezeNode(pair, victim);
      const killedAt = victimNode.at;
      for (const x of cs) x.say(`ping ${SAMPLE_EVERY} ${killedAt}`);
      const sampleAfterMs = Date.now() - killedAt;
      const sampled = sumPinged(await Promise.all(cs.map((x) => x.next<Pinged>())));
      for (const x of cs) x.say('ping');
      const after = sumPinged(await Promise.all(cs.map((x) => x.next<Pinged>())));
      const afterKillMs = Date.now() - killedAt;
      const killMs = await victimNode.kill();
      await waitForLog(
        pair,
        victim === 'primary' ? /took over the service address: serving alone/ : /secondary failed: continuing alone/,
      );
      const logs = pair.logs();
      const line = logs
        .split('\n')
        .find((l) =>
          victim === 'primary'
            ? l.includes('took over the service address: serving alone')
            : l.includes('secondary failed: continuing alone'),
        );
      const j = line
        ? (JSON.parse(line) as {
            timeline?: unknown;
            flushMs?: number;
            releasedInKernelAtOnce?: number;
            turnedInSteps?: number;
            turnedAsNeeded?: number;
          })
        : {};
      return {
        n,
        victim,
        setup,
        plainSetup,
        plainRound,
        busy,
        rss,
        heap,
        before,
        kernel,
        sampled,
        sampleAfterMs,
        killMs,
        setupCpuUs,
        after,
        afterKillMs,
        timeline:
          victim === 'primary'
            ? j.timeline
            : {
                flushMs: j.flushMs,
                releasedInKernelAtOnce: j.releasedInKernelAtOnce,
                turnedInSteps: j.turnedInSteps,
                turnedAsNeeded: j.turnedAsNeeded,
              },
        logs,
      };
    } finally {
      for (const cl of clients) cl.end();
      await pair.stop();
    }
  });
}

/** After a kill, first one connection in this many is PINGed (ScaleRun.sampled). */
export const SAMPLE_EVERY = 100;

/** Connections per process (client or server): under this sandbox's open-file limit. */
const SHARD = 10_000;
/** The shards' ports on the service address, and on the primary's own (plain TCP). */
const SCALE_PORT = 16379;
const PLAIN_PORT = 26379;

/** The clients' reports once each has opened its connections, summed, and the machine's CPU µs per connection meanwhile. */
async function setUp(clients: IdleClient[], n: number): Promise<Opened & { cpuUs: number }> {
  const cpu0 = machineSeconds().busy;
  const opened = sumOpened(await Promise.all(clients.map((x) => x.next<Opened>())));
  return { ...opened, cpuUs: ((machineSeconds().busy - cpu0) * 1e6) / n };
}

function sumOpened(xs: Opened[]): Opened {
  const ms = Math.max(...xs.map((x) => x.ms));
  const opened = xs.reduce((a, x) => a + x.opened, 0);
  return { opened, failed: xs.reduce((a, x) => a + x.failed, 0), ms, perSecond: Math.round((opened / ms) * 1000) };
}

function sumPinged(xs: Pinged[]): Pinged {
  const max = (f: (x: Pinged) => number | null) => Math.max(...xs.map((x) => f(x) ?? 0));
  return {
    answered: xs.reduce((a, x) => a + x.answered, 0),
    failed: xs.reduce((a, x) => a + x.failed, 0),
    lost: xs.reduce((a, x) => a + x.lost, 0),
    lastMs: max((x) => x.lastMs),
    p50Ms: max((x) => x.p50Ms),
    p99Ms: max((x) => x.p99Ms),
  };
}
