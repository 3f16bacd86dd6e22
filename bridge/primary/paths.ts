/**
 * The primary's two data paths (config `inbound` and `merge`), behind one
 * interface the bridge (daemon.ts) drives the same way: attached before its
 * queue rules go in, told of every segment of P's the output queue hands it,
 * of each role change, and closed before the rules go at a stop.
 *
 *   queue    every segment — P's, S's copies, the client's — crosses the
 *            bridge's queues and the merger decides each (the paper's way).
 *   kernel   the tc programs (io/xlate.ts) translate the client's common
 *            segments; with `merge: release` they release P's segments of
 *            primary-only connections, with `merge: kernel` they also merge
 *            the common case of replicated ones and their handshakes, behind
 *            a netfilter match that lets those segments skip the output
 *            queue. What they leave goes through the queues as before, and
 *            order.ts keeps each client's answers in order across the two.
 *            With `auto`, a kernel that refuses a part leaves that part to
 *            the queue, and says why.
 *
 * Either way the merger keeps the connections' state: the path moves
 * packets, and hands the kernel's decisions to the merger (hear).
 */
import { mac } from '../../net/addr.js';
import type { Config } from '../../config/config.js';
import { IP_DST } from '../wire/ipv4.js';
import { ipVersion } from '../wire/ip.js';
import { Injector } from '../io/inject.js';
import { SKB_GSO, type PacketBatch, type PacketQueue } from '../io/nfqueue.js';
import type { Rule } from '../io/rules.js';
import { copiesAny, installCopy, removeCopy, type CopySpec } from '../io/switch-copy.js';
import { InboundXlate, kernelDigest, matchPinPath, orderPinPath } from '../io/xlate.js';
import type { NodeState } from '../io/node-state.js';
import type { MetricsSnapshot } from '../node/metrics.js';
import type { Logger } from '../log.js';
import { monotonicMs } from '../clock.js';
import type { Merger } from './merger.js';
import { clearLoneDsack } from './merge/dsack.js';
import type { ChecksumState, InboundOffload, OffloadKey } from './merge/types.js';
import { AnswerOrder, ORDER_WAIT_MARK } from './order.js';
import { serverSynAgain, synAgain } from './prompts.js';

/**
 * P's SYN-ACKs held longer than this when the secondary fails are not
 * prompted: P's timer sent them again already (1 s, then 3 s), or their
 * request is gone.
 */
const HELD_HANDSHAKE_MAX_AGE_MS = 3000;

/** The counters a path keeps, in the bridge's status (PrimaryStats). */
export interface PathStats {
  verdictErrors: number;
  /** Connections the kernel translation's map had no room for (the queue translates them). */
  xlateMapFull: number;
  /** Connections whose P segments were handed to the kernel's release (merge: kernel). */
  releasedInKernel: number;
  /** P's segments the kernel would release, set aside in the queue behind an earlier answer of their client (order.ts). */
  orderWaited: number;
  /** P's D-SACK ACKs given back to the kernel with the block cleared (merge/dsack.ts). */
  dsackCleared: number;
  /** P's segments that reached the queue and went back to the kernel's release (unmarked verdict). */
  returnedToKernel: number;
  /** Client slots whose order count was set to the kernel's (segments the queue never delivered). */
  orderResyncs: number;
  /** Handshakes whose SYN-ACK the kernel held for S's when S failed: P's TCP prompted to send it again. */
  handshakesPrompted: number;
}

/** What a data path needs of its bridge. */
export interface PrimaryPathContext {
  readonly cfg: Config;
  readonly log: Logger;
  /** The service address. */
  readonly vip: number;
  readonly myMac: Buffer;
  readonly state: NodeState;
  /** The bridge's counters, which the path's share. */
  readonly stats: PathStats;
  merger(): Merger;
  /** The output queue (P's segments), once open. */
  outQ(): PacketQueue;
  /** The raw socket, with the bridge's mark. */
  injector(): Injector;
  /** Whether the secondary failed and has not rejoined; whether the bridge is stopping. */
  alone(): boolean;
  stopped(): boolean;
  /** A bug on a packet: counted and logged, the packet dropped. */
  internalError(e: unknown): void;
}

