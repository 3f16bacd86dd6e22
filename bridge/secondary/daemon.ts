/**
 * The secondary bridge process: its role (node/role-machine.ts) — replicate,
 * take over, take the primary role — around one of its two data paths
 * (paths.ts: kernel or pcap).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { ipAddr, ipAddrToString, ipv4, mac, type ServiceAddresses } from '../../net/addr.js';
import { announcementFrames, claimCaptureFilter, claimProbeFrames, serviceClaimer } from '../vip-arp.js';
import { LanPresence } from '../io/presence.js';
import { warnUnlessRealtime } from '../io/realtime.js';
import { setupStall } from '../node/faults.js';
import { NodeShell } from '../node/shell.js';
import type { SocketKey } from '../io/sockets.js';
import { PeerLink, peerConfigOf, readKey, stallLogger } from '../detector/peer-link.js';
import { InboundXlate } from '../io/xlate.js';
import type { CongestionReset } from '../io/cc-reset.js';
import { ReopenWatch } from '../node/reopen-watch.js';
import {
  abortConnections,
  dropPrivileges,
  nodeCongestionReset,
  resetCongestion,
  journalOf,
  prepareNode,
  removeOtherRoleRules,
  startOrUndo,
} from '../node/setup.js';
import type { Decision } from '../detector/detector.js';
import type { MetricsSnapshot } from '../node/metrics.js';
import { afterReading, FrameCapture } from '../io/capture.js';
import { BRIDGE_MARK, Injector } from '../io/inject.js';
import { NodeState } from '../io/node-state.js';
import { queueStatus } from '../io/nfqueue.js';
import { kernelPathSupported, type KernelPathSpec } from '../io/kernel-path.js';
import { KernelDataPath, PcapDataPath, type PathContext, type SecondaryDataPath } from './paths.js';
import { PortMatcher } from '../../net/ports.js';
import { Diverter } from './diverter.js';
import { RoleMachine, stepOf, type RoleAction } from '../node/role-machine.js';
import { serviceAddresses, swapRoles, type Config } from '../../config/config.js';
import type { Logger } from '../log.js';
import type { NodeRole, PromotedBridge, RoleListener, StartPrimaryRole, SwitchResult } from '../node/roles.js';
import type { SwitchKind } from '../detector/heartbeat.js';
import { monotonicMs, wallTimeOf } from '../clock.js';

export type SecondaryRole = Extract<NodeRole, 'secondary' | 'active'>;

/** One step of a takeover, with its time since the detector's decision. */
export interface TimelineEntry {
  what: string;
  atMs: number;
}

/** The primary repeats its diverged list every 250 ms; an entry not repeated for this long is gone. */
const DIVERGED_FRESH_MS = 3000;

export class SecondaryBridge {
  readonly diverter: Diverter;
  readonly state: NodeState;
  /** The role, its changes decided by a pure state machine (node/role-machine.ts). */
  private readonly machine = new RoleMachine();
  get role(): SecondaryRole {
    return this.machine.state === 'secondary' ? 'secondary' : 'active';
  }
  /** When the detector declared the primary down (the takeover timeline's zero). */
  private roleTimer: NodeJS.Timeout | undefined;
  readonly timeline: TimelineEntry[] = [];
  private peer!: PeerLink;
  private arp!: FrameCapture;
  /** The event-loop watchdog; after a takeover, our ARP answers for the VIP (io/presence.ts). */
  private presence: LanPresence | undefined;
  /** Metrics, status, the liveness guard, the fault socket (node-shell.ts). */
  private readonly shell: NodeShell;
  /** Connections the primary reported as diverged, with when it last said so. */
  private readonly diverged = new Map<string, { key: SocketKey; at: number }>();
  private closedDiverged = 0;
  /** The primary role this node took after the other node rejoined as secondary. */
  private promoted: PromotedBridge | null = null;
  /** The primary role's programs, loaded at start for a promotion (preloadPrimaryPrograms). */
  private preloaded: InboundXlate | undefined;
  /** Starts the primary role (handed in by the daemon shell, its module loaded already). */
  private startPrimaryRole!: StartPrimaryRole;
  private takingOver: Promise<void> | null = null;
  private readonly vip: number;
  /** The service addresses it probes for, claims and announces (no IPv6 one yet: docs/ipv6.md). */
  private readonly vips: ServiceAddresses;
  private readonly myMac: Buffer;
  private garpTimers: NodeJS.Timeout[] = [];
  private failoverSeconds: number | null = null;
  /** The data path in use: chosen at start (config `datapath`, and what the kernel can do). */
  private path: SecondaryDataPath | undefined;
  get datapath(): 'kernel' | 'pcap' {
    return this.path?.name ?? 'pcap';
  }
  /** Why `auto` fell back to pcap (for status and the start log line). */
  private kernelPathUnavailable: string | undefined;
  private injector!: Injector;
  stopped = false;
  /** Run once this node serves alone (io/cc-reset.ts); null where the kernel cannot. */
  private ccReset: CongestionReset | null = null;
  /** While this node is the secondary: connections whose client's window reopened get a new congestion start. */
  private reopenWatch: ReopenWatch | null = null;

