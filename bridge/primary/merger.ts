/**
 * The primary's merger (paper §3.2–§4, §6–§8): one state machine per
 * failover connection, pure — segments and the time go in, verdicts and new
 * segments come out through a MergerSink. No sockets, no clock.
 *
 * Words (DESIGN.md): P = the primary's own TCP, S = the secondary's TCP, C =
 * the client. Δseq = isn_P − isn_S. The client only ever sees S's sequence and
 * timestamp spaces, so a failover to S needs no translation at all.
 *
 * How P's output is merged: the paper copies P's payload into a queue and
 * builds new segments. We hold P's own segment in the kernel (its NFQUEUE
 * verdict is simply not given yet) until S's diverted bytes cover it, compare
 * the bytes, then release P's segment rewritten into S's spaces with the
 * minimum ACK and window. The bytes the client gets are exactly the ones both
 * servers produced (the paper's guarantee), and the kernel keeps segmenting
 * 64 KB GSO segments for us.
 *
 * This file is the dispatcher: it keeps the connection table, parses each
 * packet once and hands the parsed segment to the parts in merge/ — the
 * connection record (conn.ts), the handshake (handshake.ts), ACK, SACK,
 * window and the client's segments (ack.ts), release and retransmission
 * (release.ts), expiry and silence (expiry.ts), adopted connections
 * (adopted.ts).
 */
import { ipAddrToString, isIp6, type IpAddr } from '../../net/addr.js';
import { WireError } from '../wire/error.js';
import { seqAdd, seqGe, seqGt, seqLe, seqLt, seqMin, seqSub } from '../wire/seq.js';
import type { TcpOption } from '../wire/tcp-options.js';
import { parseIpTcp } from '../wire/ip.js';
import { type TcpSegment, TCP_ACK_FLAG, TCP_FIN, TCP_RST, TCP_SYN } from '../wire/tcp.js';
import {
  acceptableFromClient,
  exactClientSeq,
  mergedSack,
  noteAck,
  noteClient,
  noteTs,
  refresh,
  translateClient,
} from './merge/ack.js';
import { AdoptedTable } from './merge/adopted.js';
import { Conn, connKey, NO_HELD, synInfo, synsPaired, type ConnPhase, type Held } from './merge/conn.js';
import { expired, silence } from './merge/expiry.js';
import { kernelHandshake, mergeHandshake } from './merge/handshake.js';
import {
  adoptKernelState,
  countHandover,
  KERNEL_DIVERGED,
  kernelInit,
  kernelResume,
  kernelSynInfo,
  type KernelEnded,
  type KernelHandshake,
} from './merge/kernel.js';
import { BufferPool } from './buffer-pool.js';
import { STASH_TAG } from './queue-ids.js';
import { halfOpenReset } from './prompts.js';
import {
  abortBoth,
  checkStall,
  degrade,
  maybeAck,
  pureAck,
  release,
  releaseCovered,
  releasePrefix,
  secondaryRetransmission,
  sendRange,
} from './merge/release.js';
import {
  DEFAULT_MERGER_CONFIG,
  newStats,
  kernelOf,
  offloadKey,
  serviceFor,
  type ChecksumState,
  type ConnId,
  type InboundOffload,
  type MergeCore,
  type MergerConfig,
  type MergerSink,
  type OffloadKey,
  type MergerStats,
} from './merge/types.js';

export { Conn, type ConnPhase } from './merge/conn.js';
export {
  DEFAULT_MERGER_CONFIG,
  type ChecksumState,
  type DropReason,
  type InboundOffload,
  type MergerConfig,
  type MergerSink,
  type MergerStats,
} from './merge/types.js';

/** Connections put primary-only in the kernel per system call when the secondary fails (a few ms each). */
const KERNEL_BATCH = 4096;
/**
 * S's SYN-ACK that no SYN-ACK of P's joined for this long (from its first
 * arrival) has no counterpart in P's TCP: its half-open socket is reset
 * (expireEarlyS). Longer than P's own SYN-ACK can lag S's — held by the
 * kernel for S's, it comes again at P's retransmission timer, 1 s.
 */
export const EARLY_SYNACK_MS = 2000;

/** S's SYN(-ACK) that came before P's (keepEarlyS). */
interface EarlyS {
  pkt: Buffer;
  /** When it first came (one sent again keeps this). */
  first: number;
  /** When `pkt`, the newest, came. */
  at: number;
  client: IpAddr;
  clientPort: number;
  servicePort: number;
  /** The client's ISN + 1, as the SYN-ACK acknowledged it; null for a SYN (a connection the servers open). */
  ack: number | null;
}

/** What names a SYN-ACK's handshake (the client's ISN + 1), or null for a SYN. */
function synAckOf(seg: TcpSegment): { ack: number | null } {
  return { ack: seg.flags & TCP_ACK_FLAG ? seg.ack : null };
}

export class Merger implements MergeCore {
  /** client address → (client port, service port) → connection */
  private readonly conns = new Map<IpAddr, Map<number, Conn>>();
  private count = 0;
  readonly stalled = new Set<Conn>();
  readonly pending = new Set<Conn>();
  readonly earlyEnded = new Set<Conn>();
  readonly diverged = new Set<Conn>();
  readonly closing = new Set<Conn>();
  /**
   * Connections whose client has not (to our knowledge) acknowledged the
   * handshake, oldest first: a SYN flood's entries. A full table forgets the
   * oldest of them that the kernel did not see acknowledged either, as the
   * kernel's SYN queue does, so a flood never locks new clients out.
   */
  private readonly halfOpen = new Set<Conn>();
  private readonly adopted = new AdoptedTable();
  /**
   * S's SYN(-ACK)s that came before P's, by connection: a copy of each, at
   * most maxPendingHandshakes, oldest forgotten first and after
   * handshakeTimeoutMs. A connection enters the table only with P's
   * SYN(-ACK) — proof that P's TCP saw the SYN — so segments forged with
   * the secondary's address never fill it.
   */
  private readonly earlyS = new Map<string, EarlyS>();
  private nextExpiry = 0;
  /** The time of the event being handled (every entry point sets it). */
  private now = 0;
  /** After a secondary failure (§6): every connection primary-only, new ones too. */
  private alone = false;
  readonly stats: MergerStats = newStats();
  readonly cfg: MergerConfig;
  readonly buffered = { stored: 0, held: 0 };
  /** Each held copy of P's, by queue id, until its verdict. */
  private readonly heldCopies = new Map<number, Buffer>();
  /** The buffers of the held copies and of the stores' (S's bytes), used again once done with. */
  readonly pool: BufferPool;
  /** Verdicts and sends: the shell's sink, which also frees a held copy's share of the budget. */
  readonly sink: MergerSink;

