/**
 * The secondary's two data paths (config `datapath`), behind one interface
 * the bridge (daemon.ts) drives the same way: install at start; at a
 * takeover stop diverting, prompt the clients, then detach; close at a stop.
 *
 *   kernel   the client's frames go straight into S's TCP and S's segments
 *            are routed to the primary unchanged, in the kernel
 *            (io/kernel-path.ts): nothing passes through this process.
 *   pcap     the paper's way: libpcap capture of the client's frames →
 *            injection into S's own stack; S's output to clients → NFQUEUE
 *            base+2, diverted to P with the client's address in an option
 *            (diverter.ts).
 *
 * Either way fail closed: a client never sees S's replies while P speaks
 * for the pair, also when this process is killed.
 */
import { isIp6 } from '../../net/addr.js';
import { PortMatcher, type PortSet } from '../../net/ports.js';
import { serviceAddresses, serviceAddressList, type Config } from '../../config/config.js';
import { FrameCapture } from '../io/capture.js';
import { BRIDGE_MARK, type Injector } from '../io/inject.js';
import { detachKernelPath, installKernelPath, removeDivertRoutes, type KernelPathSpec } from '../io/kernel-path.js';
import { PacketQueue, SKB_GSO, type PacketBatch } from '../io/nfqueue.js';
import { removeIptablesRules, removeRules, RuleSet, type Rule } from '../io/rules.js';
import { clampedMss } from '../wire/divert.js';
import { destroySockets, existingConnections, type SocketKey } from '../io/sockets.js';
import { probeOf, type QueueProbe } from '../node/liveness.js';
import type { Logger } from '../log.js';
import { blindProds, blindPrompts, owes } from './blind.js';
import type { Diverter } from './diverter.js';

/** BPF for client frames to the service's failover ports, on any of its addresses (either family). */
export function serviceFilter(vips: readonly string[], ports: PortSet): string {
  const p = ports.map((x) => (typeof x === 'number' ? `dst port ${x}` : `dst portrange ${x[0]}-${x[1]}`)).join(' or ');
  const h = vips.map((v) => `dst host ${v}`).join(' or ');
  return `tcp and (${h}) and (${p})`;
}

/** What a data path needs of its bridge. */
export interface PathContext {
  cfg: Config;
  log: Logger;
  /** Frames into S's own stack (the pcap path's copies, the takeover's prompts and resets). */
  injector: Injector;
  diverter: Diverter;
}

/** Counters the pcap path keeps of its packets. */
export interface PathErrors {
  /** Verdicts the queue refused. */
  verdict: number;
  /** Packets dropped because the diverter threw (a bug): the pair keeps running. */
  internal: number;
}

export interface SecondaryDataPath {
  readonly name: 'kernel' | 'pcap';
  /** Installs it, replacing what a predecessor of either path left. */
  install(): Promise<void>;
  /** Queues the liveness guard watches (a stuck one halts the node). */
  probes(): QueueProbe[];
  /** The fault socket's `deafen`: the queue stops being read (tests). */
  deafen(): void;
  /** Whether its rules or programs went in (in part, at least): S's segments were diverted. */
  readonly installed: boolean;
  /** Takeover, first step: S's segments go to the clients from now on. */
  stopDiverting(): Promise<void>;
  /**
   * Takeover: each client told where S's TCP stands; the connections the
   * primary reported as diverged closed; `mark` notes each step on the
   * takeover's timeline. Returns how many of those it closed.
   */
  prompt(diverged: SocketKey[], mark: (what: string) => void): Promise<number>;
  /** Takeover's housekeeping: what is left of the path in the kernel goes. */
  detach(): Promise<void>;
  /** After the liveness guard stopped: the queue closes. */
  release(): void;
  /** The bridge stops: everything the path set up goes. */
  close(): Promise<void>;
  readonly errors: PathErrors;
  /** The queue and the capture, where the path has them. */
  readonly queue: PacketQueue | undefined;
  readonly capture: FrameCapture | undefined;
}

/** The kernel path (io/kernel-path.ts). */
export class KernelDataPath implements SecondaryDataPath {
  readonly name = 'kernel';
  readonly errors: PathErrors = { verdict: 0, internal: 0 };
  readonly queue = undefined;
  readonly capture = undefined;
  private began = false;