  private constructor(
    readonly cfg: Config,
    readonly log: Logger,
  ) {
    this.diverter = new Diverter({
      service: ipv4(cfg.service.address),
      self: ipv4(cfg.secondary.address),
      primary: ipv4(cfg.primary.address),
      ports: new PortMatcher(cfg.service.ports),
      mtu: cfg.lan.mtu,
      // The configuration lists both nodes' IPv6 addresses where the service has one.
      v6:
        cfg.service.address6 === null || cfg.secondary.address6 === null || cfg.primary.address6 === null
          ? null
          : {
              service: ipAddr(cfg.service.address6) as string,
              self: ipAddr(cfg.secondary.address6) as string,
              primary: ipAddr(cfg.primary.address6) as string,
            },
      primaryMac: cfg.primary.mac,
    });
    this.state = new NodeState(journalOf(cfg, 's'));
    this.shell = new NodeShell(cfg, 's', log, this);
    this.vip = ipv4(cfg.service.address);
    this.vips = serviceAddresses(cfg);
    this.myMac = mac(cfg.secondary.mac);
  }

  static async start(
    cfg: Config,
    log: Logger,
    opts: { onRoleChange?: RoleListener; startPrimaryRole: StartPrimaryRole; onHandedOver?: () => void; why?: string },
  ): Promise<SecondaryBridge> {
    const b = new SecondaryBridge(cfg, log);
    b.startedWhy = opts.why ?? 'started';
    b.onRoleChange = opts.onRoleChange ?? (() => {});
    b.startPrimaryRole = opts.startPrimaryRole;
    b.onHandedOver = opts.onHandedOver ?? (() => {});
    return startOrUndo(b, () => b.setup());
  }

  /** Why this bridge started, for the role hook: 'started', or the planned switchover or unstandby that made this node the secondary. */
  private startedWhy = 'started';
  /** Told when the primary role this node took (promoted) has handed the service back (a planned switchover). */
  private onHandedOver: () => void = () => {};
  /** The primary handed the service over (a planned switchover): the takeover under way is its. */
  private handover = false;
  /** A switchover this node asked the primary for: settled by the takeover, a refusal or a timeout. */
  private asked: { settle: (r: SwitchResult) => void; timer: NodeJS.Timeout } | null = null;