export interface PrimaryDataPath {
  /** Where the client's segments are translated. */
  readonly inbound: 'kernel' | 'queue';
  /** Where P's segments are released (config `merge`, as the kernel allowed it). */
  readonly merge: 'kernel' | 'release' | 'queue';
  /** Why the kernel could not take its part (`auto`), for the status and the start log. */
  readonly inboundUnavailable: string | undefined;
  readonly mergeUnavailable: string | undefined;
  /** Where new connections' handshakes are merged now. */
  readonly handshakes: 'kernel' | 'bridge';
  /** The client's frames are being copied to the secondary (lan.mode: switch). */
  readonly copying: boolean;
  /** The kernel's share of the merger's connections (the merger calls it). */
  readonly offload: InboundOffload;
  /** Attaches the path's programs, before the queue rules go in. */
  attach(): Promise<void>;
  /**
   * The rules before the queue's, and the iptables backend they need; when
   * they cannot be installed (`refused`), the queue does their part.
   */
  matchRules(): { rules: Rule[]; backend: 'iptables-nft' } | null;
  matchRefused(why: string): void;
  /** The rules are in: the path's start-log fields. */
  started(): Record<string, unknown>;
  /** P's segment `i` of the output queue's batch `b`. */
  output(b: PacketBatch, i: number): void;
  /** Packet `id` of the output queue is about to get its verdict / got it. */
  verdict(id: number): void;
  decided(id: number): void;
  /** A copy of S's reached the input queue: by its kernel path (source the service address) or its pcap path. */
  secondaryCopy(kernelPath: boolean): void;
  /** What the kernel decided (handshakes merged, closes), into the merger: before each batch and each poll. */
  hear(): void;
  /** Whether the kernel merges new handshakes, from the bridge's role and where S's copies come by. */
  updateHandshakes(): void;
  /** The secondary failed (on) or rejoined; on failure, the connections to turn first. */
  setAlone(on: boolean): OffloadKey[];
  /** The secondary failed: what the kernel held for it goes out now. */
  promptHeld(): void;
  /** How long since the kernel last saw a segment of the secondary's, ms; null if it cannot tell. */
  secondarySilentMs(): number | null;
  startCopies(): Promise<void>;
  stopCopies(): Promise<void>;
  /** Once a second. */
  everySecond(): void;
  /** A reloaded configuration (SIGHUP): what the path cannot follow without a restart, logged. */
  reload(cfg: Config): void;
  /** The kernel's counters for metrics and status (undefined: the queue path). */
  metrics(): MetricsSnapshot['kernelInbound'];
  /** The stop, first step: the match goes, so no segment of P's skips the queue any more. */
  beforeRulesDrop(drop: (which: (r: Rule) => boolean) => Promise<void>): Promise<void>;
  /** The stop: the programs detach (the queue takes their segments again), and the sockets close. */
  close(): Promise<void>;
}

/** What a path may do through the queue alone: every segment to the merger. */
function queueOffload(): InboundOffload {
  return {
    add: () => {},
    primaryOnly: () => false,
    mergeStart: () => false,
    mergeTake: () => null,
    remove: () => {},
    seen: () => null,
  };
}

/** The paper's path: the queues carry everything, the merger decides everything. */
export class QueuePath implements PrimaryDataPath {
  readonly inbound = 'queue';
  readonly merge = 'queue';
  readonly inboundUnavailable = undefined;
  readonly mergeUnavailable = undefined;
  readonly handshakes = 'bridge';
  readonly offload = queueOffload();
  copying = false;

  constructor(private readonly x: PrimaryPathContext) {}

  async attach(): Promise<void> {}
  matchRules(): null {
    return null;
  }
  matchRefused(): void {}
  started(): Record<string, unknown> {
    return {};
  }
  output(b: PacketBatch, i: number): void {
    this.x
      .merger()
      .fromPrimary(b.id(i), b.packet(i), (b.skbInfo(i) & SKB_GSO) !== 0, monotonicMs(), b.checksumState(i));
  }
  verdict(): void {}
  decided(): void {}
  secondaryCopy(): void {}
  hear(): void {}
  updateHandshakes(): void {}
  setAlone(): OffloadKey[] {
    return [];
  }
  promptHeld(): void {}
  secondarySilentMs(): null {
    return null;
  }
  async startCopies(): Promise<void> {
    if (this.x.cfg.lan.mode !== 'switch') return;
    await installCopy(copySpec(this.x, false));
    this.copying = true;
  }
  async stopCopies(): Promise<void> {
    if (!this.copying) return;
    this.copying = false;
    await removeCopy(copySpec(this.x, false).tag);
  }
  everySecond(): void {}
  reload(): void {}
  metrics(): undefined {
    return undefined;
  }
  async beforeRulesDrop(): Promise<void> {}
  async close(): Promise<void> {}
}