  constructor(
    private readonly x: PathContext,
    private readonly spec: KernelPathSpec,
  ) {}

  get installed(): boolean {
    return this.began;
  }

  /**
   * Replaces what a killed predecessor of the same tag left in one
   * transaction; then a pcap-mode predecessor's queue rules go (they would
   * drop our output into a queue nobody reads).
   */
  async install(): Promise<void> {
    // Counted from the first attempt: a part-done install is undone, and S's sockets aborted, as a whole one.
    this.began = true;
    await installKernelPath(this.spec);
    await removeIptablesRules(this.spec.tag);
  }

  probes(): QueueProbe[] {
    return [];
  }

  deafen(): void {}

  async stopDiverting(): Promise<void> {
    await detachKernelPath(this.spec.tag, 'divert', !!this.spec.v6);
  }

  /**
   * No capture ever saw the clients' numbers. Diverged connections: our
   * sockets aborted by address, then the clients prodded (their answers
   * meet no socket and draw exact resets). Every other connection: S's TCP
   * prompted to tell its client where it stands (io/sockets.ts lists them
   * by sock_diag; blind.ts).
   */
  async prompt(diverged: SocketKey[], mark: (what: string) => void): Promise<number> {
    const { cfg, log, injector } = this.x;
    const vips = serviceAddresses(cfg);
    if (diverged.length) {
      const n = await destroySockets(serviceAddressList(cfg), diverged).catch((e: unknown) => {
        log.error({ err: (e as Error).message }, 'could not abort the sockets of diverged connections');
        return 0;
      });
      for (const p of blindProds(diverged, vips)) injector.send(p);
      mark(`closed ${diverged.length} diverged connection(s) (${n} socket(s) aborted)`);
    }
    // Not those still in the handshake: S's TCP resends its SYN-ACK to the client itself now.
    const live = await existingConnections(serviceAddressList(cfg), new PortMatcher(cfg.service.ports)).catch(() => []);
    const owing = live.filter(owes);
    for (const p of blindPrompts(owing, vips)) injector.send(p);
    mark(`prompted ${owing.length} connection(s) to acknowledge (of ${live.length}; the others idle)`);
    return diverged.length;
  }

  /**
   * The ingress stays until the takeover's ARP is out: a client's segment
   * sent to the primary's MAC meanwhile still reaches our TCP (lost, a
   * request would wait for the client's own retransmission timeout).
   */
  async detach(): Promise<void> {
    await detachKernelPath(this.spec.tag, 'ingress');
    await removeDivertRoutes();
  }

  release(): void {}

  async close(): Promise<void> {
    await removeRules(this.spec.tag);
    await removeDivertRoutes();
  }
}

/** The paper's path: capture, inject, divert through a queue. */
export class PcapDataPath implements SecondaryDataPath {
  readonly name = 'pcap';
  readonly errors: PathErrors = { verdict: 0, internal: 0 };
  queue: PacketQueue | undefined;
  capture: FrameCapture | undefined;
  private rules: RuleSet | undefined;

  constructor(private readonly x: PathContext) {}

  get installed(): boolean {
    return this.rules !== undefined;
  }

  /** The queue's backend and number, for the start log. */
  get rulesInfo(): { backend: string; queue: number | undefined } | undefined {
    return this.rules ? { backend: this.rules.backend, queue: this.queue?.queueNum } : undefined;
  }