  constructor(
    cfg: Partial<MergerConfig> & { service: number },
    sink: MergerSink,
    /** Divergence and other rare events, for the shell's log. Never called per packet in normal operation. */
    private readonly onEvent: (what: string, conn: ConnId) => void = () => {},
    /** The kernel's translation of client segments, where the shell has it. */
    readonly offload: InboundOffload | null = null,
  ) {
    this.cfg = { ...DEFAULT_MERGER_CONFIG, ...cfg };
    this.pool = new BufferPool(undefined, this.cfg.poisonPooled);
    this.sink = {
      accept: (id, packet) => {
        const copy = this.unhold(id);
        const stashed = this.stashed.get(id);
        if (stashed) {
          // No queue holds it: it leaves through the raw socket (which may keep it a while: not recycled).
          this.stashed.delete(id);
          sink.send(packet ?? stashed);
        } else {
          // The verdict has copied the bytes into the kernel's message: the held copy serves again.
          sink.accept(id, packet);
          if (copy) this.pool.give(copy);
        }
      },
      drop: (id) => {
        const copy = this.unhold(id);
        if (!this.stashed.delete(id)) sink.drop(id);
        if (copy) this.pool.give(copy);
      },
      send: (packet) => sink.send(packet),
      toSecondary: (packet) => sink.toSecondary(packet),
    };
  }

  /** P's segments taken from the kernel's stash, by their ids (STASH_TAG and up), until their verdict. */
  private readonly stashed = new Map<number, Buffer>();
  private stashSeq = 0;

  /**
   * P's segments the kernel stole from `c` and kept (kernel.ts `stashed`),
   * merged now as if P's TCP had just sent them — not at its loss probe or
   * retransmission timer. Those released already are left out; the rest go
   * in order, each with a full TCP checksum (the raw socket sends it as it is).
   */
  private mergeStashed(c: Conn, pkts: Buffer[]): void {
    const segs: Array<{ start: number; pkt: Buffer }> = [];
    for (const pkt of pkts) {
      const p = parseIpTcp(pkt);
      if (p instanceof WireError || p.tcp.seqLength === 0) continue;
      const start = seqSub(p.tcp.seq, c.deltaSeq);
      if (!seqGt(seqAdd(start, p.tcp.seqLength), c.relNxt)) continue;
      p.tcp.fillChecksum();
      segs.push({ start, pkt });
    }
    segs.sort((a, b) => (seqLt(a.start, b.start) ? -1 : 1));
    for (const s of segs) {
      const id = STASH_TAG + this.stashSeq++;
      this.stashed.set(id, s.pkt);
      this.stats.stashedTaken++;
      this.fromPrimary(id, s.pkt, false, this.now, 'verified');
    }
  }

  /**
   * A copy of P's segment to hold (the queue's batch buffer is read again by
   * the next batch), from the pool, counted in the budget until its
   * verdict. `first`: null for a SYN(-ACK) or RST (small, and what starts
   * or ends a connection: always held); for data, whether the connection
   * holds nothing yet (overBudget). Null when the budget is spent: P's TCP
   * sends it again.
   */
  private hold(id: number, pkt: Buffer, start: number, end: number, gso: boolean, first: boolean | null): Held | null {
    if (first !== null && this.overBudget(pkt.length, first)) return null;
    const copy = this.pool.copy(pkt);
    const parsed = parseIpTcp(copy);
    if (parsed instanceof WireError) {
      this.pool.give(copy);
      return null; // parsed once already: cannot happen
    }
    this.heldCopies.set(id, copy);
    this.buffered.held += copy.length;
    return { id, pkt: copy, seg: parsed.tcp, start, end, gso };
  }

  /** Packet `id` has its verdict: its held copy, if any, leaves the budget (returned: for the pool once done with). */
  private unhold(id: number): Buffer | undefined {
    const copy = this.heldCopies.get(id);
    if (copy === undefined) return undefined;
    this.heldCopies.delete(id);
    this.buffered.held -= copy.length;
    return copy;
  }

  event(what: string, c: ConnId): void {
    this.onEvent(what, c);
  }

  ended(c: Conn, now = this.now): void {
    c.closedAt ??= now;
    this.closing.add(c);
  }

  get connections(): number {
    return this.count;
  }

  /**
   * Whether `more` bytes would go past the budget. Past maxBufferedBytes only
   * a connection's `first` bytes (it holds or stores nothing yet) are taken,
   * so that no connection starves while others hold the budget (its
   * retransmissions, backing off, would lose every race), up to twice the
   * bound; past that, nothing.
   */
  private overBudget(more: number, first: boolean): boolean {
    const total = this.buffered.stored + this.buffered.held + more;
    return total > this.cfg.maxBufferedBytes && (!first || total > 2 * this.cfg.maxBufferedBytes);
  }

  /** Connections by phase (for metrics); one that ended counts as closed, whatever its phase. */
  phases(): Record<ConnPhase, number> {
    const r: Record<ConnPhase, number> = { handshake: 0, merging: 0, degraded: 0, closed: this.closing.size };
    for (const m of this.conns.values()) for (const c of m.values()) if (c.closedAt === null) r[c.phase]++;
    return r;
  }

  /** Adopted connections: forgets those this node's server no longer has (`live`: its sockets now). */
  retainAdopted(live: readonly ConnId[]): void {
    this.adopted.retain(live);
  }

  get adoptedCount(): number {
    return this.adopted.size;
  }

  /** Connections only this node's server carries: primary-only (degraded, open) and adopted. */
  unreplicated(): number {
    return this.phases().degraded + this.adopted.size;
  }

  /** Bytes of S output stored and P segments held, over all connections. */
  queued(): { storedBytes: number; heldSegments: number } {
    let storedBytes = 0;
    let heldSegments = 0;
    for (const m of this.conns.values()) {
      for (const c of m.values()) {
        storedBytes += c.store.size;
        heldSegments += c.held.length + (c.heldSyn ? 1 : 0);
      }
    }
    return { storedBytes, heldSegments };
  }

  /**
   * The connections the secondary must close rather than continue if it
   * takes over: those that diverged (or that S lost) and are still tracked,
   * and adopted ones of which S's TCP holds a copy of its own.
   */
  divergedConnections(): ConnId[] {
    const out: ConnId[] = [...this.diverged].map((c) => ({
      client: c.client,
      clientPort: c.clientPort,
      servicePort: c.servicePort,
    }));
    return out.concat(this.adopted.copiedBySecondary());
  }