/** The switch copy in an nft table: every family's frames, or (`programCopies4`) IPv6's alone. */
function copySpec(x: PrimaryPathContext, programCopies4: boolean): CopySpec {
  return {
    tag: `${x.cfg.instance}p`,
    lanInterface: x.cfg.primary.interface,
    vip: programCopies4 ? null : x.vip,
    vip6: x.cfg.service.address6,
    ports: x.cfg.service.ports,
    selfMac: x.cfg.primary.mac,
    secondaryMac: x.cfg.secondary.mac,
  };
}

/** P's segment set aside in the output queue until its turn (order.ts). */
interface HeldOutput {
  id: number;
  pkt: Buffer;
  gso: boolean;
  csum: ChecksumState;
  mark: number;
}

/** The tc programs (io/xlate.ts) with the queues for what they leave. */
export class KernelPath implements PrimaryDataPath {
  inbound: 'kernel' | 'queue' = 'queue';
  merge: 'kernel' | 'release' | 'queue' = 'queue';
  inboundUnavailable: string | undefined;
  mergeUnavailable: string | undefined;
  copying = false;
  /** Whether startCopies put in the nft copy table (what the program does not copy). */
  private copyTable = false;
  readonly offload: InboundOffload;
  /** The programs, once attached. */
  private xlate: InboundXlate | undefined;
  /** Entries of the kernel translation's map: fixed when the program is loaded. */
  private capacity = 0;
  /** Sends without the bridge's mark, into P's output queue as P's TCP would (a held SYN sent again): opened when first needed. */
  private unmarked: Injector | undefined;
  /** The secondary's latest copy came by the kernel path (source the service address), not the pcap path. */
  private sKernelPath = false;
  private handshakesInKernel = false;
  /**
   * The order of each client's answers across the two paths (order.ts),
   * whenever the kernel releases any of P's segments (merge: kernel or
   * release); the kernel's counts as last read (resync).
   */
  private order: AnswerOrder<HeldOutput> | undefined;
  private orderQueuedLast: Uint32Array | null = null;
  private orderFlushing = false;
  /** A segment waits its turn at most the order's maxWaitMs: a timer for the longest-waiting one. */
  private orderTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly x: PrimaryPathContext,
    /** Programs the secondary loaded at its start (a promotion attaches them). */
    private preloaded?: InboundXlate,
  ) {
    const s = x.stats;
    this.offload = {
      add: (c, dseq, dts, ts, wscale) => {
        if (this.xlate && !this.xlate.add(c, dseq, dts, ts, wscale)) s.xlateMapFull++;
      },
      primaryOnly: (c, dseq, dts, ts, wsP, wsS) => {
        if (this.merge === 'queue' || !this.xlate) return false;
        if (this.xlate.primaryOnly(c, dseq, dts, ts, wsP, wsS)) {
          s.releasedInKernel++;
          return true;
        }
        s.xlateMapFull++;
        return false;
      },
      primaryOnlyMany: (list) => {
        if (this.merge === 'queue' || !this.xlate) return 0;
        const n = this.xlate.primaryOnlyMany(list);
        s.releasedInKernel += n;
        s.xlateMapFull += list.length - n;
        return n;
      },
      // The merge in the kernel: only while S's copies come by the kernel path
      // (source the service address), which the programs see; on the pcap
      // path they reach only the queue.
      mergeStart: (c, init) => this.merging() && this.xlate!.mergeStart(c, init),
      mergeResume: (c, init) => this.merging() && this.xlate!.mergeResume(c, init),
      mergeTake: (c) => this.xlate?.mergeTake(c) ?? null,
      remove: (c) => this.xlate?.remove(c),
      seen: (c) => this.xlate?.seen(c) ?? null,
      digest: kernelDigest,
    };
  }

  private merging(): boolean {
    return this.merge === 'kernel' && this.sKernelPath && this.xlate !== undefined;
  }

  get handshakes(): 'kernel' | 'bridge' {
    return this.handshakesInKernel ? 'kernel' : 'bridge';
  }

  /**
   * The kernel translation of client segments (config `inbound`), behind the
   * queue rules: until a connection is in its map, its segments go to the
   * queue as before. With `auto`, a kernel that refuses the program leaves
   * the queue doing it all.
   */
  async attach(): Promise<void> {
    const { cfg, log } = this.x;
    const dev = cfg.primary.interface;
    try {
      await this.x.state.addClsact(dev);
      this.xlate = this.open(dev);
      this.xlate.setPeer(mac(cfg.secondary.mac));
      this.capacity = cfg.limits.max_connections;
      this.inbound = 'kernel';
    } catch (e) {
      if (cfg.inbound === 'kernel')
        throw new Error(`inbound: kernel, but the translation program could not be attached: ${(e as Error).message}`, {
          cause: e,
        });
      this.inboundUnavailable = (e as Error).message;
      log.warn(
        { why: this.inboundUnavailable },
        'the kernel translation of client segments is not available here: the queue does it',
      );
    }
    // The match counts what it sends to the queue from its first packet on: the verdicts are counted here from then.
    if (this.merge !== 'queue' && this.xlate) {
      this.order = new AnswerOrder();
      // The kernel's side of the order holds a client's answers no longer than this side does.
      if (!this.xlate.setOrderHold(this.order.maxWaitMs)) this.x.stats.verdictErrors++;
    }
  }

  /**
   * The programs, and (merge: kernel or auto) the netfilter match pinned for
   * iptables; with `auto`, where pinning fails, the programs without it.
   */
  private open(dev: string): InboundXlate {
    const { cfg, vip } = this.x;
    const open = (pin?: string) => {
      const pre = this.preloaded;
      this.preloaded = undefined;
      if (pre) return pre.attachTo(dev, vip, cfg.service.ports, pin);
      return InboundXlate.open(dev, cfg.limits.max_connections, vip, cfg.service.ports, pin);
    };
    if (cfg.merge === 'queue') return open();
    try {
      const x = open(matchPinPath(cfg.instance));
      this.merge = cfg.merge === 'release' ? 'release' : 'kernel';
      return x;
    } catch (e) {
      if (cfg.merge !== 'auto')
        throw new Error(`merge: ${cfg.merge}, but the netfilter match could not be pinned: ${(e as Error).message}`, {
          cause: e,
        });
      this.refuseMerge((e as Error).message);
      return open();
    }
  }

  private refuseMerge(why: string): void {
    this.merge = 'queue';
    this.mergeUnavailable = why;
    this.x.log.warn({ why }, 'the kernel release of primary-only connections is not available here: the queue does it');
  }

  /**
   * Before the queue rules (merge: auto or kernel): the match that lets P's
   * segments the egress program releases (primary-only connections, and
   * those merged in the kernel) past the output queue. xt_bpf is an
   * iptables match: that backend then.
   */
  matchRules(): { rules: Rule[]; backend: 'iptables-nft' } | null {
    if (this.merge === 'queue') return null;
    const { cfg, vip } = this.x;
    const release: Rule = {
      hook: 'output',
      match: { src: vip, sports: cfg.service.ports, oifNot: 'lo', bpfPinned: matchPinPath(cfg.instance) },
      action: 'accept',
      comment: 'tcpfo: P output the egress program releases (primary-only, or merged in the kernel)',
    };
    const waits: Rule = {
      hook: 'output',
      match: { ...release.match, bpfPinned: orderPinPath(cfg.instance) },
      action: { orMark: ORDER_WAIT_MARK },
      comment: 'tcpfo: P output the egress program would release, to the queue only to wait its turn (marked)',
    };
    return { rules: [release, waits], backend: 'iptables-nft' };
  }

  /** The match could not be installed: with `auto`, the queue releases everything; else the start fails. */
  matchRefused(why: string): void {
    if (this.x.cfg.merge !== 'auto')
      throw new Error(`merge: ${this.x.cfg.merge}, but the netfilter match could not be installed: ${why}`);
    this.refuseMerge(why);
    this.order = undefined;
  }

  started(): Record<string, unknown> {
    return {
      // The answers' order (order.ts): its counts written by stores into the mapped map, or system calls.
      ...(this.order && this.xlate ? { orderCounts: this.xlate.orderMapped() ? 'mapped' : 'syscall' } : {}),
      ...(this.inboundUnavailable ? { inboundUnavailable: this.inboundUnavailable } : {}),
      ...(this.mergeUnavailable ? { mergeUnavailable: this.mergeUnavailable } : {}),
    };
  }

  /**
   * P's own segment to a client: the merger holds it, or gives its verdict;
   * or, of a connection whose segments the kernel releases, it waits for an
   * earlier answer of its client in the queue (order.ts) or goes back to the kernel.
   */
  output(b: PacketBatch, i: number): void {
    const id = b.id(i);
    const pkt = b.packet(i);
    const gso = (b.skbInfo(i) & SKB_GSO) !== 0;
    // IPv6: the kernel's programs and counts are IPv4's; the queue merges it all (docs/ipv6.md).
    if (ipVersion(pkt) === 6) {
      this.x.merger().fromPrimary(id, pkt, gso, monotonicMs(), b.checksumState(i));
      return;
    }
    const order = this.order;
    // Marked: sent here only to wait its turn, not counted for its client's order (native/xlate.bpf.c).
    const counted = (b.mark(i) & ORDER_WAIT_MARK) === 0;
    const now = monotonicMs();
    const ahead = order?.arrive(id, pkt.length >= 20 ? pkt.readUInt32BE(IP_DST) : 0, counted, now) ?? false;
    // A counted one holds its client's answers in the queue at most the order's maxWaitMs (expireCounted).
    if (order && counted) this.armOrderTimer();
    if (order && ahead && this.kernelReleases(pkt)) {
      order.defer(id, { id, pkt: Buffer.from(pkt), gso, csum: b.checksumState(i), mark: b.mark(i) }, now);
      this.x.stats.orderWaited++;
      this.armOrderTimer();
      return;
    }
    this.release(id, pkt, gso, b.checksumState(i), b.mark(i));
  }

  /** P's segment whose turn it is: back to the kernel's release if that takes it, else to the merger. */
  private release(id: number, pkt: Buffer, gso: boolean, csum: ChecksumState, mark: number): void {
    const xlate = this.xlate && this.kernelReleases(pkt) ? this.xlate : undefined;
    const outQ = this.x.outQ();
    const stats = this.x.stats;
    // Back to the kernel without the bridge's mark (the egress program releases or holds
    // it), nor the order's: the packet leaves with the mark it came with.
    const markOut = (mark & ~ORDER_WAIT_MARK) >>> 0;
    if (xlate && this.kernelTakes(xlate, pkt)) {
      this.verdict(id);
      const ok = mark & ORDER_WAIT_MARK ? outQ.accept(id, markOut) : outQ.accept(id);
      if (!ok) stats.verdictErrors++;
      stats.returnedToKernel++;
      this.decided(id);
      return;
    }
    // P's D-SACK: the kernel merges the ACK without its block (merge/dsack.ts), the connection stays there.
    const cleared = xlate ? clearLoneDsack(pkt) : null;
    if (xlate && cleared && this.kernelTakes(xlate, cleared)) {
      this.verdict(id);
      if (!outQ.acceptModified(id, cleared, markOut)) stats.verdictErrors++;
      stats.dsackCleared++;
      this.decided(id);
      return;
    }
    this.x.merger().fromPrimary(id, pkt, gso, monotonicMs(), csum);
  }

  /** Whether the kernel would release P's segment `pkt`; if it cannot be asked (a bug), no: the merger has it. */
  private kernelTakes(xlate: InboundXlate, pkt: Buffer): boolean {
    try {
      return xlate.skipsQueue(pkt);
    } catch (e) {
      this.x.internalError(e);
      return false;
    }
  }

  /** Whether P's segment `pkt` belongs to a connection whose segments the kernel releases. */
  private kernelReleases(pkt: Buffer): boolean {
    const ihl = pkt.length >= 20 && ipVersion(pkt) === 4 ? (pkt[0]! & 0x0f) * 4 : 0;
    if (!ihl || pkt.length < ihl + 4) return false;
    return (
      this.x.merger().find(pkt.readUInt32BE(IP_DST), pkt.readUInt16BE(ihl + 2), pkt.readUInt16BE(ihl))
        ?.releasedByKernel ?? false
    );
  }

  /**
   * Packet `id` of the output queue is about to get its verdict: counted for
   * its client's order, and the kernel's copy of the counts written now (a
   * store into the mapped map), before the verdict's system call. That call
   * sends the segment on, and in the softirq work as it ends the client's
   * answer comes back and P's TCP and server answer that (a server-opened
   * data connection's SYN: the client's SYN-ACK, P's last ACK, the control
   * connection's "150", the data and the FIN, all in one call): counts
   * written after the call held each of those in the queue for its turn. An
   * answer of the client produced between this store and the call (a few
   * µs) may pass the segment — answers that far apart on two connections
   * have no order Linux keeps either. Once per verdict (later calls are no-ops).
   */
  verdict(id: number): void {
    if (this.order?.verdict(id)) this.writeOrderDone();
  }

  /** Packet `id` of the output queue got its verdict: counted (if not before), and the segments whose turn came go on after the current work. */
  decided(id: number): void {
    if (!this.order) return;
    this.verdict(id);
    if (this.orderFlushing) return;
    this.orderFlushing = true;
    queueMicrotask(() => this.flushOrder());
  }

  private flushOrder(): void {
    const order = this.order;
    if (!order) return;
    try {
      order.expireCounted(monotonicMs());
      for (let ready = order.ready(monotonicMs()); ready.length; ready = order.ready(monotonicMs())) {
        for (const h of ready) {
          try {
            this.release(h.id, h.pkt, h.gso, h.csum, h.mark);
          } catch (e) {
            // As the queue does for a packet its handler threw on: dropped, counted.
            this.x.outQ().drop(h.id);
            this.decided(h.id);
            this.x.internalError(e);
          }
        }
      }
      this.writeOrderDone();
    } finally {
      this.orderFlushing = false;
    }
  }

  /** The bridge's verdict counts into the kernel's order map, if they changed. */
  private writeOrderDone(): void {
    const order = this.order;
    if (order?.takeDirty() && this.xlate && !this.xlate.setOrderDone(order.done)) this.x.stats.verdictErrors++;
  }

  private armOrderTimer(): void {
    const at = this.order?.nextDeadline() ?? null;
    if (at === null || this.orderTimer || this.x.stopped()) return;
    this.orderTimer = setTimeout(
      () => {
        this.orderTimer = undefined;
        this.flushOrder();
        this.armOrderTimer();
      },
      Math.max(0, at - monotonicMs()),
    );
  }

  /** Once a second: a client slot the queue never delivered some counted segments of is set free (order.ts resync). */
  everySecond(): void {
    if (!this.order || !this.xlate) return;
    const queued = this.xlate.orderQueued();
    if (!queued) return;
    const fixed = this.order.resync(queued, this.orderQueuedLast);
    this.orderQueuedLast = queued;
    if (!fixed.length) return;
    this.x.stats.orderResyncs += fixed.length;
    this.x.log.warn(
      { slots: fixed.length },
      'the output queue lost segments (it was full): the order count of their clients set to the kernel’s',
    );
    this.flushOrder();
  }

  secondaryCopy(kernelPath: boolean): void {
    if (this.sKernelPath === kernelPath) return;
    this.sKernelPath = kernelPath;
    this.updateHandshakes();
  }

  /**
   * Whether the kernel merges handshakes (native/bpf/handshake.h): with the
   * kernel merge, a live secondary, and its copies on its kernel path
   * (source the service address: the kernel releases them as they are).
   */
  updateHandshakes(): void {
    const on = this.merge === 'kernel' && this.sKernelPath && !this.x.alone() && !this.x.stopped();
    if (!this.xlate || on === this.handshakesInKernel) return;
    try {
      this.xlate.mergeHandshakes(on);
      this.handshakesInKernel = on;
      this.x.log.info(
        { handshakes: on ? 'kernel' : 'queue' },
        `handshakes are merged in the ${on ? 'kernel' : 'bridge'}`,
      );
    } catch (e) {
      this.x.internalError(e);
    }
  }

  /**
   * What the kernel told, into the merger, in order: the handshakes it
   * merged, and the connections whose close passed there. Heard before each
   * batch of either queue: the kernel tells of a handshake before the client
   * has its SYN-ACK, so before any later segment of the connection can
   * reach a queue.
   */
  hear(): void {
    if (!this.xlate) return;
    const events = this.xlate.kernelEvents();
    if (!events.length) return;
    const now = monotonicMs();
    for (const e of events) {
      if (e.kind === 'handshake') this.x.merger().kernelHandshake(e, now);
      else this.x.merger().kernelEnded(e, now);
    }
  }

  /**
   * Tells the kernel whether the secondary failed (native/bpf/maps.h
   * peer_cfg.alone); on failure, the connections whose stolen segments of
   * P's it keeps, to turn first.
   */
  setAlone(on: boolean): OffloadKey[] {
    if (!this.xlate) return [];
    try {
      this.xlate.setAlone(on);
      return on ? this.xlate.stashedConns() : [];
    } catch (e) {
      this.x.internalError(e);
      return [];
    }
  }

  /**
   * The secondary failed: P's SYN-ACKs the kernel held for S's go out now,
   * not at P's retransmission timer — P's TCP, prompted with the client's
   * SYN again (prompts.ts), sends each again, through the queue. P's held
   * SYNs (connections the servers open) the bridge sends again itself,
   * through the queue, where the merger, alone, takes each up.
   */
  promptHeld(): void {
    if (!this.xlate) return;
    try {
      const held = this.xlate.heldHandshakes(HELD_HANDSHAKE_MAX_AGE_MS);
      for (const h of held)
        if (!h.syn) this.x.injector().send(synAgain(h, this.x.vip));
        else (this.unmarked ??= new Injector(0)).send(serverSynAgain(h, this.x.vip));
      this.x.stats.handshakesPrompted += held.length;
      if (held.length)
        this.x.log.info(
          { handshakes: held.length, syns: held.filter((h) => h.syn).length },
          'handshakes held for the secondary’s sent again at once: SYN-ACKs by P’s TCP, prompted; SYNs by the bridge',
        );
    } catch (e) {
      this.x.internalError(e);
    }
  }

  secondarySilentMs(): number | null {
    return this.xlate?.secondarySilentMs() ?? null;
  }

  /**
   * lan.mode: switch — the secondary sees none of the client's frames to us:
   * copy each one to it, in the kernel (the translation program where it
   * runs, else an nft table). Stopped while the secondary is gone.
   */
  async startCopies(): Promise<void> {
    if (this.x.cfg.lan.mode !== 'switch') return;
    // The program copies IPv4 frames; an nft table the rest (IPv6's, or all where no program runs).
    const spec = copySpec(this.x, this.xlate !== undefined);
    if (this.xlate) this.xlate.duplicateTo(mac(this.x.cfg.secondary.mac), this.x.myMac);
    this.copyTable = copiesAny(spec);
    if (this.copyTable) await installCopy(spec);
    this.copying = true;
  }

  async stopCopies(): Promise<void> {
    if (!this.copying) return;
    this.copying = false;
    if (this.xlate) this.xlate.duplicateTo(null);
    if (this.copyTable) await removeCopy(copySpec(this.x, false).tag);
  }

  reload(cfg: Config): void {
    if (this.xlate && cfg.limits.max_connections > this.capacity) {
      this.x.log.warn(
        { maxConnections: cfg.limits.max_connections, kernelMap: this.capacity },
        'SIGHUP: limits.max_connections is above the kernel translation’s map, sized at the start: connections beyond it are translated by the queue (slower) until a restart',
      );
    }
  }

  /** The kernel translation's counters and the connections its map had no room for (undefined: the queue translates). */
  metrics(): MetricsSnapshot['kernelInbound'] {
    const counters = this.xlate?.stats;
    if (!this.xlate || !counters) return undefined;
    const s = this.x.stats;
    const order = this.order
      ? {
          orderWaited: s.orderWaited,
          orderLate: this.order.expired,
          orderHeldTooLong: this.order.heldTooLong,
          returnedToKernel: s.returnedToKernel,
          dsackClearedP: s.dsackCleared,
          orderResyncs: s.orderResyncs,
        }
      : {};
    return {
      ...counters,
      mapFull: s.xlateMapFull,
      stashedTaken: this.x.merger().stats.stashedTaken,
      handshakesPrompted: s.handshakesPrompted,
      ...order,
    };
  }

  /**
   * The match that lets primary-only segments past the queue goes before
   * the egress program that rewrites them (none may leave raw meanwhile).
   */
  async beforeRulesDrop(drop: (which: (r: Rule) => boolean) => Promise<void>): Promise<void> {
    if (this.orderTimer) clearTimeout(this.orderTimer);
    if (this.merge !== 'queue')
      await drop((r) => r.match.bpfPinned !== undefined).catch((e: unknown) =>
        this.x.log.error({ err: (e as Error).message, step: 'the kernel release’s match' }, 'stop failed'),
      );
    // Segments still in the queues go to the merger from here on, not to closed programs.
    const xlate = this.xlate;
    this.xlate = undefined;
    xlate?.close();
    this.preloaded?.close(); // handed over by a promotion that stopped before it attached them
  }

  async close(): Promise<void> {
    await this.unmarked?.drain(1000);
    this.unmarked?.close();
  }
}