  /**
   * A planned switchover asked on this node (`tcpfo switchover`): as the
   * primary (roles swapped), hand over; as the secondary, ask the primary,
   * which checks and hands over to us, or says why not.
   */
  switchover(why: string): Promise<SwitchResult> {
    if (this.promoted) return this.promoted.switchover(why);
    if (this.stopped) return Promise.resolve({ ok: false, message: 'this node is stopping' });
    if (this.machine.state !== 'secondary')
      return Promise.resolve({
        ok: false,
        message: `this node serves ${this.machine.state === 'promoting' ? 'and is taking the primary role' : 'alone'}: there is no primary to take over from`,
      });
    if (this.peer.detector.peer !== 'up')
      return Promise.resolve({
        ok: false,
        message: 'the primary is down: nothing to switch over from (the detector takes over on its own)',
      });
    if (this.asked) return Promise.resolve({ ok: false, message: 'a switchover is already in progress' });
    const waitMs = Math.max(3000, 6 * this.cfg.heartbeat.timeout_ms);
    this.log.warn({ asked: why }, 'switchover: asking the primary to hand the service address over');
    return new Promise<SwitchResult>((resolve) => {
      const settle = (r: SwitchResult) => {
        if (!this.asked) return;
        clearTimeout(this.asked.timer);
        this.asked = null;
        resolve(r);
      };
      const timer = setTimeout(
        () => settle({ ok: false, message: `the primary did not hand over within ${waitMs} ms` }),
        waitMs,
      );
      this.asked = { settle, timer };
      this.peer.sendSwitch('request');
    });
  }

  /** A switchover message from the primary. */
  private onSwitch(kind: SwitchKind, reason: string): void {
    if (kind === 'handover') {
      if (this.handover || this.machine.state !== 'secondary') {
        // Repeated (the primary sends it a few times), or we serve already.
        if (!this.handover) this.peer.sendSwitch('refused', `the secondary is ${this.machine.state}`);
        return;
      }
      this.handover = true;
      this.log.warn('switchover: the primary handed the service address over: taking over');
      this.act(this.machine.handedOver(monotonicMs()));
    } else if (kind === 'refused') {
      this.log.warn({ why: reason }, 'switchover refused by the primary');
      this.asked?.settle({ ok: false, message: `the primary refused: ${reason}` });
    }
  }

  /** Whether this node plays the primary role now (promoted after the other node rejoined as its secondary). */
  get promotedPrimary(): boolean {
    return this.promoted !== null;
  }

  /** Since when the pair has been in sync from here (the primary up, this node its secondary); null: not now. */
  inSyncSince(): number | null {
    const det = this.peer?.detector;
    if (this.stopped || this.machine.state !== 'secondary' || det?.peer !== 'up' || det.peerRole !== 'primary')
      return null;
    const last = det.decisions.at(-1);
    return last?.peer === 'up' ? last.at : null;
  }

  /** Told of each role change (the daemon's hook); handed to the primary role if this node takes it. */
  private onRoleChange: RoleListener = () => {};

  /** A reloaded configuration (SIGHUP): the liveness guard's bound, and the primary role's if this node plays it. */
  reload(cfg: Config): void {
    this.shell.setQueueStallMs(cfg.liveness.queue_stall_ms);
    this.promoted?.reload(swapRoles(cfg));
  }