  async install(): Promise<void> {
    const { cfg, log, diverter, injector } = this.x;
    const qnum = cfg.queue_base + 2;
    const q = new PacketQueue(
      qnum,
      { gso: true, maxLen: 16384, rcvbuf: cfg.limits.queue_buffer_bytes, reuseBuffer: true },
      {
        onPacket: (b, i) => this.onOutput(q, b, i),
        onError: (e) => {
          // A bug drops that one packet (the queue did, fail closed): counted, the first few logged.
          this.errors.internal++;
          if (this.errors.internal <= 10)
            log.error({ err: e, count: this.errors.internal }, 'internal error on a packet: dropped');
        },
      },
    );
    this.queue = q;
    // Each service address's (an IPv6 one's in the ip6 table).
    const vips = serviceAddresses(cfg);
    this.rules = await RuleSet.install(
      `${cfg.instance}s`,
      [vips.v4, ...(vips.v6 === null ? [] : [vips.v6])].flatMap((vip): Rule[] => [
        {
          hook: 'output',
          match: { src: vip, sports: cfg.service.ports, oifNot: 'lo' },
          action: { queue: qnum, bypass: false },
          comment: 'tcpfo: S output to clients, diverted to P (fail closed)',
        },
        // The client's SYN that reaches our TCP from the kernel, not injected (the primary's
        // copy to our MAC on a learning switch), is clamped as the diverter clamps the
        // injected ones: else S's full-sized segments, the divert option added, exceed the
        // MTU and are not sent (IpFragFails; IPv6's Packet Too Big meets no socket), and
        // the connection waits ~2 s for TCP to send smaller ones.
        {
          hook: 'prerouting',
          match: { dst: vip, dports: cfg.service.ports, iifNot: 'lo', syn: true },
          action: { clampMss: clampedMss(cfg.lan.mtu, isIp6(vip)) },
          comment: 'tcpfo: client SYN straight to S, MSS clamped to leave room for the divert option',
        },
      ]),
      BRIDGE_MARK,
    );
    // A kernel-path predecessor's tables and routing go once our queue rule is in (theirs was fail closed too).
    // Its ip table (the same name as ours) went with the install: replaced by ours in one
    // transaction (nft backend), or deleted once ours was in (iptables-nft). Only its ingress
    // table is left: detaching 'all' deleted our own queue table where the kernel has nft's
    // queue (Debian's do), and S's output went out to the clients undiverted.
    await detachKernelPath(`${cfg.instance}s`, 'ingress');
    await removeDivertRoutes();
    this.capture = new FrameCapture(
      cfg.secondary.interface,
      serviceFilter(serviceAddressList(cfg), cfg.service.ports),
      (frame) => {
        const pkt = diverter.inbound(frame);
        if (pkt) injector.send(pkt);
      },
    );
  }

  probes(): QueueProbe[] {
    return this.queue ? [probeOf(`${this.queue.queueNum} (divert)`, this.queue)] : [];
  }

  deafen(): void {
    this.queue?.deafen();
  }

  async stopDiverting(): Promise<void> {
    await this.rules?.detach();
  }

  /** The capture's last view of each connection gives exact resets and prompts. */
  async prompt(diverged: SocketKey[], mark: (what: string) => void): Promise<number> {
    const { cfg, log, diverter, injector } = this.x;
    this.capture?.close();
    mark('stopped capturing');
    // Connections that diverged on the primary end here rather than go on with our bytes.
    const resets = diverter.resets(diverged);
    for (const p of resets.packets) injector.send(p);
    if (diverged.length) {
      mark(`closed ${resets.closed} diverged connection(s)`);
      // The reset into our own stack needs the client's exact next sequence
      // number, which a segment the kernel took straight from the client
      // (after the gratuitous ARP, before the capture closed) can have moved
      // on: abort our sockets by address too, then prod the clients again,
      // so that their answers meet no socket and draw an exact reset.
      void destroySockets(serviceAddressList(cfg), diverged)
        .then((n) => {
          for (const p of resets.prods) injector.send(p);
          if (n) log.warn({ sockets: n }, `aborted ${n} socket(s) of diverged connection(s) after the takeover`);
        })
        .catch((e: unknown) =>
          log.error({ err: (e as Error).message }, 'could not abort the sockets of diverged connections'),
        );
    }
    const prompts = diverter.prompts();
    for (const p of prompts) injector.send(p);
    mark(`prompted ${prompts.length} connection(s) to acknowledge`);
    return resets.closed;
  }

  async detach(): Promise<void> {
    await this.rules?.remove();
  }

  release(): void {
    this.queue?.close();
  }

  async close(): Promise<void> {
    this.capture?.close();
    await this.rules?.remove();
    this.queue?.close();
  }

  private onOutput(q: PacketQueue, b: PacketBatch, i: number): void {
    const id = b.id(i);
    const out = this.x.diverter.divert(b.packet(i), (b.skbInfo(i) & SKB_GSO) !== 0, b.checksumPartial(i));
    let ok: boolean;
    if (typeof out !== 'string') ok = q.acceptModified(id, out);
    else if (out === 'not-service' || out === 'not-failover-port') ok = q.accept(id);
    else ok = q.drop(id); // fail closed
    if (!ok) this.errors.verdict++;
  }
}
