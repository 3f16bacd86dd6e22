/**
 * The primary bridge process: wires the merger to NFQUEUE, the raw socket,
 * the rules and the node state, and carries out its role's changes. Thin on
 * purpose — every decision is the merger's; which segments the kernel
 * handles and which cross the queues is the data path's (paths.ts).
 *
 * Queues:
 *   base     P's own output to clients (held until S matches it)     fail closed
 *   base+1   client segments to the VIP, and S's diverted segments   fail closed
 * Fail closed everywhere: without the bridge, P's raw sequence numbers must
 * never reach a client, a client ACK must never reach P's TCP untranslated,
 * and S's diverted segments must never reach P's TCP (it would reset them).
 */
import { existsSync } from 'node:fs';
import { ipAddr, ipAddrToString, ipv4, mac, type IpAddr, type ServiceAddresses } from '../../net/addr.js';
import { emitEthernet, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../wire/ethernet.js';
import { ipVersion } from '../wire/ip.js';
import { afterReading, FrameCapture } from '../io/capture.js';
import { BRIDGE_MARK, Injector } from '../io/inject.js';
import { NodeState } from '../io/node-state.js';
import { QueueProgress } from './queue-progress.js';
import {
  kernelQueueCounts,
  macToNumber,
  PacketQueue,
  poisonInTests,
  queueStatus,
  type PacketBatch,
} from '../io/nfqueue.js';
import { removeRules, RuleSet, type Rule } from '../io/rules.js';
import { existingConnections } from '../io/sockets.js';
import { PortMatcher, type PortSet } from '../../net/ports.js';
import { announcementFrames, claimCaptureFilter, claimProbeFrames, serviceClaimer } from '../vip-arp.js';
import { LanPresence } from '../io/presence.js';
import { warnUnlessRealtime } from '../io/realtime.js';
import { setupStall } from '../node/faults.js';
import { probeOf } from '../node/liveness.js';
import { PeerActivity } from '../detector/activity.js';
import { NodeShell } from '../node/shell.js';
import { classifyInbound } from './inbound.js';
import { Merger, type MergerSink } from './merger.js';
import type { MergerConfig } from './merge/types.js';
import type { InboundXlate } from '../io/xlate.js';
import { KernelPath, QueuePath, type PathStats, type PrimaryDataPath } from './paths.js';
import type { CongestionReset } from '../io/cc-reset.js';
import { ReopenWatch } from '../node/reopen-watch.js';
import { inboundId, queueOf } from './queue-ids.js';
import { serviceAddresses, serviceAddressList, type Config } from '../../config/config.js';
import { PeerLink, peerConfigOf, readKey, stallLogger } from '../detector/peer-link.js';
import {
  abortConnections,
  abortConnectionsQuarantined,
  dropPrivileges,
  nodeCongestionReset,
  resetCongestion,
  journalOf,
  prepareNode,
  removeOtherRoleRules,
  startOrUndo,
  undoLeftovers,
  undoOtherRoleJournal,
} from '../node/setup.js';
import { noteSwitchover, type MetricsSnapshot } from '../node/metrics.js';
import { GRACE_TIMEOUTS, type Decision } from '../detector/detector.js';
import type { Logger } from '../log.js';
import { DEFAULT_ROLE_MACHINE, RoleMachine, stepOf, type RoleAction } from '../node/role-machine.js';
import type { RoleListener, SwitchResult } from '../node/roles.js';
import { switchRefusal, type SwitchState } from '../node/switchover.js';
import type { SwitchKind } from '../detector/heartbeat.js';
import { monotonicMs, wallTimeOf } from '../clock.js';

/** Beyond the secondary's detector decision: its split-brain probe (50 ms) and takeover. */
const TAKEOVER_MARGIN_MS = 300;
/** The secondary failed: connections turned primary-only per call, and the time one turn of the event loop spends on them. */
const ALONE_SLICE = 50;
const ALONE_STEP_MS = 20;

/** Another station answers for the service address: starting would split the brain. */
export class ServiceAddressInUse extends Error {
  override readonly name = 'ServiceAddressInUse';
  constructor(
    /** The configured secondary answers: it took over while this node was down. */
    readonly bySecondary: boolean,
    message: string,
  ) {
    super(message);
  }
}

export interface PrimaryStats extends PathStats {
  spoofedDiverted: number;
  /** Packets dropped because the merger threw (a bug): the pair keeps running. */
  internalErrors: number;
  /** Times the secondary's heartbeats fell silent while its segments still arrived: not declared failed then (detector/activity.ts). */
  silencesExcused: number;
}

/** How often the input queue's counts are looked at, ms (watchInputQueue). */
const INPUT_WATCH_MS = 100;

/** The merger's bounds from the configuration: set at the start, and again on a reload (SIGHUP). */
function mergerLimits(cfg: Config): Partial<MergerConfig> {
  return {
    maxConnections: cfg.limits.max_connections,
    maxPendingHandshakes: cfg.limits.max_pending_handshakes,
    handshakeTimeoutMs: cfg.limits.handshake_timeout_ms,
    idleTimeoutMs: cfg.limits.idle_timeout_s * 1000,
    maxStoredBytes: cfg.limits.max_stored_bytes,
    maxBufferedBytes: cfg.limits.max_buffered_bytes,
    secondarySilenceMs: cfg.limits.secondary_silence_ms,
    earlyEndGraceMs: cfg.limits.early_end_grace_ms,
  };
}

export class PrimaryBridge {
  readonly merger: Merger;
  readonly stats: PrimaryStats = {
    spoofedDiverted: 0,
    verdictErrors: 0,
    internalErrors: 0,
    xlateMapFull: 0,
    releasedInKernel: 0,
    orderWaited: 0,
    dsackCleared: 0,
    returnedToKernel: 0,
    handshakesPrompted: 0,
    orderResyncs: 0,
    silencesExcused: 0,
  };
  /** Whether a silent secondary still sends (its last segment, from the kernel and the queue): one that does is not dead. */
  private readonly secondaryActivity: PeerActivity;
  /** When the secondary's last segment reached the input queue (the kernel times those it takes itself). */
  private secondarySeenAt: number | null = null;
  /** While a silence is excused: the next look. */
  private excuseTimer: NodeJS.Timeout | undefined;
  /** The node's role, its changes decided by a pure state machine (node/role-machine.ts). */
  private readonly roles = new RoleMachine(DEFAULT_ROLE_MACHINE, 'claiming');
  private outQ!: PacketQueue;
  private inQ!: PacketQueue;
  private rules!: RuleSet;
  private injector!: Injector;
  private arp!: FrameCapture;
  /** ARP answers for the VIP and the event-loop watchdog, on a native thread. */
  private presence: LanPresence | undefined;
  /** Metrics, status, the liveness guard, the fault socket (node-shell.ts). */
  private readonly shell: NodeShell;
  /**
   * Where the client's segments are translated and P's released (paths.ts):
   * the queues alone, or the kernel's programs with the queues for the rest.
   */
  private readonly path: PrimaryDataPath;
  private timer: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private stallTimerAt = Infinity;
  private stopped = false;
  private peer!: PeerLink;
  private failoverSeconds: number | null = null;
  /** The secondary failed and has not rejoined (its connections may still be turning primary-only). */
  get alone(): boolean {
    return this.roles.alone;
  }
  /** Run once this node serves alone (io/cc-reset.ts); null where the kernel cannot. */
  private ccReset: CongestionReset | null = null;
  /** While the secondary answers: connections whose client's window reopened get a new congestion start. */
  private reopenWatch: ReopenWatch | null = null;
  private noticeTimer: NodeJS.Timeout | undefined;
  /** Times the secondary failed, and came back after a failure. */
  failures = 0;
  rejoins = 0;
  private readonly vip: number;
  /** The service addresses: its input queue tells the client's segments by them, and it claims them. */
  private readonly vips: ServiceAddresses;
  private readonly self: number;
  private readonly peerAddr: number;
  private readonly peerMac: number;
  private readonly myMac: Buffer;
  private readonly secondaryMac: Buffer;
  readonly state: NodeState;

  private constructor(
    readonly cfg: Config,
    readonly log: Logger,
    /** Programs the secondary loaded at its start (a promotion attaches them): this bridge's from now on. */
    preloaded: InboundXlate | undefined,
  ) {
    this.secondaryActivity = new PeerActivity(cfg.heartbeat.interval_ms, cfg.liveness.loop_stall_ms);
    this.vip = ipv4(cfg.service.address);
    this.vips = serviceAddresses(cfg);
    this.self = ipv4(cfg.primary.address);
    this.peerAddr = ipv4(cfg.secondary.address);
    this.peerMac = macToNumber(cfg.secondary.mac);
    this.myMac = mac(cfg.primary.mac);
    this.secondaryMac = mac(cfg.secondary.mac);
    this.state = new NodeState(journalOf(cfg, 'p'));
    this.shell = new NodeShell(cfg, 'p', log, this);
    const sink: MergerSink = {
      accept: (id, packet) => {
        const q = queueOf(id);
        if (!q.inbound) this.path.verdict(q.id);
        // What leaves the output queue carries the bridge's mark: the egress
        // program rewrites only P's segments that skipped the queue.
        const ok = q.inbound
          ? packet
            ? this.inQ.acceptModified(q.id, packet)
            : this.inQ.accept(q.id)
          : packet
            ? this.outQ.acceptModified(q.id, packet, BRIDGE_MARK)
            : this.outQ.accept(q.id, BRIDGE_MARK);
        if (!ok) this.stats.verdictErrors++;
        if (!q.inbound) this.path.decided(q.id);
      },
      drop: (id) => {
        const q = queueOf(id);
        if (!q.inbound) this.path.verdict(q.id);
        if (!(q.inbound ? this.inQ : this.outQ).drop(q.id)) this.stats.verdictErrors++;
        if (!q.inbound) this.path.decided(q.id);
      },
      send: (packet) => {
        this.injector.send(packet);
      },
      // Into S's own stack: a frame to its MAC (a learning switch delivers it there too).
      // Not once the bridge stops (the capture closed): S's socket then times out on its own.
      toSecondary: (packet) => {
        const type = ipVersion(packet) === 6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4;
        if (this.arp?.isOpen) this.arp.send(emitEthernet(this.secondaryMac, this.myMac, type, packet));
      },
    };
    const x = {
      cfg,
      log,
      vip: this.vip,
      myMac: this.myMac,
      state: this.state,
      stats: this.stats,
      merger: () => this.merger,
      outQ: () => this.outQ,
      injector: () => this.injector,
      alone: () => this.alone,
      stopped: () => this.stopped,
      internalError: (e: unknown) => this.internalError(e),
    };
    if (cfg.inbound === 'queue') preloaded?.close();
    this.path = cfg.inbound === 'queue' ? new QueuePath(x) : new KernelPath(x, preloaded);
    this.merger = new Merger(
      {
        service: this.vip,
        service6: this.vips.v6,
        mtu: cfg.lan.mtu,
        ...mergerLimits(cfg),
        // Tests: a held copy read after its verdict reads garbage (as a packet view kept past its batch does).
        poisonPooled: poisonInTests(),
      },
      sink,
      (what, c) => {
        this.log.warn({ client: `${ipAddrToString(c.client)}:${c.clientPort}`, port: c.servicePort }, what);
        this.reportDiverged();
      },
      this.path.offload,
    );
  }

  /**
   * `opts.adoptExisting`: this node was serving alone (it is the former
   * secondary, now taking the primary's role): its own connections on the
   * service address pass unchanged; only new ones are merged.
   */
  static async start(
    cfg: Config,
    log: Logger,
    opts: {
      adoptExisting?: boolean;
      peer?: PeerLink;
      onRoleChange?: RoleListener;
      xlate?: InboundXlate;
      onHandedOver?: () => void;
    } = {},
  ): Promise<PrimaryBridge> {
    const b = new PrimaryBridge(cfg, log, opts.xlate);
    b.adoptExisting = opts.adoptExisting ?? false;
    b.handedPeer = opts.peer;
    b.onRoleChange = opts.onRoleChange ?? (() => {});
    b.onHandedOver = opts.onHandedOver ?? (() => {});
    return startOrUndo(b, () => b.setup());
  }

  /** Told once the secondary has taken the service over (a planned switchover): the daemon turns this node into the secondary. */
  private onHandedOver: () => void = () => {};
  /** A planned switchover in flight (the role machine's `handing`): settles it when the secondary answers. */
  private handing: { settle: (r: SwitchResult) => void; timer: NodeJS.Timeout } | null = null;
  /** The secondary took the service over: this bridge only waits to be stopped. */
  get handedOver(): boolean {
    return this.roles.state === 'handed-over';
  }

  /** What a switchover's check needs (switchover.ts). */
  switchState(): SwitchState {
    const det = this.peer?.detector;
    return {
      peer: det?.peer ?? 'unknown',
      peerRole: det?.peerRole ?? null,
      alone: this.alone,
      unreplicated: this.merger.unreplicated(),
      diverged: this.merger.divergedConnections().length,
      configMismatch: this.peer?.configMismatch ?? null,
      peerVersion: this.peer?.peerVersion ?? null,
      inProgress: this.roles.switching,
      stopping: this.stopped,
    };
  }

  /**
   * A planned switchover (switchover.ts; `tcpfo switchover` on this node, or
   * the secondary's request): if the pair is in sync, stop
   * answering ARP for the VIP and tell the secondary to take it over; the
   * merge goes on until the secondary's copies stop coming. Resolves when
   * the secondary has taken over (then onHandedOver), refused, or not
   * answered in time (then this node answers for the VIP again).
   */
  async switchover(why: string): Promise<SwitchResult> {
    // Adopted connections end with a FIN the merger does not follow: the sockets say which still live.
    await this.refreshAdopted();
    const refusal =
      switchRefusal(this.switchState()) ??
      (this.roles.beginHandover() ? null : 'this node does not serve as the primary');
    if (refusal) {
      noteSwitchover('refused');
      this.log.warn({ why: refusal, asked: why }, 'switchover refused');
      return { ok: false, message: refusal };
    }
    this.log.warn(
      { asked: why, connections: this.merger.phases() },
      'switchover: handing the service address to the secondary',
    );
    this.presence?.answer(false);
    // Its heartbeats say 'alone' once it serves: heard, they count as its answer too.
    this.peer.detector.peerRoles = ['secondary', 'alone'];
    const waitMs = Math.max(2000, 4 * this.cfg.heartbeat.timeout_ms);
    return new Promise<SwitchResult>((resolve) => {
      const resend = [0, 50, 200, 500].map((ms) =>
        setTimeout(() => this.handing && this.peer.sendSwitch('handover'), ms),
      );
      const settle = (r: SwitchResult) => {
        if (!this.handing) return;
        clearTimeout(this.handing.timer);
        for (const t of resend) clearTimeout(t);
        this.handing = null;
        resolve(r);
      };
      const timer = setTimeout(
        () => this.act(this.roles.handoverTimedOut(this.peer.detector.peerRole, waitMs)),
        waitMs,
      );
      this.handing = { settle, timer };
    });
  }

  /**
   * Adopted connections whose socket is gone are forgotten (once a second
   * while there are any, and before a switchover): the merger sees their
   * RST, but not the end of a close.
   */
  private async refreshAdopted(): Promise<void> {
    if (!this.merger.adoptedCount || this.refreshing) return;
    this.refreshing = true;
    try {
      this.merger.retainAdopted(
        await existingConnections(serviceAddressList(this.cfg), new PortMatcher(this.cfg.service.ports)),
      );
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'could not list this node’s connections (sock_diag)');
    } finally {
      this.refreshing = false;
    }
  }
  private refreshing = false;

  /** Announces the service at this node's MAC `times` times (gratuitous ARP; a neighbour advertisement for IPv6). */
  private announce(times: number): void {
    for (let i = 0; i < times; i++) for (const f of announcementFrames(this.myMac, this.vips)) this.arp.send(f);
  }

  /** A switchover that did not happen: this node answers for the VIP again. */
  private resumeService(why: string): void {
    noteSwitchover('failed');
    this.peer.detector.peerRoles = ['secondary'];
    this.presence?.answer(true);
    this.announce(3);
    this.log.error({ why }, 'switchover failed: this node serves on as the primary');
    this.handing?.settle({ ok: false, message: why });
  }

  /** The secondary serves the VIP now (it said so): this bridge is done; the daemon makes this node the secondary. */
  private tookOverByPeer(how: string): void {
    noteSwitchover('done');
    this.log.warn({ how }, 'switchover: the secondary took the service address over; this node becomes its secondary');
    this.handing?.settle({
      ok: true,
      message: `the other node (${this.cfg.secondary.address}) serves the service address now; this node becomes its secondary`,
    });
    this.onHandedOver();
  }

  /** A switchover message from the secondary. */
  private onSwitch(kind: SwitchKind, reason: string): void {
    if (kind === 'request') {
      void this.switchover('asked on the secondary').then((r) => {
        if (!r.ok) this.peer.sendSwitch('refused', r.message);
      });
    } else if (kind === 'taken') this.act(this.roles.peerTook('it said so'));
    else if (kind === 'refused') this.act(this.roles.handoverRefused(reason));
  }

  /** Told of each role change (the daemon's hook). */
  private onRoleChange: RoleListener = () => {};

  /**
   * A reloaded configuration (SIGHUP): the merger's bounds and the liveness
   * guard's; what else changed needs a restart (the caller says so).
   */
  reload(cfg: Config): void {
    Object.assign(this.merger.cfg, mergerLimits(cfg));
    this.path.reload(cfg);
    this.shell.setQueueStallMs(cfg.liveness.queue_stall_ms);
  }

  private adoptExisting = false;
  /** The heartbeat link of the secondary bridge this one takes over from (roles swapped). */
  private handedPeer: PeerLink | undefined;

  /**
   * Whether a predecessor left state or connections here (killed or stopped
   * less than a detector timeout ago, maybe): the role machine then stays
   * silent first (startClaim). Not after a promotion: this node served.
   */
  private async leftovers(): Promise<boolean> {
    if (this.adoptExisting || this.handedPeer) return false;
    const cfg = this.cfg;
    return (
      existsSync(this.state.journal) ||
      (await existingConnections(serviceAddressList(cfg), new PortMatcher(cfg.service.ports))).length > 0
    );
  }

  /**
   * Is the service address already served (the secondary took it over
   * while this node was down)? Then starting would make two nodes answer
   * for it. The role machine's start (node/role-machine.ts): silent while a
   * predecessor's secondary may still take over, then RFC 5227 probes,
   * before touching anything. Returns the MAC of whoever answered, or
   * null. A killed predecessor's rules stay meanwhile: their queues have no
   * reader, so what its servers' sockets still send is dropped, not leaked.
   */
  private async claimServiceAddress(): Promise<string | null> {
    const cfg = this.cfg;
    const silentMs = GRACE_TIMEOUTS * cfg.heartbeat.timeout_ms + 2 * cfg.heartbeat.interval_ms + TAKEOVER_MARGIN_MS;
    let actions = this.roles.startClaim(await this.leftovers(), silentMs, monotonicMs());
    for (;;) {
      const a = actions[0];
      if (!a) throw new Error('stopped while probing the service address');
      switch (a.do) {
        case 'stay-silent':
          this.log.warn(
            { waitMs: a.waitMs },
            'a previous primary left state or connections here: silent while the secondary may still be deciding to take over',
          );
          await new Promise((r) => setTimeout(r, a.waitMs));
          break;
        case 'probe':
          await this.sendProbe(a.waitMs);
          break;
        case 'claim':
          return null;
        case 'refuse':
          return a.claimer;
        default:
          throw new Error(`the primary's start asked ${a.do}`);
      }
      actions = this.roles.timer(monotonicMs());
    }
  }

  /**
   * One ARP probe for the VIP that left (one the device's full queue refused
   * is sent again, 10 ms later), then its wait, which ends only after the
   * frames read by then are handled (afterReading): an answer that came
   * while the loop was held is not missed. Answers go to the role machine.
   */
  private async sendProbe(waitMs: number): Promise<void> {
    const cfg = this.cfg;
    this.arp ??= new FrameCapture(
      cfg.primary.interface,
      claimCaptureFilter(this.vips),
      (f) => {
        const by = serviceClaimer(f, this.vips, cfg.primary.mac);
        if (by) this.roles.vipClaimed(monotonicMs(), by);
      },
      1 << 20,
    );
    for (let tries = 0; !claimProbeFrames(this.myMac, this.vips).every((f) => this.arp.send(f)); tries++) {
      if (tries >= 300)
        throw new Error(
          `could not send ARP probes for ${cfg.service.address} on ${cfg.primary.interface}: ${this.arp.stats.lastSendError}`,
        );
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise<void>((r) => afterReading(waitMs, this.arp, r));
  }

  /**
   * Someone else answers for the service address: refuse to start, and leave
   * the node clean — no rules, no addresses, and none of the previous
   * instance's sockets (their connections live on the other node now, or nowhere).
   */
  private async refuseClaimed(claimer: string): Promise<never> {
    const cfg = this.cfg;
    await abortConnectionsQuarantined(
      cfg,
      this.log,
      'left by a previous instance; the other node serves the service address',
    );
    await undoLeftovers(this.state, this.log, 'primary');
    await removeRules(`${cfg.instance}p`);
    if (!this.adoptExisting) {
      // And what this daemon's predecessor left as a secondary (roles swapped).
      await undoOtherRoleJournal(cfg, 'p', this.log);
      await removeOtherRoleRules(cfg, 'p', this.log);
    }
    throw new ServiceAddressInUse(
      claimer === cfg.secondary.mac.toLowerCase(),
      `the service address ${cfg.service.address} is answered by ${claimer}${claimer === cfg.secondary.mac.toLowerCase() ? ' (the secondary: it took over while this node was down)' : ''}; ` +
        'not starting as primary. Connections now live on that node; see README "Recover".',
    );
  }

  /** The output queue (P's segments) and the input queue (S's copies, the client's segments the kernel does not translate). */
  private openQueues(q: number): void {
    const cfg = this.cfg;
    const onError = (e: unknown) => this.internalError(e);
    const onBatchEnd = () => {
      this.merger.batchEnd(monotonicMs());
      this.armTimer();
    };
    const onBatchStart = () => this.path.hear();
    // A packet the handler threw on is dropped by the queue: a verdict too.
    const onOutputError = (e: unknown, b: PacketBatch, i: number) => {
      if (i >= 0) this.path.decided(b.id(i));
      this.internalError(e);
    };
    this.outQ = new PacketQueue(
      q,
      { gso: true, maxLen: 16384, rcvbuf: cfg.limits.queue_buffer_bytes, reuseBuffer: true },
      { onPacket: (b, i) => this.path.output(b, i), onBatchStart, onBatchEnd, onError: onOutputError },
    );
    this.inQ = new PacketQueue(
      q + 1,
      { gso: true, maxLen: 16384, rcvbuf: cfg.limits.queue_buffer_bytes, reuseBuffer: true },
      { onPacket: (b, i) => this.onInput(b, i), onBatchStart, onBatchEnd, onError },
    );
  }

  /** What goes to the queues, and the client's SYN that need not. */
  private queueRules(q: number, ports: PortSet): Rule[] {
    // The pcap path's diverted copies come between the nodes' own addresses, of their client's family.
    const divertedBetween = (src: IpAddr, dst: IpAddr): Rule => ({
      hook: 'prerouting',
      match: { src, dst, sports: ports },
      action: { queue: q + 1, bypass: false },
      comment: 'tcpfo: diverted from S, pcap path (fail closed)',
    });
    const diverted = divertedBetween(this.peerAddr, this.self);
    const { primary, secondary } = this.cfg;
    const diverted6 =
      this.vips.v6 === null || primary.address6 === null || secondary.address6 === null
        ? []
        : [divertedBetween(ipAddr(secondary.address6), ipAddr(primary.address6))];
    const perVip = (vip: IpAddr): Rule[] => [
      // Not over lo: the node's own connections to the service address (track's checks) are no client's.
      {
        hook: 'output',
        match: { src: vip, sports: ports, oifNot: 'lo' },
        action: { queue: q, bypass: false },
        comment: 'tcpfo: P output to clients, merged (fail closed)',
      },
      // The kernel path: S's segments come unchanged, routed to us (source VIP, destination the client).
      {
        hook: 'prerouting',
        match: { src: vip, sports: ports, iifNot: 'lo' },
        action: { queue: q + 1, bypass: false },
        comment: 'tcpfo: diverted from S, kernel path (fail closed)',
      },
      // A client's opening SYN needs no translation (no ACK, no echo yet) and the merger keeps
      // nothing of it (P's SYN-ACK opens its record): straight to P's TCP, as the inbound
      // program passes it (inbound: queue too), so no handshake waits for a wake-up of the bridge
      // before P can answer and a SYN flood costs the bridge nothing.
      {
        hook: 'prerouting',
        match: { dst: vip, dports: ports, iifNot: 'lo', synOnly: true },
        action: 'accept',
        comment: 'tcpfo: client SYN to service, straight to P (nothing to translate)',
      },
      {
        hook: 'prerouting',
        match: { dst: vip, dports: ports, iifNot: 'lo' },
        action: { queue: q + 1, bypass: false },
        comment: 'tcpfo: client to service, translated (fail closed)',
      },
    ];
    const [out4, ...in4] = perVip(this.vip);
    // IPv6 (docs/ipv6.md): the same rules for its service address, in their own family's table.
    return [out4!, diverted, ...in4, ...(this.vips.v6 === null ? [] : [...perVip(this.vips.v6), ...diverted6])];
  }

  /** The heartbeat link to the secondary: the one a promoted secondary hands over, or a new one. */
  private async openPeerLink(): Promise<void> {
    const cfg = this.cfg;
    const onDecision = (d: Decision) => this.onDecision(d);
    const onSwitch = (kind: SwitchKind, reason: string) => this.onSwitch(kind, reason);
    if (this.handedPeer) {
      this.peer = this.handedPeer;
      this.peer.retarget({ role: 'primary', peerRoles: ['secondary'], onDecision, onSwitch });
      // The secondary may have gone again while we started: no decision will repeat it.
      if (this.peer.detector.peer === 'down') queueMicrotask(() => this.act(this.roles.peerGone()));
    } else
      this.peer = await PeerLink.open({
        self: cfg.primary.address,
        peer: cfg.secondary.address,
        port: cfg.heartbeat.port,
        key: readKey(cfg.heartbeat.key_file),
        intervalMs: cfg.heartbeat.interval_ms,
        planAheadMs: cfg.liveness.loop_stall_ms,
        startupGraceMs: cfg.heartbeat.startup_grace_ms,
        timeoutMs: cfg.heartbeat.timeout_ms,
        role: 'primary',
        peerRoles: ['secondary'],
        onDecision,
        onSwitch,
        onStall: stallLogger(this.log, cfg.heartbeat.timeout_ms),
        config: peerConfigOf(cfg),
        log: this.log,
      });
  }

  private async setup(): Promise<void> {
    const cfg = this.cfg;
    const claimer = await this.claimServiceAddress();
    if (claimer) await this.refuseClaimed(claimer);
    // Ours: answered from a thread of its own from now on (io/presence.ts),
    // which also ends this process if its event loop gets stuck.
    this.presence = new LanPresence(
      cfg.primary.interface,
      this.vips,
      this.myMac,
      cfg.liveness.loop_stall_ms,
      this.log.bindings().name ?? 'tcpfo',
    );
    warnUnlessRealtime(this.log, 'arp', this.presence.stats.realtime);
    this.presence.answer(true);
    setupStall();
    // The VIP: dormant in the kernel, claimed on the LAN by this process (ARP).
    await prepareNode(this.state, cfg, cfg.primary.interface, this.log, 'p', !this.adoptExisting);
    // Taking over from our own secondary role: what this node serves alone
    // passes unchanged (listed before and again after the rules go in, so no
    // connection falls between the two).
    const adopt = async () => {
      if (!this.adoptExisting) return 0;
      const own = await existingConnections(serviceAddressList(cfg), new PortMatcher(cfg.service.ports));
      this.merger.adopt(own, monotonicMs());
      return own.length;
    };
    await adopt();
    const q = cfg.queue_base;
    this.openQueues(q);
    this.injector = new Injector(BRIDGE_MARK);
    const ports = cfg.service.ports;
    await this.path.attach();
    this.rules = await this.installRules(this.queueRules(q, ports));
    await this.path.startCopies();
    if (this.adoptExisting) {
      const n = await adopt();
      this.log.warn(
        { adopted: n },
        'taking the primary role: existing connections pass unchanged, new ones are merged',
      );
    } else {
      // What this node's TCP still has on the service address is a previous
      // instance's (its servers killed, its connections now served by the
      // other node or by nobody): never to be continued. Aborted behind our
      // rules (the merger drops their RSTs: unknown connections).
      await abortConnections(cfg, this.log, 'left by a previous instance');
      await removeOtherRoleRules(cfg, 'p', this.log);
    }
    this.announce(3);
    await this.openPeerLink();
    await this.shell.open([probeOf(`${q} (output)`, this.outQ), probeOf(`${q + 1} (input)`, this.inQ)], (which) =>
      (which === 'input' ? this.inQ : this.outQ).deafen(),
    );
    // The merger's pass over its table runs in slices (a tenth each tick); the rest once a second.
    let tick = 0;
    this.timer = setInterval(() => {
      this.poll();
      if (++tick % 10) return;
      this.path.everySecond();
      void this.refreshAdopted();
    }, 100);
    this.timer.unref();
    this.noticeTimer = setInterval(() => this.reportDiverged(), 250);
    this.noticeTimer.unref();
    this.ccReset = nodeCongestionReset(cfg, this.log);
    if (this.ccReset) this.reopenWatch = new ReopenWatch(this.ccReset, () => !this.alone, this.log).start();
    dropPrivileges(cfg, this.log);
    this.presence?.arm();
    this.log.info(
      {
        role: 'primary',
        service: cfg.service.address,
        ports,
        interface: cfg.primary.interface,
        lan: cfg.lan.mode,
        backend: this.rules.backend,
        queues: [q, q + 1],
        inbound: this.path.inbound,
        merge: this.path.merge,
        ...this.path.started(),
      },
      'primary bridge up: merging',
    );
    this.onRoleChange(
      'primary',
      this.adoptExisting ? 'roles swapped: the other node rejoined as secondary' : 'started',
    );
  }

  /**
   * The rules: `toQueue`, and before them the path's match (paths.ts); where
   * the match cannot be installed, the path says whether to go on without it.
   */
  private async installRules(toQueue: Rule[]): Promise<RuleSet> {
    const tag = `${this.cfg.instance}p`;
    const match = this.path.matchRules();
    if (match) {
      try {
        return await RuleSet.install(tag, [...match.rules, ...toQueue], BRIDGE_MARK, match.backend);
      } catch (e) {
        this.path.matchRefused((e as Error).message);
      }
    }
    return RuleSet.install(tag, toQueue, BRIDGE_MARK);
  }

  /**
   * Tells the secondary which connections diverged (it closes them if it
   * takes over): at once when one does, then every 250 ms while any is
   * tracked, so a lost datagram is repaired and a restarted secondary learns.
   */
  private reportDiverged(): void {
    const list = this.merger.divergedConnections();
    if (list.length && !this.alone) this.peer?.sendNotice(list);
  }

  private poll(): void {
    try {
      const now = monotonicMs();
      this.path.hear();
      this.watchInputQueue(now);
      this.merger.poll(now);
    } catch (e) {
      this.internalError(e);
    }
  }

  /** What the merger has seen of the secondary's segments (primary/queue-progress.ts). */
  private readonly inputProgress = new QueueProgress();
  private inputLossLoggedAt = -Infinity;
  private inputWatchedAt = -Infinity;

  /**
   * The input queue's losses and backlog, told to the merger, every
   * INPUT_WATCH_MS at most: poll() also runs on the merger's stall timer, up
   * to hundreds of times a second in a bulk transfer, and each look opens and
   * reads a /proc file (and QueueProgress keeps a minute of looks at that pace).
   */
  private watchInputQueue(now: number): void {
    if (now - this.inputWatchedAt < INPUT_WATCH_MS) return;
    this.inputWatchedAt = now;
    const k = this.inQ ? kernelQueueCounts(this.inQ.queueNum) : null;
    if (!k) return;
    const v = this.inputProgress.look(now, k);
    if (v.lost) {
      this.merger.secondaryUnseen(now);
      if (now - this.inputLossLoggedAt >= 10_000) {
        this.inputLossLoggedAt = now;
        this.log.warn(
          { lost: v.lost, total: k.queueDropped + k.userDropped },
          'the input queue lost segments of the secondary’s (it was full): they come again; silences are judged from now',
        );
      }
    }
    this.merger.secondarySeenUntil(v.seenUntil);
  }

  /**
   * A bug must not take the pair down (every established connection with
   * it): the packet is dropped (fail closed, by the queue; TCP retransmits),
   * counted, and the first few are logged with their stack.
   */
  private internalError(e: unknown): void {
    this.stats.internalErrors++;
    if (this.stats.internalErrors <= 10)
      this.log.error({ err: e, count: this.stats.internalErrors }, 'internal error on a packet: dropped');
  }

  /** One timer for the merger's earliest deadline (a stalled segment). */
  private armTimer(): void {
    const at = this.merger.nextTimeout();
    if (at === null || at >= this.stallTimerAt || this.stopped) return;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimerAt = at;
    this.stallTimer = setTimeout(
      () => {
        this.stallTimer = undefined;
        this.stallTimerAt = Infinity;
        this.poll();
        this.armTimer();
      },
      Math.max(0, at - monotonicMs()),
    );
  }

  private onInput(b: PacketBatch, i: number): void {
    this.inputProgress.handled(b.id(i));
    const id = inboundId(b.id(i));
    const pkt = b.packet(i);
    const now = monotonicMs();
    // Cheap dispatch on the addresses (primary/inbound.ts): the client's, or S's copy on either path.
    const from = classifyInbound(pkt, this.vips);
    if (from?.from === 'client') {
      this.merger.fromClient(id, pkt, now, b.checksumState(i));
      return;
    }
    this.path.secondaryCopy(from?.path === 'kernel');
    const client = from?.client ?? null;
    if (b.srcMac(i) !== this.peerMac || client === null) {
      // Claims to be S's output, but not from the secondary's MAC (or, on the pcap path, no option): never trusted.
      this.stats.spoofedDiverted++;
      this.inQ.drop(b.id(i));
      return;
    }
    this.secondarySeenAt = now;
    this.merger.fromSecondary(id, pkt, client, now, b.checksumState(i));
  }

  private onDecision(d: Decision): void {
    this.log.warn({ peer: d.peer, silentMs: d.silentMs, reason: d.reason }, `secondary is ${d.peer}`);
    this.act(this.roles.decision(d.peer, this.peer.detector.peerRole, monotonicMs(), d.at, d.at - d.silentMs));
  }

  /** Executes the role machine's actions (node/role-machine.ts). */
  private act(actions: RoleAction[]): void {
    for (const a of actions) {
      switch (a.do) {
        case 'check-silence':
          this.checkSilence(a.lastHeard);
          break;
        case 'excuse': {
          if (a.log) {
            this.stats.silencesExcused++;
            this.log.warn(
              { silentMs: Math.round(monotonicMs() - a.lastHeard), upToMs: this.cfg.liveness.loop_stall_ms },
              'secondary silent but its segments still arrive: not declared failed (its heartbeats lost on the way?)',
            );
          }
          const lastHeard = a.lastHeard;
          this.excuseTimer = setTimeout(() => this.checkSilence(lastHeard), this.cfg.heartbeat.interval_ms);
          break;
        }
        case 'heard-again':
          clearTimeout(this.excuseTimer);
          this.log.info(
            { excusedMs: Math.round(monotonicMs() - a.since) },
            'secondary heard again: its heartbeats had been lost, not its node',
          );
          break;
        case 'go-alone':
          this.goAlone();
          break;
        case 'log-rejoin-waits':
          this.log.warn(
            { connections: this.merger.connections },
            'secondary rejoined while connections still turn primary-only: it rejoins once they have',
          );
          break;
        case 'rejoin':
          this.rejoin();
          break;
        case 'resume-service':
          this.resumeService(a.why);
          break;
        case 'handed-over':
          this.tookOverByPeer(a.how);
          break;
        default:
          // The secondary's half: never in a primary bridge.
          this.internalError(new Error(`the primary's role machine asked ${a.do}`));
      }
    }
  }

  /** When the secondary's last segment reached this node, in the kernel or in the queue; null if none has. */
  private secondaryLastSegmentAt(now: number): number | null {
    const silent = this.path.secondarySilentMs();
    const kernel = silent === null ? null : now - silent;
    if (kernel === null) return this.secondarySeenAt;
    return this.secondarySeenAt === null ? kernel : Math.max(kernel, this.secondarySeenAt);
  }

  /**
   * The secondary fell silent (heard last at `lastHeard`): it failed, unless
   * its segments still arrive — then its heartbeats were lost on the way, and
   * the merge goes on with its copies. Looked at again every heartbeat
   * interval, up to liveness.loop_stall_ms of silence (detector/activity.ts).
   */
  private checkSilence(lastHeard: number): void {
    clearTimeout(this.excuseTimer);
    const now = monotonicMs();
    const stillSends = this.secondaryActivity.stillSends(now, this.secondaryLastSegmentAt(now), lastHeard);
    this.act(this.roles.silence(lastHeard, stillSends, now));
  }

  /**
   * The secondary is back (restarted after a failure): new connections are
   * replicated again. Connections that began while we were alone stay
   * primary-only for their whole life (S's stack never saw their start); S's
   * kernel answers their segments with resets, which arrive diverted and are
   * dropped here.
   */
  private rejoin(): void {
    this.path.setAlone(false);
    this.path.updateHandshakes();
    this.peer.role = 'primary';
    void this.path
      .startCopies()
      .catch((e: unknown) =>
        this.log.error({ err: (e as Error).message }, 'could not copy the client’s frames to the secondary again'),
      );
    this.merger.secondaryRejoined();
    this.rejoins++;
    this.onRoleChange('primary', 'the secondary rejoined');
    this.log.warn(
      { role: 'primary', primaryOnly: this.merger.phases().degraded },
      'secondary rejoined: new connections are replicated again',
    );
  }

  /** Alone: each connection's TCP starts its congestion state anew (io/cc-reset.ts). */
  private async resetCongestionAlone(): Promise<void> {
    const done = await resetCongestion(this.ccReset, this.log);
    if (done && !this.stopped) this.log.info({ role: 'alone' }, done);
  }

  /** The secondary is gone (§6): stop holding, stop merging, keep Δseq. */
  private goAlone(): void {
    // No more handshakes merged in the kernel; those it merged join the others.
    this.path.updateHandshakes();
    this.path.hear();
    this.path.promptHeld();
    this.failures++;
    this.peer.role = 'alone';
    void this.path
      .stopCopies()
      .catch((e: unknown) =>
        this.log.error({ err: (e as Error).message }, 'could not stop copying the client’s frames to the secondary'),
      );
    const t0 = monotonicMs();
    const turns0 = { ...this.merger.stats.aloneTurns };
    // Every connection turns primary-only, ALONE_STEP_MS of work at a time,
    // each step its own turn of the event loop: heartbeats, ARP answers and
    // packets go on between. Those the kernel merges go primary-only there
    // first, in batches (P's answers leave at once); those whose stolen
    // segments the kernel keeps are turned first; one whose segment of P's
    // reaches the queue before its step turns then (Merger.beginAlone).
    this.merger.beginAlone(this.path.setAlone(true));
    const step = () => {
      if (this.stopped) return;
      try {
        // Bounded by time, not by count: a connection with stolen segments to release
        // costs a dozen system calls, and at 100,000 connections 500 of those held the
        // loop over a second.
        const from = monotonicMs();
        let done = this.merger.goAlone(ALONE_SLICE);
        while (!done && monotonicMs() - from < ALONE_STEP_MS) done = this.merger.goAlone(ALONE_SLICE);
        if (!done) {
          setImmediate(step);
          return;
        }
      } catch (e) {
        this.internalError(e);
        setImmediate(step);
        return;
      }
      this.failoverSeconds = (monotonicMs() - t0) / 1000;
      void this.resetCongestionAlone();
      const turns = this.merger.stats.aloneTurns;
      this.log.warn(
        {
          role: 'alone',
          flushMs: monotonicMs() - t0,
          connections: this.merger.connections,
          releasedInKernelAtOnce: turns.inKernelAtOnce - turns0.inKernelAtOnce,
          turnedInSteps: turns.steps - turns0.steps,
          turnedAsNeeded: turns.asNeeded - turns0.asNeeded,
        },
        'secondary failed: continuing alone, connections keep their sequence offset',
      );
      this.act(this.roles.aloneDone());
    };
    this.onRoleChange('alone', 'the secondary failed');
    // Its own turn too: what came before (the prompts, the stash's list) may have taken a while.
    setImmediate(step);
  }

  metricsSnapshot(): MetricsSnapshot {
    const m = this.merger.stats;
    const q = this.merger.queued();
    const det = this.peer?.detector;
    const k = this.path.metrics(); // the programs' counters, read once
    return {
      role: this.alone ? 'alone' : 'primary',
      datapath: 'merge',
      peerUp: det?.peer === 'up',
      heartbeatRttSeconds: det?.stats.lastRttMs != null ? det.stats.lastRttMs / 1000 : null,
      heartbeatsReceived: det?.stats.received ?? 0,
      heartbeatsSent: det?.stats.sent ?? 0,
      heartbeatsRejected: { ...det?.stats.rejected },
      loopStalls: this.peer?.stalls ?? 0,
      failovers: this.failures,
      lastFailoverSeconds: this.failoverSeconds,
      connections: this.merger.phases(),
      divertedSegments: m.divertedSegments,
      divertedBytes: m.divertedBytes,
      merge: {
        // The bridge's releases and the kernel merge's.
        mergedSegments: m.releasedSegments + (k?.mergedP ?? 0) + (k?.mergedS ?? 0),
        mergedBytes: m.releasedBytes + (k?.mergedBytes ?? 0),
        queuedBytes: this.merger.buffered.stored,
        heldBytes: this.merger.buffered.held,
        heldSegments: q.heldSegments,
        divergences: m.divergences,
        secondarySilent: m.secondarySilent,
        aloneTurns: { ...m.aloneTurns },
        evicted: { closed: m.evictedClosed, 'half-open': m.evictedHalfOpen },
        prefixBytesTrimmed: m.prefixBytesTrimmed,
        halfOpenResets: m.halfOpenResets,
        kernelDigests: { compared: m.digestsCompared, differed: m.digestMismatches },
        retransmissions: {
          primary: m.retransmissions,
          secondary: m.secondaryRetransmissions,
          prefix: m.prefixReleases,
        },
        copies: { reused: this.merger.pool.stats.reused, new: this.merger.pool.stats.allocated },
        idleBufferBytes: this.merger.pool.idleBytes,
      },
      peerConfigMismatch: this.peer?.configMismatch ?? null,
      drops: {
        ...m.drops,
        'spoofed-diverted': this.stats.spoofedDiverted,
        'internal-error': this.stats.internalErrors,
      },
      nfqueue: { out: queueStatus(this.outQ), in: queueStatus(this.inQ) },
      pcapFrames: this.arp?.stats.frames ?? 0,
      pcapDropped: this.arp?.stats.dropped ?? 0,
      kernelInbound: k,
      mergeMode: this.path.merge,
      kernelMerged: m.kernelMerged,
      kernelHandovers: { ...m.kernelHandovers },
      kernelTakes: { ...m.kernelTakes },
      kernelReturns: m.kernelReturns,
      arp: this.presence?.stats,
      heartbeatRealtime: this.peer?.socketStats.realtime,
      silencesExcused: this.stats.silencesExcused,
    };
  }

  status() {
    return {
      role: this.alone ? ('alone' as const) : ('primary' as const),
      ...(stepOf(this.roles.state) ? { step: stepOf(this.roles.state) } : {}),
      inbound: this.path.inbound,
      ...(this.path.inboundUnavailable ? { inboundUnavailable: this.path.inboundUnavailable } : {}),
      merge: this.path.merge,
      ...(this.path.mergeUnavailable ? { mergeUnavailable: this.path.mergeUnavailable } : {}),
      /** Where new connections' handshakes are merged now: the kernel while merging with a live secondary on its kernel path. */
      handshakes: this.path.handshakes,
      peer: this.peer?.detector.peer,
      heartbeat: this.peer?.detector.stats,
      peerConfig: this.peer?.configCheck ?? null,
      decisions: this.peer?.detector.decisions.map((d) => ({ ...d, at: wallTimeOf(d.at) })),
      connections: this.merger.phases(),
      queued: this.merger.queued(),
      stuck: this.merger.stuck(),
      secondaryFailures: this.failures,
      secondaryRejoins: this.rejoins,
      switchover: switchRefusal(this.switchState()) ?? 'ready',
      merger: { ...this.merger.stats, copies: { ...this.merger.pool.stats, idleBytes: this.merger.pool.idleBytes } },
      queues: { out: this.outQ?.stats(), in: this.inQ?.stats() },
      kernelInbound: this.path.metrics(),
      lanMode: this.cfg.lan.mode,
      copyingToSecondary: this.path.copying,
      arp: this.presence?.stats,
      heartbeatSocket: this.peer?.socketStats,
      injector: this.injector?.stats,
      ...this.stats,
    };
  }

  /**
   * The data path is stuck (the liveness guard): silence at once — no more
   * heartbeats, no more ARP answers for the VIP — so the secondary takes
   * over. The rules stay (fail closed) for the next start to undo.
   */
  halt(): void {
    clearTimeout(this.excuseTimer);
    this.peer?.close();
    this.presence?.close();
    this.log.error({ status: this.status() }, 'final counters (halted)');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.act(this.roles.stop());
    this.shell.closeWatchers();
    this.reopenWatch?.stop();
    this.log.info({ status: this.status() }, 'final counters');
    if (this.timer) clearInterval(this.timer);
    if (this.noticeTimer) clearInterval(this.noticeTimer);
    clearTimeout(this.excuseTimer);
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.peer?.close();
    this.shell.close();
    this.presence?.close();
    this.arp?.close();
    // The kernel's programs first (the queue takes those segments again), then
    // the rules: from here on the kernel drops (fail closed) rather than queues.
    await this.path.beforeRulesDrop((which) => this.rules?.drop(which) ?? Promise.resolve());
    if (this.handedOver) {
      // A planned switchover: the other node's server carries on every
      // connection; this node's copies end. With the queues closed, the
      // rules drop (fail closed) their resets and whatever a client still
      // sends here, so nothing of ours reaches a client raw.
      this.outQ?.close();
      this.inQ?.close();
      await abortConnections(this.cfg, this.log, 'the other node serves them now (planned switchover)');
    }
    await this.rules?.remove();
    this.outQ?.close();
    this.inQ?.close();
    await this.injector?.drain(1000);
    this.injector?.close();
    await this.path.close();
    await this.state.undoAll();
    this.log.info({ role: 'primary' }, 'primary bridge stopped; rules and addresses removed');
  }
}

/** What `tcpfo status` shows of a primary (or a node alone). */
export type PrimaryStatus = ReturnType<PrimaryBridge['status']>;