  private async setup(): Promise<void> {
    const cfg = this.cfg;
    // The VIP dormant on lo: S's TCP sees the client's real destination, and
    // a takeover only has to announce it.
    await prepareNode(this.state, cfg, cfg.secondary.interface, this.log, 's', true);
    // §3.1: the interface runs promiscuous (explicit, so it is undone and visible in `ip link`).
    await this.state.setPromisc(cfg.secondary.interface, true);
    this.injector = new Injector(BRIDGE_MARK, 64, 1 << 16);
    this.path = await this.chooseDatapath();
    await this.path.install();
    // Whatever this node's TCP still has on the service address belongs to a
    // previous instance (whose servers were killed, or whose connections the
    // primary stopped replicating when it lost us): it must never answer a
    // client. The RSTs are diverted; the primary degrades any of them it
    // still merged (we restarted faster than its detector noticed).
    await abortConnections(cfg, this.log, 'left by a previous instance');
    await removeOtherRoleRules(cfg, 's', this.log);
    // ARP on the LAN: replies to our split-brain probes now, our answers for
    // the VIP after a takeover.
    this.arp = new FrameCapture(cfg.secondary.interface, claimCaptureFilter(this.vips), (f) => this.onArp(f), 1 << 20);
    // The watchdog of our event loop now; our ARP answers for the VIP after a takeover.
    this.presence = new LanPresence(
      cfg.secondary.interface,
      this.vips,
      this.myMac,
      cfg.liveness.loop_stall_ms,
      this.log.bindings().name ?? 'tcpfo',
    );
    warnUnlessRealtime(this.log, 'arp', this.presence.stats.realtime);
    setupStall();
    this.peer = await this.openPeer();
    const path = this.path;
    await this.shell.open(path.probes(), () => path.deafen());
    this.preloadPrimaryPrograms();
    this.ccReset = nodeCongestionReset(cfg, this.log);
    if (this.ccReset)
      this.reopenWatch = new ReopenWatch(
        this.ccReset,
        () => this.role === 'secondary' && !this.stopped,
        this.log,
      ).start();
    dropPrivileges(cfg, this.log);
    this.presence?.arm();
    this.log.info(
      {
        role: 'secondary',
        datapath: this.datapath,
        ...(this.kernelPathUnavailable ? { kernelPathUnavailable: this.kernelPathUnavailable } : {}),
        service: cfg.service.address,
        interface: cfg.secondary.interface,
        ...(path instanceof PcapDataPath ? path.rulesInfo : {}),
      },
      this.datapath === 'kernel'
        ? 'secondary bridge up: kernel data path (ingress rewrite, divert by route)'
        : 'secondary bridge up: capturing and diverting',
    );
    this.onRoleChange('secondary', this.startedWhy);
  }

  private kernelPathSpec(): KernelPathSpec {
    const cfg = this.cfg;
    return {
      tag: `${cfg.instance}s`,
      lanInterface: cfg.secondary.interface,
      vip: this.vip,
      ports: cfg.service.ports,
      primaryMac: cfg.primary.mac,
      selfMac: cfg.secondary.mac,
      primaryAddress: ipv4(cfg.primary.address),
      // S's IPv6 answers are routed to the primary's own IPv6 address (config: required with an IPv6 service address).
      v6:
        this.vips.v6 === null || cfg.primary.address6 === null
          ? null
          : { vip: this.vips.v6, primaryAddress: ipAddr(cfg.primary.address6) as string },
    };
  }

  /** `datapath: auto` takes the kernel path where this kernel can carry it (checked by nft against the kernel). */
  private async chooseDatapath(): Promise<SecondaryDataPath> {
    const x: PathContext = { cfg: this.cfg, log: this.log, injector: this.injector, diverter: this.diverter };
    const want = this.cfg.datapath;
    if (want === 'pcap') return new PcapDataPath(x);
    const spec = this.kernelPathSpec();
    const probe = await kernelPathSupported(spec);
    if (probe.ok) return new KernelDataPath(x, spec);
    if (want === 'kernel') throw new Error(`datapath: kernel, but this kernel cannot carry it: ${probe.why}`);
    if (this.vips.v6 !== null)
      throw new Error(
        `the kernel data path is not available here (${probe.why}), and the pcap path carries IPv4 only: the IPv6 service address cannot be served`,
      );
    this.kernelPathUnavailable = probe.why;
    this.log.warn({ why: probe.why }, 'the kernel data path is not available here: using datapath pcap');
    return new PcapDataPath(x);
  }