  /** Connections waiting for S (segments held, or the client's bytes acknowledged by P only), for diagnostics (at most `max`). */
  stuck(max = 5): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const m of this.conns.values()) {
      for (const c of m.values()) {
        if (out.length >= max) return out;
        if (!c.held.length && !c.heldSyn && !c.waitsForS()) continue;
        out.push({
          client: `${ipAddrToString(c.client)}:${c.clientPort}`,
          phase: c.phase,
          relNxt: c.relNxt,
          covered: c.phase === 'handshake' ? null : c.sCovered(),
          held: c.held.slice(0, 3).map((h) => [h.start, h.end]),
          heldSyn: c.heldSyn !== null,
          store: c.store.ranges().slice(0, 5),
          ackP: c.ackP,
          ackS: c.ackS,
          ackSent: c.ackSent,
          waitingSince: c.waitingSince,
          sProgressAt: c.sProgressAt,
          lastSeen: c.lastSeen,
        });
      }
    }
    return out;
  }

  /** The SACK blocks the client may be told now (merge/ack.ts). */
  mergedSack(c: Conn): Array<[number, number]> {
    return mergedSack(c);
  }

  /** Adopts connections this node already serves alone (merge/adopted.ts). */
  adopt(keys: readonly ConnId[], now: number): void {
    for (const k of keys) {
      // Listed after our rules went in, a connection whose SYN-ACK came
      // through us is merged, not adopted.
      if (this.find(k.client, k.clientPort, k.servicePort)?.sawSynP()) continue;
      if (this.adopted.add(k, now)) this.stats.adopted++;
    }
  }

  /** Whether (client, ports) is adopted; if so, notes (and logs, once) that S's TCP has a copy of it. */
  private copiedByS(client: IpAddr, clientPort: number, servicePort: number): boolean {
    const r = this.adopted.copiedByS(client, clientPort, servicePort);
    if (r === 'first')
      this.event('not replicated (adopted), but the secondary has a copy: it will reset it if it takes over', {
        client,
        clientPort,
        servicePort,
      });
    return r !== false;
  }

  find(client: IpAddr, clientPort: number, servicePort: number): Conn | undefined {
    return this.conns.get(client)?.get(connKey(clientPort, servicePort));
  }

  private create(client: IpAddr, clientPort: number, servicePort: number, now: number): Conn {
    let m = this.conns.get(client);
    if (!m) {
      m = new Map();
      this.conns.set(client, m);
    }
    const c = new Conn(client, clientPort, servicePort, now);
    m.set(connKey(clientPort, servicePort), c);
    this.count++;
    this.halfOpen.add(c);
    return c;
  }

  /**
   * Whether a new connection may be tracked: below maxConnections — an
   * entry lingering after its connection ended gives its place, oldest
   * first — and, when it will hold P's SYN(-ACK) in the kernel's queue,
   * below maxPendingHandshakes.
   */
  private room(holds: boolean): boolean {
    if (holds && this.pending.size >= this.cfg.maxPendingHandshakes) return false;
    if (this.count < this.cfg.maxConnections) return true;
    const closed = this.closing.values().next();
    if (!closed.done) {
      this.remove(closed.value);
      this.stats.evictedClosed++;
      return true;
    }
    for (const c of this.halfOpen) {
      // The kernel may have seen the client's ACK (established after all): kept.
      refresh(this, c, this.now);
      if (c.established) {
        this.halfOpen.delete(c);
        continue;
      }
      this.remove(c);
      this.stats.evictedHalfOpen++;
      return true;
    }
    return false;
  }

  /**
   * Forgets `c`, dropping whatever of P's it still held in the kernel's
   * queue; and its kernel entries, unless `keepKernel` (they belong to a
   * new connection on the same ports now).
   */
  private remove(c: Conn, keepKernel = false): void {
    if (c.phase !== 'handshake' && !keepKernel) kernelOf(this, c)?.remove(offloadKey(this, c));
    if (c.heldSyn) this.sink.drop(c.heldSyn.id);
    c.heldSyn = null;
    if (c.rstP) this.sink.drop(c.rstP.id);
    c.rstP = null;
    for (const h of c.held) this.sink.drop(h.id);
    c.held = NO_HELD;
    c.store.clear(); // its bytes leave the budget too
    this.stalled.delete(c);
    this.touched.delete(c);
    this.closing.delete(c);
    this.halfOpen.delete(c);
    this.pending.delete(c);
    this.diverged.delete(c);
    this.earlyEnded.delete(c);
    const m = this.conns.get(c.client);
    if (m?.delete(connKey(c.clientPort, c.servicePort))) {
      this.count--;
      if (m.size === 0) this.conns.delete(c.client);
    }
  }

  /**
   * Merges the handshake (merge/handshake.ts) and releases P's SYN(-ACK).
   * A replicated connection may go to the kernel's merge (merge/kernel.ts)
   * first: the client's answer, and both servers' to it, may follow at once.
   */
  private completeHandshake(c: Conn, alone: boolean): void {
    const h = mergeHandshake(this, c, alone);
    const kernel = kernelOf(this, c);
    const init = !alone && kernel && c.phase === 'merging' ? kernelInit(c) : null;
    if (init && kernel!.mergeStart(offloadKey(this, c), init)) {
      c.inKernel = true;
      this.stats.kernelMerged++;
    }
    release(this, c, h.id, h.pkt, h.seg, h.gso, true);
  }

  /**
   * A handshake the kernel merged (native/bpf/handshake.h), heard after the
   * client got its SYN-ACK and before any segment of the connection reaches
   * the queues (the shell hears the kernel first): the connection starts
   * here as if both SYN-ACKs had come through the queues, merged in the
   * kernel. A record of the same ports still in its handshake (P's SYN-ACK
   * sent again, held meanwhile) or ended gives way; one heard twice is kept.
   */
  kernelHandshake(h: KernelHandshake, now: number): void {
    this.now = now;
    const old = this.find(h.client, h.clientPort, h.servicePort);
    if (old && old.phase !== 'handshake' && old.closedAt === null && old.isn === h.s.isn) return;
    if (old) this.remove(old, true);
    this.earlyS.delete(Merger.earlyKey(h.client, h.clientPort, h.servicePort));
    this.adopted.seen(h.client, h.clientPort, h.servicePort, now, true);
    if (!this.room(false)) {
      // A full table, and nothing to make room with: not served (as a SYN-ACK
      // the queue drops). Its kernel entries go; the client's next segment
      // meets P's TCP untranslated and is refused.
      this.offload?.remove({
        client: h.client,
        service: this.cfg.service,
        clientPort: h.clientPort,
        servicePort: h.servicePort,
      });
      this.stats.drops['table-full']++;
      return;
    }
    const c = this.create(h.client, h.clientPort, h.servicePort, now);
    c.synP = kernelSynInfo(h, 'p');
    c.synS = kernelSynInfo(h, 's');
    // Two SYNs acknowledge nothing: the servers' ACKs of the client's SYN-ACK come next.
    if (!h.syn) {
      c.ackP = c.ackS = h.ack;
      c.hasAckP = c.hasAckS = true;
      c.winP = h.p.window;
      c.winS = h.s.window;
    }
    kernelHandshake(this, c);
    c.inKernel = true;
    this.stats.kernelMerged++;
    this.stats.kernelHandshakes++;
    // The secondary failed as the kernel merged it: primary-only at once, as goAlone does.
    if (this.alone) this.mergingAlone(c);
  }

  /**
   * A connection whose close passed in the kernel (the client's FIN and the
   * servers' merged there), or that the client's RST ended there, heard
   * after it did: it ended, and lingers as any other before its entries go.
   * An end heard for an older connection on the same ports (another Δseq)
   * is not this one's.
   */
  kernelEnded(e: KernelEnded, now: number): void {
    this.now = now;
    const c = this.find(e.client, e.clientPort, e.servicePort);
    if (!c || c.phase === 'handshake' || c.deltaSeq !== e.dseq) return;
    if (e.reset) c.phase = 'closed';
    else {
      c.finClient = true;
      c.finReleased = true;
    }
    this.stats.kernelCloses++;
    this.ended(c, now);
  }

  /**
   * `c` comes back from the kernel's merge (a segment of it reached the
   * bridge, or the secondary failed): from now on the queue merges it,
   * starting from the kernel's state. Different bytes the kernel found
   * degrade it here.
   */
  private takeFromKernel(c: Conn, by: string, mergeStashed = true): Buffer[] {
    if (!c.inKernel) return [];
    c.inKernel = false;
    const s = kernelOf(this, c)?.mergeTake(offloadKey(this, c)) ?? null;
    if (!s) return [];
    countHandover(this, s, by);
    adoptKernelState(c, s, this.now);
    if ((c.finClient && c.finReleased) || c.phase === 'closed') this.ended(c, this.now);
    if (s.flags & KERNEL_DIVERGED) {
      this.stats.divergences++;
      degrade(this, c, 'different bytes at the same offset (found by the kernel merge)', true);
    }
    if (mergeStashed) this.mergeStashed(c, s.stashed ?? []);
    return s.stashed ?? [];
  }

  /** Connections the bridge merged segments of since the last batchEnd: each may return to the kernel then. */
  private readonly touched = new Set<Conn>();

  /**
   * The end of a batch of either queue: each connection the bridge merged a
   * segment of in it returns to the kernel's merge if nothing of it waits on
   * either side now (merge/kernel.ts kernelResume states the rule). Not while
   * the secondary is failed, nor for a connection the kernel cannot take
   * (its entry gone: the queue keeps merging it). How many returned.
   */
  batchEnd(now: number): number {
    this.now = now;
    if (this.touched.size === 0) return 0;
    let n = 0;
    if (!this.alone && this.offload?.mergeResume) {
      for (const c of this.touched) {
        if (this.stalled.has(c) || this.diverged.has(c) || !kernelOf(this, c)) continue;
        const init = kernelResume(c);
        if (!init || !this.offload.mergeResume(offloadKey(this, c), init)) continue;
        c.inKernel = true;
        this.stats.kernelReturns++;
        // Nothing of S's waits: digests the kernel gave at the last take are spent.
        c.sDigests = null;
        n++;
      }
    }
    this.touched.clear();
    return n;
  }

  // --- P's own output (NFQUEUE OUTPUT) ----------------------------------------

  /** A segment P's TCP sent to a client. Always ends in a verdict for `id`, now or later. */
  fromPrimary(id: number, pkt: Buffer, gso: boolean, now: number, csum: ChecksumState = 'unverified'): void {
    this.now = now;
    const seg = this.parseOrDrop(id, pkt, csum);
    if (!seg) return;
    const flags = seg.flags;
    let c = this.find(seg.dst, seg.dstPort, seg.srcPort);
    // The secondary failed and goAlone's steps have not reached this connection yet: it turns now.
    if (this.alone && c?.phase === 'merging' && !(flags & TCP_SYN)) {
      this.mergingAlone(c);
      this.stats.aloneTurns.asNeeded++;
    }
    // A SYN(-ACK) sent again passes without the connection's state: the kernel keeps merging it.
    if (c?.inKernel && !(flags & TCP_SYN)) this.takeFromKernel(c, takenBy('p', seg));
    if (c && this.offload) this.touched.add(c);
    if (flags & TCP_SYN) {
      const opts = seg.options();
      if (opts instanceof WireError) {
        this.stats.drops.malformed++;
        this.sink.drop(id);
        return;
      }
      if (!c || c.closedAt !== null) {
        // A new connection (an ended one's ports used again: P's TCP reuses a TIME-WAIT).
        if (c) this.remove(c);
        this.adopted.seen(seg.dst, seg.dstPort, seg.srcPort, now, true); // a new connection on the same ports
        if (!this.room(!this.alone)) {
          this.stats.drops['table-full']++;
          this.sink.drop(id);
          return;
        }
        c = this.create(seg.dst, seg.dstPort, seg.srcPort, now);
        this.takeEarlyS(c);
      }
      c.lastSeen = now;
      if (c.phase === 'handshake') {
        c.synP = synInfo(seg, opts, now);
        if (c.heldSyn) this.sink.drop(c.heldSyn.id); // P retransmitted its SYN(-ACK): keep the newest
        c.heldSyn = this.hold(id, pkt, seg.seq, seqAdd(seg.seq, 1), gso, null);
        c.heldSynAt ??= now;
        this.pending.add(c);
        if (flags & TCP_ACK_FLAG) noteAck(c, 'P', seg);
        if (this.alone) this.completeHandshake(c, true);
        else this.completeIfPaired(c);
        return;
      }
      // A retransmitted SYN(-ACK) of a merged connection: straight through (§4).
      release(this, c, id, pkt, seg, gso, true);
      return;
    }
    // An adopted connection passes unchanged — also when S's SYN-ACK for it
    // reached us (its handshake straddled our start: P's TCP answered the SYN
    // before our rules were in, so we hold only S's half, never P's).
    if (
      (!c || (c.phase === 'handshake' && !c.synP)) &&
      this.adopted.seen(seg.dst, seg.dstPort, seg.srcPort, now, (flags & TCP_RST) !== 0)
    ) {
      if (c) {
        this.remove(c);
        this.copiedByS(seg.dst, seg.dstPort, seg.srcPort);
      } else if (this.earlyS.delete(Merger.earlyKey(seg.dst, seg.dstPort, seg.srcPort))) {
        this.copiedByS(seg.dst, seg.dstPort, seg.srcPort);
      }
      this.sink.accept(id);
      return;
    }
    if (!c || c.phase === 'handshake') {
      // Not a connection we merged (started before us, or expired): its raw
      // sequence numbers must never reach the client. Fail closed.
      this.stats.drops['unknown-connection']++;
      this.sink.drop(id);
      return;
    }
    c.lastSeen = now;
    if (flags & TCP_ACK_FLAG) noteAck(c, 'P', seg);
    noteTs(c, 'P', seg);
    const start = seqSub(seg.seq, c.deltaSeq);
    const end = seqAdd(start, seg.seqLength);
    if (flags & TCP_RST) {
      // P aborted. It goes out if S aborted too (or S is gone), and the
      // connection ends; else it is held until S's RST (an application
      // abort, SO_LINGER 0, resets both replicas) or S's silence.
      if (c.phase === 'degraded' || c.phase === 'closed') {
        release(this, c, id, pkt, seg, gso, false);
        c.phase = 'closed';
        this.ended(c, now);
      } else {
        if (c.rstP) this.sink.drop(c.rstP.id);
        c.rstP = this.hold(id, pkt, start, end, gso, null);
      }
      return;
    }
    if (c.phase === 'degraded' || c.phase === 'closed') {
      release(this, c, id, pkt, seg, gso, false);
      if (flags & TCP_FIN) c.finReleased = true;
      if (c.finClient && c.finReleased) this.ended(c, now);
      return;
    }
    if (seg.seqLength === 0) {
      pureAck(this, c, id, pkt, seg, gso, 'P');
      return;
    }
    if (seqLt(start, c.relNxt)) refresh(this, c, now); // a retransmission: what did the client acknowledge?
    const acked = c.notAcked(start); // the client has every byte before this
    if (seqLe(end, c.relNxt)) {
      // §4: below the highest released sequence number — a retransmission. Only
      // one copy of it will come from P: send it now. Unless the client has
      // acknowledged all of it already (P's timer fired before its ACK came
      // in): the copy would only draw a duplicate ACK, or a RST from a client
      // that has closed.
      this.stats.retransmissions++;
      if (seqLe(end, acked)) {
        this.stats.drops['client-acknowledged']++;
        this.sink.drop(id);
        return;
      }
      release(this, c, id, pkt, seg, gso, false);
      return;
    }
    if (seqLt(start, c.relNxt)) {
      // A retransmission reaching past what was released: the released part
      // the client has not acknowledged goes out now (copied); the rest is
      // held already, in P's original.
      this.stats.retransmissions++;
      sendRange(this, c, start, seg.payload, acked, c.relNxt);
      this.sink.drop(id);
      return;
    }
    const heldEnd = c.held.length ? c.held[c.held.length - 1]!.end : c.relNxt;
    if (seqLt(start, heldEnd) && seqLe(end, heldEnd)) {
      // P re-sent bytes whose original is still held here: the original goes out.
      this.stats.retransmissions++;
      this.sink.drop(id);
      return;
    }
    const h = this.hold(id, pkt, start, end, gso, c.held.length === 0);
    if (!h) {
      // Over the budget: not held. P's TCP sends it again, by when releases have made room.
      this.stats.drops['memory-full']++;
      this.sink.drop(id);
      return;
    }
    if (c.held === NO_HELD) c.held = [h];
    else c.held.push(h);
    releaseCovered(this, c, now);
    checkStall(this, c, now);
    maybeAck(this, c);
  }

  // --- S's diverted output (NFQUEUE PREROUTING, already authenticated) ---------

  /**
   * A segment S's TCP sent to the client, diverted to us. `client` is the
   * address from the divert option. The packet is consumed: verdict drop.
   */
  fromSecondary(id: number, pkt: Buffer, client: IpAddr, now: number, csum: ChecksumState = 'unverified'): void {
    this.now = now;
    const seg = this.parseOrDrop(id, pkt, csum);
    if (!seg) return;
    // S's copy's own verdict after what it releases: a release waits for no other system call.
    try {
      this.secondarySegment(seg, pkt, client, now);
    } finally {
      this.sink.drop(id);
    }
  }

  private secondarySegment(seg: TcpSegment, pkt: Buffer, client: IpAddr, now: number): void {
    this.stats.divertedSegments++;
    this.stats.divertedBytes += seg.payloadLength;
    const flags = seg.flags;
    const c = this.find(client, seg.dstPort, seg.srcPort);
    if (c?.inKernel && !(flags & TCP_SYN)) this.takeFromKernel(c, takenBy('s', seg));
    if (c && this.offload) this.touched.add(c);
    // S's TCP answering for a connection P's TCP has from before our rules
    // (adopted): not replicated, and S's copy must never be continued. (An
    // RST only says S has no socket for it.)
    if (!c && !(flags & TCP_RST) && this.copiedByS(client, seg.dstPort, seg.srcPort)) {
      this.stats.drops['diverted-unknown']++;
      if (flags & TCP_SYN) this.resetHalfOpenS(client, seg.dstPort, seg.srcPort, synAckOf(seg));
      return;
    }
    if (flags & TCP_SYN) {
      const opts = seg.options();
      if (opts instanceof WireError) {
        this.stats.drops.malformed++;
        return;
      }
      if (!c || c.closedAt !== null) {
        // Before P's: kept aside until P's SYN(-ACK) shows the connection is real.
        // Alone, P merges nothing new: S's half-open socket would only stand in
        // the way of a later connection on the same ports.
        if (!this.alone) this.keepEarlyS(client, seg, pkt, now);
        else this.resetHalfOpenS(client, seg.dstPort, seg.srcPort, synAckOf(seg));
        return;
      }
      if (c.phase === 'handshake') this.synFromS(c, seg, opts, now);
      // Primary-only (begun alone, or S never answered its SYN): S's copy is never merged.
      else if (c.phase === 'degraded') this.resetHalfOpenS(client, seg.dstPort, seg.srcPort, synAckOf(seg));
      return;
    }
    if (!c || c.phase === 'handshake') {
      this.stats.drops['diverted-unknown']++;
      return;
    }
    if (c.phase === 'degraded' || c.phase === 'closed') {
      this.stats.drops['degraded-diverted']++;
      return;
    }
    c.lastSeen = now;
    const hadAckS = c.hasAckS;
    const ackSBefore = c.ackS;
    // Only bytes or a FIN can move what S covers (a scan of the store: not for pure ACKs).
    const mayCover = seg.payloadLength > 0 || (flags & TCP_FIN) !== 0;
    const coveredBefore = mayCover ? c.sCovered() : 0;
    if (flags & TCP_RST) {
      // Its numbers are noted only once it is in S's window: a forged RST's ACK and TSval move nothing.
      if (!this.inSendWindowOfS(c, seg.seq, now)) {
        this.stats.drops['out-of-window']++;
        return;
      }
      if (c.rstP) {
        // Both servers aborted: what S covered of P's held bytes, then P's RST.
        abortBoth(this, c, now);
        return;
      }
      // S aborted alone. Degrade: P decides alone now.
      degrade(this, c, 'secondary reset');
      return;
    }
    if (flags & TCP_ACK_FLAG) noteAck(c, 'S', seg);
    noteTs(c, 'S', seg);
    if (seg.payloadLength > 0 && seqLt(seg.seq, c.relNxt)) secondaryRetransmission(this, c, seg, now);
    let added = -1;
    if (seg.payloadLength > 0) {
      if (c.store.size + seg.payloadLength > this.cfg.maxStoredBytes) {
        this.stats.drops['store-full']++;
      } else if (
        this.overBudget(seg.payloadLength, c.store.size === 0) &&
        !(c.held.length && seqLt(seg.seq, c.held[c.held.length - 1]!.end))
      ) {
        // Over the budget, S's bytes are taken only where P waits with its own (they free memory), or as the connection's first.
        this.stats.drops['memory-full']++;
      } else {
        added = c.store.insert(seg.seq, seg.payload);
      }
    }
    if (flags & TCP_FIN) c.finS = seqAdd(seg.seq, seg.payloadLength);
    if (seg.payloadLength > 0) {
      const end = seqAdd(seg.seq, seg.payloadLength);
      if (c.sMax === null || seqGt(end, c.sMax)) c.sMax = end;
    }
    const covered = mayCover ? c.sCovered() : null;
    if (!hadAckS || c.ackS !== ackSBefore || (covered !== null && covered !== coveredBefore)) c.sProgressAt = now;
    if (c.held.length) {
      releaseCovered(this, c, now, covered ?? c.sCovered());
      // S repeating bytes we have: its retransmission timer fired, so it is
      // waiting for the client to acknowledge what both servers produced — and
      // the client cannot before it gets it. Send that part now.
      if (c.held.length && added === 0) releasePrefix(this, c);
      checkStall(this, c, now);
    }
    if (c.phase === 'merging' && seg.seqLength === 0) pureAck(this, c, -1, pkt, seg, false, 'S');
    else maybeAck(this, c);
  }

  // --- the client's segments to P (NFQUEUE PREROUTING), the demultiplexer ------

  /**
   * A client segment for P's TCP. Its ACK, SACK blocks and timestamp echo are
   * moved from S's spaces into P's before P's TCP sees it. Verdict now.
   */
  fromClient(id: number, pkt: Buffer, now: number, csum: ChecksumState = 'unverified'): void {
    this.now = now;
    const seg = this.parseOrDrop(id, pkt, csum);
    if (!seg) return;
    const c = this.find(seg.src, seg.srcPort, seg.dstPort);
    if (c?.inKernel && !seg.has(TCP_SYN)) this.takeFromKernel(c, takenBy('client', seg));
    if (c && this.offload) this.touched.add(c);
    if (!c || c.phase === 'handshake') {
      // A new connection's SYN (or a segment we cannot translate yet): P's TCP
      // may see it as it is; anything it answers goes through fromPrimary.
      this.sink.accept(id);
      return;
    }
    const flags = seg.flags;
    // Only a segment in the connection's windows changes what we know of it
    // (RFC 5961): a blind one — a RST, an ACK, a FIN at a guessed number — is
    // still translated and handed to P's TCP, which applies the same checks.
    if (flags & TCP_RST) {
      refresh(this, c, now);
      if (exactClientSeq(c, seg.seq)) {
        c.phase = 'closed';
        c.lastSeen = now;
        this.ended(c, now);
      }
    } else if (acceptableFromClient(c, seg)) {
      noteClient(c, seg, now);
      if (c.finClient && c.finReleased) this.ended(c, now);
    }
    if (c.deltaSeq === 0 && c.tsOffset === 0) {
      this.sink.accept(id);
      return;
    }
    translateClient(c, seg);
    this.stats.translatedInbound++;
    this.sink.accept(id, pkt);
  }

  // --- failure of the secondary (§6) and timers -----------------------------

  /**
   * The secondary failed: release everything held, stop merging. Every
   * connection keeps Δseq and the timestamp offset for its whole life; new
   * connections are plain (Δseq 0).
   */
  secondaryFailed(): void {
    this.beginAlone();
    while (!this.goAlone(Infinity));
  }

  /**
   * The secondary failed, in steps (a large table would stall the bridge for
   * a whole pass): from here on the merger runs alone; goAlone() then turns
   * the connections primary-only, `max` at a time, until it returns true.
   * Meanwhile a connection not yet turned turns as P's next segment of it
   * arrives (fromPrimary). `first`: connections to turn before the others
   * (those whose stolen segments the kernel keeps: they leave with the turn).
   */
  beginAlone(first: Iterable<OffloadKey> = []): void {
    this.alone = true;
    // Both passes are lazy: a table of 100,000 read here at once held the event loop 0.6 s.
    this.toKernelAtOnce = this.offload?.primaryOnlyMany ? this.everyConn() : null;
    this.goingAlone = this.aloneOrder(first);
  }

  /**
   * Connections the kernel merges go primary-only there in batches of
   * KERNEL_BATCH, one per step ahead of its turns (the egress program and
   * the match look for that entry first): P's segments of them leave from
   * then on, whether or not the steps have reached them. The steps then
   * take their merge state (the bridge's side).
   */
  private releaseInKernelAtOnce(): void {
    const many = this.offload?.primaryOnlyMany;
    const it = this.toKernelAtOnce;
    if (!many || !it) return;
    const conns: Conn[] = [];
    while (conns.length < KERNEL_BATCH) {
      const r = it.next();
      if (r.done) {
        this.toKernelAtOnce = null;
        break;
      }
      const c = r.value;
      if (c.inKernel && c.phase === 'merging' && !c.outInKernel) conns.push(c);
    }
    if (!conns.length) return;
    const n = many.call(
      this.offload,
      conns.map((c) => ({
        c: offloadKey(this, c),
        dseq: c.deltaSeq,
        dts: c.tsOffset,
        timestamps: c.tsOn,
        wscaleP: c.wsP,
        wscaleS: c.wsS,
      })),
    );
    for (let i = 0; i < n; i++) conns[i]!.outInKernel = true;
    this.stats.aloneTurns.inKernelAtOnce += n;
    // The map took no more: the rest turn in the steps, or as their segments come.
    if (n < conns.length) this.toKernelAtOnce = null;
  }
  private toKernelAtOnce: Iterator<Conn> | null = null;

  private *aloneOrder(first: Iterable<OffloadKey>): Generator<Conn> {
    for (const f of first) {
      const c = this.find(f.client, f.clientPort, f.servicePort);
      if (c) yield c;
    }
    yield* this.everyConn();
  }

  /** Turns at most `max` more connections primary-only (see beginAlone); true when none is left. */
  goAlone(max: number): boolean {
    const it = this.goingAlone;
    if (!it) return true;
    this.releaseInKernelAtOnce();
    for (let i = 0; i < max; i++) {
      const r = it.next();
      if (r.done) {
        this.goingAlone = null;
        this.toKernelAtOnce = null;
        return true;
      }
      const c = r.value;
      if (c.phase === 'handshake') {
        if (c.heldSyn) this.completeHandshake(c, true);
      } else if (c.phase === 'merging') {
        this.mergingAlone(c);
        this.stats.aloneTurns.steps++;
      }
    }
    return false;
  }

  /** A merged connection goes on primary-only (the secondary failed); P's stolen segments leave once it is: at once. */
  private mergingAlone(c: Conn): void {
    const stashed = this.takeFromKernel(c, 'alone', false);
    degrade(this, c, 'secondary failed', false, true);
    this.mergeStashed(c, stashed);
  }
  private goingAlone: Iterator<Conn> | null = null;

  /** Whether connections are still turning primary-only, step by step (beginAlone). */
  get steppingAlone(): boolean {
    return this.goingAlone !== null;
  }

  /** The secondary is back (new connections are replicated again). */
  secondaryRejoined(): void {
    // A step-wise failure not finished yet finishes first: those connections stay primary-only.
    while (!this.goAlone(Infinity));
    this.alone = false;
  }

  /** When poll() next has work (a stalled connection), or null. */
  nextTimeout(): number | null {
    let t: number | null = null;
    for (const c of this.stalled) {
      const at = c.stallAt! + this.cfg.stallMs;
      if (t === null || at < t) t = at;
    }
    return t;
  }

  /**
   * Timers: sends the covered part of segments stalled longer than stallMs,
   * and (at most once a second) expires idle, half-open and closed
   * connections. Returns how many connections were removed.
   */
  poll(now: number): number {
    this.now = now;
    this.pool.trim(now);
    for (const c of [...this.stalled]) {
      if (c.stallAt !== null && now - c.stallAt >= this.cfg.stallMs) {
        releasePrefix(this, c);
        checkStall(this, c, now);
      }
    }
    for (const c of [...this.earlyEnded]) {
      this.earlyEnded.delete(c);
      if (c.phase === 'merging' && c.earlyEndAt !== null) releaseCovered(this, c, now);
    }
    // Every connection is looked at once a second, in slices: a call looks
    // at the share of the table the time since the last one is of a second
    // (all of it after a second or more), so a large table never stalls the
    // bridge for a whole pass at once.
    const elapsed = now - this.scanAt;
    this.scanAt = now;
    let n = 0;
    if (elapsed >= 1000) {
      this.scan = null;
      for (const c of this.everyConn()) n += this.expire(c, now);
    } else {
      if (!this.scan) {
        this.scan = this.everyConn();
        this.scanSize = this.count;
      }
      // At least one look per call: a pass begun on an empty table must end (and the next see what came since).
      const size = Math.max(this.scanSize, this.count);
      for (
        let budget = Math.max(1, Math.ceil((size * Math.max(0, elapsed)) / 1000));
        budget > 0 && this.scan;
        budget--
      ) {
        const r = this.scan.next();
        if (r.done) {
          this.scan = null;
          break;
        }
        n += this.expire(r.value, now);
      }
    }
    if (now >= this.nextExpiry) {
      this.nextExpiry = now + 1000;
      this.adopted.expire(now, this.cfg.idleTimeoutMs);
      this.expireEarlyS(now);
    }
    this.stats.expired += n;
    return n;
  }

  /** When segments of S's were last lost before the merger saw them (secondaryUnseen). */
  private sUnseenAt = -Infinity;

  /**
   * Segments of the secondary's may have been lost at `now` before the merger
   * saw them (the bridge's input queue overran under a burst): S's TCP sends
   * them again, so no connection's silence is judged across this moment.
   */
  secondaryUnseen(now: number): void {
    this.sUnseenAt = now;
  }

  /** The merger has seen every segment the secondary sent before this time (secondarySeenUntil). */
  private sSeenUntil = Infinity;

  /**
   * Every segment of the secondary's that reached the bridge before `t` has
   * been handed to the merger (its queue held a backlog until then): no
   * connection's silence is judged past `t`. Infinity: caught up.
   */
  secondarySeenUntil(t: number): void {
    this.sSeenUntil = t;
  }

  /** The slice of the once-a-second pass under way (poll). */
  private scan: Iterator<Conn> | null = null;
  /** The table's size when the pass began: its slices are shares of that. */
  private scanSize = 0;
  private scanAt = -Infinity;

  /** Every tracked connection; removing the one just yielded is allowed. */
  private *everyConn(): Generator<Conn> {
    for (const m of this.conns.values()) for (const c of m.values()) yield c;
  }

  /** The pass's look at one connection: a silent secondary acted on, an expired entry removed (1) or kept (0). */
  private expire(c: Conn, now: number): number {
    this.checkSilence(c, now);
    // The offload's segments count too: looked at only for a connection about to go.
    if (expired(this.cfg, c, now)) refresh(this, c, now);
    if (!expired(this.cfg, c, now)) return 0;
    this.remove(c);
    return 1;
  }

  // --- internals ---------------------------------------------------------------

  /** S's SYN(-ACK), seen at `at`, into the handshake of `c`. */
  private synFromS(c: Conn, seg: TcpSegment, opts: readonly TcpOption[], at: number): void {
    c.synS = synInfo(seg, opts, at);
    if (seg.has(TCP_ACK_FLAG)) noteAck(c, 'S', seg);
    this.completeIfPaired(c);
  }

  /** Merges the handshake of `c` once both servers' SYN(-ACK)s are in, for the same SYN, and paired (synsPaired). */
  private completeIfPaired(c: Conn): void {
    if (c.synP && c.synS && this.sameSyn(c) && synsPaired(c.synP, c.synS)) this.completeHandshake(c, false);
  }

  /**
   * Whether both servers' SYN-ACKs answer the same SYN of the client (they
   * acknowledge the same ISN): one forged with the secondary's address for
   * a connection P answers would otherwise set a wrong Δseq. A mismatched
   * S half is forgotten (counted); the genuine one, or S's retransmission,
   * completes the handshake. S's socket that sent it — most often one left
   * from an earlier connection on these ports, which would answer the
   * client's new SYN with an ACK instead of a SYN-ACK — is reset: the
   * client's SYN, sent again, then makes S's TCP answer afresh.
   */
  private sameSyn(c: Conn): boolean {
    if (!c.hasAckP || !c.hasAckS || c.ackP === c.ackS) return true;
    this.resetHalfOpenS(c.client, c.clientPort, c.servicePort, { ack: c.ackS });
    c.synS = null;
    c.hasAckS = false;
    this.stats.drops['unmatched-syn']++;
    return false;
  }

  private static earlyKey(client: IpAddr, clientPort: number, servicePort: number): string {
    return `${client}:${connKey(clientPort, servicePort)}`;
  }

  /**
   * Keeps a copy of S's SYN(-ACK) that came before P's (bounded, oldest out
   * first). One sent again (the same ACK) keeps its place and its first
   * arrival: the map stays in the order the handshakes were first heard.
   */
  private keepEarlyS(client: IpAddr, seg: TcpSegment, pkt: Buffer, now: number): void {
    const key = Merger.earlyKey(client, seg.dstPort, seg.srcPort);
    const ack = seg.flags & TCP_ACK_FLAG ? seg.ack : null;
    const had = this.earlyS.get(key);
    if (had && had.ack === ack) {
      had.pkt = Buffer.from(pkt);
      had.at = now;
      return;
    }
    this.earlyS.delete(key); // another handshake on these ports: the newest, at the back
    while (this.earlyS.size >= this.cfg.maxPendingHandshakes) {
      const oldest = this.earlyS.keys().next().value!;
      this.earlyS.delete(oldest);
      this.stats.drops['unmatched-syn']++;
    }
    this.earlyS.set(key, {
      pkt: Buffer.from(pkt),
      first: now,
      at: now,
      client,
      clientPort: seg.dstPort,
      servicePort: seg.srcPort,
      ack,
    });
  }

  /** P's SYN(-ACK) created `c`: S's, if it came first, joins it. */
  private takeEarlyS(c: Conn): void {
    if (!this.earlyS.size) return;
    const key = Merger.earlyKey(c.client, c.clientPort, c.servicePort);
    const early = this.earlyS.get(key);
    if (!early) return;
    this.earlyS.delete(key);
    const parsed = parseIpTcp(early.pkt);
    if (parsed instanceof WireError) return;
    const opts = parsed.tcp.options();
    if (opts instanceof WireError) return;
    this.synFromS(c, parsed.tcp, opts, early.at);
  }

  /**
   * S's early SYN-ACKs that no SYN-ACK of P's joined within EARLY_SYNACK_MS
   * of the first: P's TCP has no such connection (it ended before this
   * bridge knew of it, began while P served alone, or P never got the SYN),
   * so S's half-open socket is reset rather than left to answer a later
   * connection on the same ports. S's early SYNs (connections the servers
   * open) are only forgotten, after handshakeTimeoutMs: a RST would abort
   * S's connect. Oldest first (the map is in first-arrival order).
   */
  private expireEarlyS(now: number): void {
    const timeout = this.cfg.handshakeTimeoutMs;
    for (const [key, e] of this.earlyS) {
      const age = now - e.first;
      if (age < Math.min(EARLY_SYNACK_MS, timeout)) break;
      if (e.ack !== null) this.resetHalfOpenS(e.client, e.clientPort, e.servicePort, e);
      else if (age <= timeout) continue;
      this.earlyS.delete(key);
      this.stats.drops['unmatched-syn']++;
    }
  }

  /**
   * S's TCP holds a half-open socket (it sent the SYN-ACK acknowledging
   * `s.ack`, the client's ISN + 1) that the pair will never merge: a RST at
   * that number, from the client, into S's own stack drops it (prompts.ts).
   * Left, it would answer a new connection on the same ports — a client
   * reuses them soon — with an ACK for the old one instead of a SYN-ACK, and
   * that connection would wait for a SYN-ACK of S's that never comes.
   */
  private resetHalfOpenS(client: IpAddr, clientPort: number, servicePort: number, s: { ack: number | null }): void {
    if (s.ack === null) return;
    this.stats.halfOpenResets++;
    this.sink.toSecondary(halfOpenReset(client, clientPort, servicePort, s.ack, serviceFor(this.cfg, client)));
  }

  /**
   * Whether `seq` (S's space) lies where S's own RST can: from what the
   * client may have acknowledged (a RST answering its segment carries its
   * ACK) up to what S has sent (an abort carries S's next number). A blind
   * attacker with the secondary's address hits this range only by luck.
   */
  private inSendWindowOfS(c: Conn, seq: number, now: number): boolean {
    refresh(this, c, now);
    const lo = c.hasAckClient ? seqMin(c.ackClient, c.relNxt) : c.isn;
    let hi = c.relNxt;
    if (c.sMax !== null && seqGt(c.sMax, hi)) hi = c.sMax;
    if (c.finS !== null && seqGt(seqAdd(c.finS, 1), hi)) hi = seqAdd(c.finS, 1);
    return seqGe(seq, lo) && seqLe(seq, hi);
  }

  /** Acts on a secondary silent on `c` (merge/expiry.ts). */
  private checkSilence(c: Conn, now: number): void {
    const s = silence(this.cfg, c, now, this.alone, this.sUnseenAt, this.sSeenUntil);
    if (!s) return;
    this.stats.secondarySilent++;
    if (s.kind === 'handshake-alone') {
      this.completeHandshake(c, true);
      this.diverged.add(c);
      this.event(`primary-only: the secondary did not answer the SYN in ${s.waitedMs} ms`, c);
    } else {
      degrade(this, c, `the secondary made no progress for ${s.silentMs} ms (${waitingFor(c)})`, true);
    }
  }

  /** The TCP segment in `pkt`, or null after dropping it (and counting) when malformed or corrupted. */
  private parseOrDrop(id: number, pkt: Buffer, csum: ChecksumState): TcpSegment | null {
    const parsed = parseIpTcp(pkt);
    // An IPv6 segment is served only with an IPv6 service address to answer from.
    if (parsed instanceof WireError || (isIp6(parsed.tcp.src) && !this.cfg.service6)) {
      this.stats.drops.malformed++;
      this.sink.drop(id);
      return null;
    }
    const seg = parsed.tcp;
    if (csum === 'unverified' && !seg.checksumValid()) {
      this.stats.drops['bad-checksum']++;
      this.sink.drop(id);
      return null;
    }
    return seg;
  }
}

/** What a connection waits for from the secondary, for the log line that gives up on it. */
function waitingFor(c: Conn): string {
  const what: string[] = [];
  if (c.held.length)
    what.push(
      `${c.held.reduce((n, h) => n + h.seg.payloadLength, 0)} bytes of P's held in ${c.held.length} segment(s)`,
    );
  if (c.rstP) what.push('P reset it');
  if (c.hasAckP && c.hasAckS && seqGt(c.ackP, c.ackS))
    what.push(`S acknowledged ${seqSub(c.ackP, c.ackS)} bytes less of the client's`);
  if (c.inKernel) what.push('merged in the kernel');
  return what.join('; ');
}

/** What brought a connection from the kernel's merge to the bridge: whose segment, and what it was ("p/data"). */
function takenBy(side: string, seg: TcpSegment): string {
  const f = seg.flags;
  const what = f & TCP_RST ? 'rst' : f & TCP_FIN ? 'fin' : seg.payloadLength > 0 ? 'data' : 'ack';
  return `${side}/${what}`;
}