  private openPeer(role: 'secondary' | 'alone' = 'secondary'): Promise<PeerLink> {
    const cfg = this.cfg;
    return PeerLink.open({
      self: cfg.secondary.address,
      peer: cfg.primary.address,
      port: cfg.heartbeat.port,
      key: readKey(cfg.heartbeat.key_file),
      intervalMs: cfg.heartbeat.interval_ms,
      planAheadMs: cfg.liveness.loop_stall_ms,
      startupGraceMs: cfg.heartbeat.startup_grace_ms,
      timeoutMs: cfg.heartbeat.timeout_ms,
      role,
      // 'alone': the primary serving without us (we were restarted); we rejoin.
      // 'secondary': the other node, restarted after our takeover, joined
      // as our secondary (roles swapped): we become the merging primary.
      peerRoles: ['primary', 'alone', 'secondary'],
      onDecision: (d) => this.onDecision(d),
      onSwitch: (kind, reason) => this.onSwitch(kind, reason),
      config: peerConfigOf(cfg),
      log: this.log,
      onStall: stallLogger(this.log, cfg.heartbeat.timeout_ms),
      onNotice: (keys) => {
        const now = monotonicMs();
        for (const k of keys)
          this.diverged.set(`${k.client}:${k.clientPort}:${k.servicePort}`, {
            key: { client: k.client, clientPort: k.clientPort, servicePort: k.servicePort },
            at: now,
          });
        // An entry the primary stopped repeating is over (the connection ended).
        for (const [id, d] of this.diverged) if (now - d.at >= DIVERGED_FRESH_MS) this.diverged.delete(id);
      },
    });
  }

  /** Which wait of the role machine's is the current one (act's `later`). */
  private roleTimerGen = 0;

  /** Announces the service at this node's MAC (gratuitous ARP; a neighbour advertisement for IPv6). */
  private announce(): void {
    for (const f of announcementFrames(this.myMac, this.vips)) this.arp.send(f);
  }

  private onArp(frame: Buffer): void {
    // Someone (the primary's bridge) still claims the VIP.
    if (serviceClaimer(frame, this.vips, this.cfg.secondary.mac)) this.machine.vipClaimed(monotonicMs());
  }

  private onDecision(d: Decision): void {
    this.log.warn({ peer: d.peer, silentMs: d.silentMs, reason: d.reason, role: this.role }, `primary is ${d.peer}`);
    this.act(this.machine.decision(d.peer, this.peer.detector.peerRole, monotonicMs(), d.at));
  }

  /**
   * Executes the role machine's actions. §5 with the split-brain guard:
   * before taking over, the LAN is asked whether the VIP still answers (an
   * ARP probe, RFC 5227). A live primary bridge answers, so a partition of
   * the heartbeat path alone never makes two nodes serve the VIP; the probe
   * repeats while the primary stays silent.
   */
  private act(actions: RoleAction[]): void {
    const later = (ms: number) => {
      clearTimeout(this.roleTimer);
      // The probe's answer may be in already, unread, after a held event
      // loop: the decision waits for that turn's I/O and the ARP frames read
      // by then (afterReading), so a live primary's answer is not missed.
      const gen = ++this.roleTimerGen;
      this.roleTimer = afterReading(ms, this.arp, () => {
        // Not if another wait began meanwhile (a new probe): this one is over.
        if (gen !== this.roleTimerGen || this.stopped) return;
        this.act(this.machine.timer(monotonicMs()));
      });
    };
    for (const a of actions) {
      switch (a.do) {
        case 'probe':
          this.probe(a.waitMs, later);
          break;
        case 'wait':
          if (a.log)
            this.log.warn(
              { service: this.cfg.service.address },
              'primary silent but the service address still answers ARP: not taking over (heartbeat path partitioned, or the primary starved?)',
            );
          later(a.waitMs);
          break;
        case 'take-over':
          this.mark('split-brain probe: VIP unclaimed', this.machine.decidedAt);
          this.log.info(
            { sinceDecisionMs: monotonicMs() - this.machine.decidedAt, handover: this.handover },
            this.handover
              ? 'handed over and the service address unclaimed: taking over'
              : 'primary down and the service address unclaimed: taking over',
          );
          this.takingOver = this.takeover(this.machine.decidedAt);
          break;
        case 'refuse-handover':
          this.handover = false;
          this.log.error(
            { service: this.cfg.service.address },
            'switchover: the service address still answers ARP: not taking over',
          );
          this.peer.sendSwitch('refused', 'the service address still answered ARP when the secondary probed it');
          break;
        case 'promote':
          void this.promote();
          break;
        case 'log-both-secondary':
          this.log.error('the peer calls itself secondary too: check that one node runs `tcpfo primary`');
          break;
      }
    }
  }

  /**
   * Sends the split-brain probe, then gives the VIP's holder `waitMs` to
   * answer. A probe that did not leave (the device's queue full under a
   * burst) is sent again 5 ms later, and the wait starts only once it is out:
   * silence after a probe never sent is no evidence, and taking the VIP on it
   * could make two nodes serve it.
   */
  private probe(waitMs: number, later: (ms: number) => void): void {
    clearTimeout(this.roleTimer);
    this.roleTimerGen++;
    if (this.stopped) return;
    if (claimProbeFrames(this.myMac, this.vips).every((f) => this.arp.send(f))) {
      later(waitMs);
      return;
    }
    if (this.arp.stats.sendErrors === 1 || this.arp.stats.sendErrors % 200 === 0) {
      this.log.warn(
        { errors: this.arp.stats.sendErrors, err: this.arp.stats.lastSendError },
        'could not send the split-brain probe: sending it again',
      );
    }
    this.roleTimer = setTimeout(() => this.probe(waitMs, later), 5);
  }

  /**
   * Takes over the service (§5): stop diverting (S's TCP now talks to the
   * clients itself, already in the sequence space they know), stop capturing
   * and leave promiscuous mode, then claim the VIP on the LAN with gratuitous
   * ARPs, repeated as keepalived does. The VIP is already on `lo`: no
   * connection needs any translation from here on.
   */
  private async takeover(decidedAt: number): Promise<void> {
    this.peer.role = 'alone';
    // The fast path first: out of the packet path, then claim the VIP. The
    // rest of the path stays until the ARP is out (paths.ts, detach).
    await this.path?.stopDiverting();
    this.mark('stopped diverting', decidedAt);
    const garp = () => this.announce();
    this.presence?.answer(true);
    garp();
    this.mark('gratuitous ARP sent', decidedAt);
    if (this.handover) {
      // The primary waits for this word to become our secondary (repeated: a datagram can be lost).
      for (const ms of [0, 20, 100]) this.garpTimers.push(setTimeout(() => this.peer.sendSwitch('taken'), ms));
    }
    for (const ms of [20, 100, 500, 1000]) this.garpTimers.push(setTimeout(garp, ms));
    if (this.path) this.closedDiverged = await this.path.prompt(this.freshDiverged(), (w) => this.mark(w, decidedAt));
    const reset = await resetCongestion(this.ccReset, this.log);
    if (reset) this.mark(reset, decidedAt);
    // The rest is housekeeping.
    await this.path?.detach();
    await this.state.setPromisc(this.cfg.secondary.interface, false);
    this.shell.stopGuard();
    this.path?.release();
    this.mark('promiscuous mode off, rules removed', decidedAt);
    this.failoverSeconds = (monotonicMs() - decidedAt) / 1000;
    this.log.warn(
      { role: 'active', datapath: this.datapath, timeline: this.timeline, handover: this.handover },
      'took over the service address: serving alone',
    );
    this.onRoleChange(
      'active',
      this.handover
        ? 'took over the service address: planned switchover'
        : 'took over the service address from the primary',
    );
    this.asked?.settle({
      ok: true,
      message: `this node (${this.cfg.secondary.address}) serves the service address now; the other node becomes its secondary`,
    });
  }

  /**
   * The other node, restarted after our takeover, runs as our secondary:
   * become the merging primary for new connections (roles swapped). Our own
   * connections pass unchanged for the rest of their lives. The active-mode
   * I/O (heartbeats, ARP answers, metrics, status) is handed to a
   * PrimaryBridge on the swapped configuration; our node state (the VIP on
   * `lo`, sysctls) stays ours and is undone when we stop.
   */
  private async promote(): Promise<void> {
    const t0 = monotonicMs();
    // How long our event loop stalls meanwhile (heartbeats and ARP answers wait for it).
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    this.log.warn(
      { peer: this.cfg.primary.address },
      'the other node rejoined as secondary: taking the primary role for new connections',
    );
    // The heartbeat link is handed over, not closed: a pause in our
    // heartbeats would make the other node probe for the VIP mid-handover.
    this.shell.closeFront();
    for (const t of this.garpTimers) clearTimeout(t);
    // Our ARP answers for the VIP go on until the primary bridge answers
    // (its start-up probe ignores our own MAC): meanwhile the other node,
    // missing heartbeats, probes — and must find the VIP taken.
    try {
      const xlate = this.preloaded;
      this.preloaded = undefined; // the primary bridge's now, whether it starts or not
      this.promoted = await this.startPrimaryRole(swapRoles(this.cfg), this.log, {
        adoptExisting: true,
        peer: this.peer,
        onRoleChange: this.onRoleChange,
        xlate,
        onHandedOver: this.onHandedOver,
      });
      // The primary bridge answers ARP (and watches the event loop) now.
      this.presence?.close();
      this.arp.close();
      this.machine.promoted(true, monotonicMs());
      this.log.warn(
        { ms: monotonicMs() - t0, maxLoopStallMs: Math.round(lag.max / 1e6) },
        'now the primary (roles swapped): merging new connections',
      );
    } catch (e) {
      // Back to serving alone: heartbeats, metrics, status (ARP answers never stopped).
      this.machine.promoted(false, monotonicMs());
      this.log.error(
        { err: (e as Error).message },
        'could not take the primary role: serving alone again (retried in 10 s)',
      );
      await this.reopenActive();
    } finally {
      lag.disable();
    }
  }

  private async reopenActive(): Promise<void> {
    this.announce();
    this.peer = await this.openPeer('alone');
    await this.shell.openFront();
  }

  private mark(what: string, since: number): void {
    this.timeline.push({ what, atMs: monotonicMs() - since });
  }

  metricsSnapshot(): MetricsSnapshot {
    const det = this.peer?.detector;
    // What only the pcap path counts (the diverter, the queue, the capture): absent on the kernel path, not 0.
    const pcap = this.path instanceof PcapDataPath ? this.path : undefined;
    const d = this.diverter.stats;
    return {
      role: this.role,
      datapath: this.datapath,
      peerUp: det?.peer === 'up',
      heartbeatRttSeconds: det?.stats.lastRttMs != null ? det.stats.lastRttMs / 1000 : null,
      heartbeatsReceived: det?.stats.received ?? 0,
      heartbeatsSent: det?.stats.sent ?? 0,
      heartbeatsRejected: { ...det?.stats.rejected },
      loopStalls: this.peer?.stalls ?? 0,
      failovers: this.role === 'active' && !this.handover ? 1 : 0,
      lastFailoverSeconds: this.failoverSeconds,
      connections: pcap ? { tracked: this.diverter.trackedConnections } : {},
      ...(pcap ? { divertedSegments: d.diverted, divertedBytes: d.divertedBytes, injectedFrames: d.injected } : {}),
      peerConfigMismatch: this.peer?.configMismatch ?? null,
      drops: {
        // Segments S's rules should never queue but the diverter refused: dropped, fail closed.
        ...(pcap
          ? {
              'divert-malformed': d.skipped.malformed,
              'divert-no-option-room': d.skipped['no-option-room'],
              'bad-checksum': d.skipped['bad-checksum'] + d.badChecksum,
              'internal-error': pcap.errors.internal,
            }
          : {}),
        'injector-full': this.injector?.stats.dropped ?? 0,
      },
      nfqueue: pcap ? { divert: queueStatus(pcap.queue) } : {},
      ...(pcap?.capture ? { pcapFrames: pcap.capture.stats.frames, pcapDropped: pcap.capture.stats.dropped } : {}),
      arp: this.presence?.stats,
      heartbeatRealtime: this.peer?.socketStats.realtime,
    };
  }

  status() {
    const diverged = this.freshDiverged();
    return {
      role: this.role,
      ...(stepOf(this.machine.state) ? { step: stepOf(this.machine.state) } : {}),
      datapath: this.datapath,
      ...(this.kernelPathUnavailable ? { kernelPathUnavailable: this.kernelPathUnavailable } : {}),
      peer: this.peer?.detector.peer,
      heartbeat: this.peer?.detector.stats,
      peerConfig: this.peer?.configCheck ?? null,
      decisions: this.peer?.detector.decisions.map((d) => ({ ...d, at: wallTimeOf(d.at) })),
      timeline: this.timeline,
      diverter: this.diverter.stats,
      queue: this.path?.queue?.stats(),
      capture: this.path?.capture?.stats,
      injector: this.injector?.stats,
      verdictErrors: this.path?.errors.verdict ?? 0,
      divergedReported: diverged.length,
      // Connections this node would reset, not continue, if it took over now (the first 50).
      diverged: diverged.slice(0, 50).map((k) => `${ipAddrToString(k.client)}:${k.clientPort} > :${k.servicePort}`),
      divergedClosed: this.closedDiverged,
      arp: this.presence?.stats,
      heartbeatSocket: this.peer?.socketStats,
      noticesRejected: this.peer?.noticesRejected ?? 0,
    };
  }

  /**
   * The primary role's kernel programs, loaded now while this process has
   * every capability, for a promotion to attach (the verifier of kernels
   * before 6.14 refuses them with the capabilities the bridge keeps). Where
   * they cannot be loaded, a promotion tries again, and with `auto` falls
   * back to the queue.
   */
  private preloadPrimaryPrograms(): void {
    if (this.cfg.inbound === 'queue') return;
    try {
      this.preloaded = InboundXlate.preload(this.cfg.limits.max_connections);
    } catch (e) {
      this.log.warn(
        { why: (e as Error).message },
        'the primary role’s kernel programs could not be loaded at start: a promotion loads them then',
      );
    }
  }

  /** The connections the primary lists as diverged (it repeats the list every 250 ms). */
  private freshDiverged(): SocketKey[] {
    const now = monotonicMs();
    return [...this.diverged.values()].filter((d) => now - d.at < DIVERGED_FRESH_MS).map((d) => d.key);
  }

  /** The data path is stuck (the liveness guard): no more heartbeats or ARP answers; the rules stay (fail closed). */
  halt(): void {
    this.promoted?.halt();
    this.peer?.close();
    this.presence?.close();
    this.log.error({ status: this.status() }, 'final counters (halted)');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.machine.stop();
    this.reopenWatch?.stop();
    clearTimeout(this.roleTimer);
    this.asked?.settle({ ok: false, message: 'this node is stopping' });
    this.shell.closeWatchers();
    // A takeover in flight finishes first: its rule removal must not be cut short.
    await this.takingOver?.catch(() => undefined);
    // Having taken the primary role, that bridge goes first (its rules, its journal).
    await this.promoted?.stop();
    // Still the secondary: our copies cannot be continued by anyone once we
    // are gone, and without our rules they would talk to clients directly.
    // Aborted while the rules divert their RSTs to the primary, which goes on
    // alone with each at once.
    if (
      this.role === 'secondary' &&
      this.path?.installed &&
      (await abortConnections(this.cfg, this.log, 'the secondary is stopping'))
    ) {
      await new Promise((r) => setTimeout(r, 100)); // the RSTs leave through our queue
    }
    this.log.info({ status: this.status() }, 'final counters');
    this.preloaded?.close();
    this.preloaded = undefined;
    this.peer?.close();
    this.shell.close();
    for (const t of this.garpTimers) clearTimeout(t);
    this.presence?.close();
    this.arp?.close();
    await this.path?.close();
    await this.injector?.drain(1000);
    this.injector?.close();
    await this.state.undoAll();
    this.log.info({ role: 'secondary' }, 'secondary bridge stopped; rules, promiscuous mode and addresses undone');
  }
}

/** What `tcpfo status` shows of a secondary (or a secondary that took over). */
export type SecondaryStatus = ReturnType<SecondaryBridge['status']>;
