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
 */
import { ipv4ToString } from '../wire/addr.js';
import { WireError } from '../wire/error.js';
import { IPPROTO_TCP, Ipv4Packet } from '../wire/ipv4.js';
import { seqAdd, seqGt, seqGe, seqLe, seqLt, seqMax, seqMin, seqSub } from '../wire/seq.js';
import {
  findTcpOption,
  OPT_MSS,
  OPT_NOP,
  OPT_SACK,
  OPT_SACK_BLOCK_LEN,
  OPT_SACK_PERMITTED,
  OPT_WSCALE,
  MAX_WSCALE,
  parseTcpOptions,
  type TcpOption,
} from '../wire/tcp-options.js';
import { buildIpv4Tcp, TcpSegment, trimPayloadFront, TCP_ACK_FLAG, TCP_ECE, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../wire/tcp.js';
import { ByteStore } from './byte-store.js';

/**
 * The kernel's share of the client's segments (io/xlate.ts): once a
 * connection's offsets are known it translates the common client segment
 * itself, so those never reach fromClient. What the merger still needs of
 * them — the client's highest ACK and sequence number, when it was last
 * heard — it reads back when it needs it (rarely: retransmissions, expiry,
 * a reset).
 */
export interface InboundOffload {
  add(c: { client: number; service: number; clientPort: number; servicePort: number }, deltaSeq: number, tsOffset: number, timestamps: boolean): void;
  remove(c: { client: number; service: number; clientPort: number; servicePort: number }): void;
  seen(c: { client: number; service: number; clientPort: number; servicePort: number }): { packets: number; ageMs?: number; ackMax?: number; nxtMax?: number } | null;
}

/** Where the merger's decisions go. The shell maps these onto NFQUEUE verdicts and the raw socket. */
export interface MergerSink {
  /** Let a queued packet continue; `packet` (the same bytes, rewritten) when it was modified. */
  accept(id: number, packet?: Buffer): void;
  drop(id: number): void;
  /** Send a new packet (to the client) through the raw socket. */
  send(packet: Buffer): void;
}

export interface MergerConfig {
  /** The service address (VIP) clients connect to. */
  service: number;
  /** Largest packet the kernel hands us unsegmented without GSO (the LAN MTU). */
  mtu: number;
  /** Idle time after which an established connection is forgotten, ms. */
  idleTimeoutMs: number;
  /** Time a half-open connection (handshake not merged) is kept, ms. */
  handshakeTimeoutMs: number;
  /** Time a closed connection's translation is kept for late segments, ms. */
  lingerMs: number;
  /**
   * How long the first held segment may sit partly covered by S before the
   * covered part is sent on its own (S may be waiting for the client's ACK of
   * it: a small congestion window after loss), ms.
   */
  stallMs: number;
  /** Upper bound on S bytes stored per connection (backpressure, not memory growth). */
  maxStoredBytes: number;
  /** Connections tracked at most; a new one beyond it is refused (P's SYN-ACK dropped). */
  maxConnections: number;
  /**
   * How long S may make no progress on a connection that waits for it (P's
   * SYN-ACK or bytes held, or the client's bytes acknowledged by P only)
   * before the connection goes on primary-only, ms. A live secondary whose
   * socket for it vanished (or never answered the SYN) must not hold it
   * forever; the secondary is told to reset it if it takes over.
   */
  secondarySilenceMs: number;
  /**
   * Handshakes waiting for the other server's SYN(-ACK) at most: each holds a
   * packet in the kernel's queue, which must keep room for established
   * connections (a SYN flood must not starve them).
   */
  maxPendingHandshakes: number;
  /**
   * P's stream ended (its FIN) where S's goes on: P's server may have died
   * (its kernel closes the socket). The FIN is held this long — time for the
   * primary to give up its role (track) so the secondary continues the
   * connection — before it counts as a divergence and goes out, ms.
   */
  earlyEndGraceMs: number;
}

export const DEFAULT_MERGER_CONFIG: Omit<MergerConfig, 'service'> = {
  mtu: 1500,
  idleTimeoutMs: 2 * 60 * 60 * 1000,
  handshakeTimeoutMs: 30_000,
  lingerMs: 60_000,
  stallMs: 5,
  maxStoredBytes: 8 << 20,
  maxConnections: 65536,
  maxPendingHandshakes: 4096,
  secondarySilenceMs: 2000,
  earlyEndGraceMs: 3000,
};

export type ConnPhase = 'handshake' | 'merging' | 'degraded' | 'closed';

export type DropReason = 'unknown-connection' | 'malformed' | 'diverted-unknown' | 'store-full' | 'degraded-diverted' | 'table-full' | 'client-acknowledged' | 'bad-checksum';

/**
 * What the kernel says of a packet's TCP checksum (NFQUEUE skbinfo):
 * 'partial' — not computed yet (CHECKSUM_PARTIAL: offload pending), nothing
 * to verify; 'verified' — the NIC or the stack checked it; 'unverified' —
 * verify it here. A corrupted segment must be dropped before the merger
 * rewrites it and computes a valid sum over the bad bytes.
 */
export type ChecksumState = 'partial' | 'verified' | 'unverified';

export interface MergerStats {
  releasedSegments: number;
  releasedBytes: number;
  retransmissions: number;
  /** Retransmissions of S's of bytes already released, forwarded to the client (§4). */
  secondaryRetransmissions: number;
  /** Prefixes of held segments sent early to break a stall (see releasePrefix). */
  prefixReleases: number;
  /** Bytes cut from the front of held segments because a prefix had sent them already. */
  prefixBytesTrimmed: number;
  acksSent: number;
  divertedSegments: number;
  divertedBytes: number;
  translatedInbound: number;
  divergences: number;
  handshakes: number;
  expired: number;
  /** Connections put on primary-only because S made no progress on them for secondarySilenceMs. */
  secondarySilent: number;
  /** Connections adopted untranslated (this node served them alone before it became primary). */
  adopted: number;
  drops: Record<DropReason, number>;
}

interface Held {
  id: number;
  pkt: Buffer;
  /** The segment in `pkt`, parsed once when it arrived. */
  seg: TcpSegment;
  /** Start and end (exclusive, SYN/FIN counted) in S's sequence space. */
  start: number;
  end: number;
  gso: boolean;
}

/** What one side's SYN (or SYN-ACK) said. */
interface SynInfo {
  isn: number;
  mss: number;
  wscale: number; // −1: no window scaling
  sackOk: boolean;
  ts: number | null;
  /** The TSecr it carried (a SYN-ACK's: the client's first TSval). */
  tsecr: number | null;
  ecn: boolean;
  window: number;
}

export class Conn {
  phase: ConnPhase = 'handshake';
  /** The SYN of each side, until the handshake is merged. */
  synP: SynInfo | null = null;
  synS: SynInfo | null = null;
  /** P's SYN(-ACK), held until S's arrives. */
  heldSyn: Held | null = null;
  deltaSeq = 0;
  tsOffset = 0;
  tsOn = false;
  wsP = 0;
  wsS = 0;
  /** Next S-space sequence number to release to the client. */
  relNxt = 0;
  /** P's segments held until S covers them, in order. */
  held: Held[] = [];
  store: ByteStore = new ByteStore(0);
  /** S-space sequence number of S's FIN, or null. */
  finS: number | null = null;
  finReleased = false;
  finClient = false;
  ackP = 0;
  ackS = 0;
  hasAckP = false;
  hasAckS = false;
  /** The SACK blocks of each server's latest ACK (the client's sequence space, shared by both). */
  sackP: Array<[number, number]> = [];
  sackS: Array<[number, number]> = [];
  winP = 0; // bytes (scaled)
  winS = 0;
  ackSent = 0;
  /** The highest ACK the client sent (S's space), once hasAckClient. */
  ackClient = 0;
  hasAckClient = false;
  /** The S-space ISN of the servers' side (the merged SYN-ACK's, or SYN's): a client ACK must be above it. */
  isn = 0;
  /** The end of the client's last accepted segment (its sequence space), once hasClientNxt. */
  clientNxt = 0;
  hasClientNxt = false;
  /** How many of the client's segments the offload had handled at the last look. */
  offloadPackets = 0;
  /** Whether any ACK went to the client yet (ackSent means nothing before). */
  ackSentValid = false;
  edgeSent = 0;
  tsvalS = 0;
  tsvalP = 0; // already in S's space
  tsecr = 0;
  lastSeen: number;
  /** When the connection was created. */
  readonly createdAt: number;
  /**
   * The client acknowledged the handshake (any ACK from it after the merge).
   * Until then the connection is half-open and expires after
   * handshakeTimeoutMs, whatever its phase (a SYN flood's entries).
   */
  established = false;
  /** When both FINs were seen (the linger starts), or null. */
  closedAt: number | null = null;

  constructor(
    readonly client: number,
    readonly clientPort: number,
    readonly servicePort: number,
    now: number,
  ) {
    this.lastSeen = now;
    this.createdAt = now;
  }

  /** Highest S-space sequence number S is known to have sent (out-of-order data included), or null. */
  sMax: number | null = null;
  /** Since when the first held segment has been partly covered by S without progress, or null. */
  stallAt: number | null = null;
  /** When P's SYN(-ACK) was first held waiting for S's, or null. */
  heldSynAt: number | null = null;
  /** When S last made progress: its ACK or what it produced moved forward (or the merge). */
  sProgressAt = 0;
  /** Since when (as seen by poll) the connection waits for S, or null. */
  waitingSince: number | null = null;
  /** Since when P's FIN is held because S's stream goes on past it, or null. */
  earlyEndAt: number | null = null;

  /** The first byte at or after `from` the client has not acknowledged (S-space). */
  notAcked(from: number): number {
    return this.hasAckClient && seqGt(this.ackClient, from) ? this.ackClient : from;
  }

  /** Whether the connection waits for S: P's bytes held, or the client's acknowledged by P only. */
  waitsForS(): boolean {
    if (this.phase !== 'merging') return false;
    return this.held.length > 0 || (this.hasAckP && this.hasAckS && seqGt(this.ackP, this.ackS));
  }

  /**
   * S-space end of what S has produced, counting S's FIN. A hole (a diverted
   * segment lost between S and P) does not stop it: S's sequence number past
   * the hole proves S produced the bytes in it — they wait in S's send queue
   * and reach the client from S after a failover. Only their comparison with
   * P's bytes is skipped.
   */
  sCovered(): number {
    let end = this.store.contiguousEnd();
    if (this.sMax !== null && seqGt(this.sMax, end)) end = this.sMax;
    return this.finS !== null && end === this.finS ? seqAdd(end, 1) : end;
  }
}

/** A connection this node served alone before it became the merging primary. */
interface Adopted {
  /** When a segment of it last passed (idle expiry). */
  seen: number;
  /**
   * The secondary's TCP has a socket for it too: its handshake straddled our
   * start (the SYN reached both, P's TCP answered before our rules). That copy
   * is in another sequence space and must never be continued: reported with
   * the diverged connections, so the secondary resets it if it takes over.
   */
  secondaryCopy: boolean;
}

function connKey(port: number, servicePort: number): number {
  return port * 65536 + servicePort;
}

function newStats(): MergerStats {
  return {
    releasedSegments: 0,
    releasedBytes: 0,
    retransmissions: 0,
    secondaryRetransmissions: 0,
    prefixReleases: 0,
    prefixBytesTrimmed: 0,
    acksSent: 0,
    divertedSegments: 0,
    divertedBytes: 0,
    translatedInbound: 0,
    divergences: 0,
    handshakes: 0,
    expired: 0,
    secondarySilent: 0,
    adopted: 0,
    drops: { 'unknown-connection': 0, malformed: 0, 'diverted-unknown': 0, 'store-full': 0, 'degraded-diverted': 0, 'table-full': 0, 'client-acknowledged': 0, 'bad-checksum': 0 },
  };
}

/** The SACK blocks of a segment, whole blocks only ([] without the option). */
function sackBlocks(seg: TcpSegment): Array<[number, number]> {
  const at = findTcpOption(seg.buf, seg.optionsOffset, seg.optionsEnd, OPT_SACK);
  if (at < 0) return [];
  const n = Math.floor((seg.buf[at + 1]! - 2) / OPT_SACK_BLOCK_LEN);
  const out: Array<[number, number]> = [];
  for (let i = 0; i < n; i++) out.push([seg.buf.readUInt32BE(at + 2 + i * OPT_SACK_BLOCK_LEN), seg.buf.readUInt32BE(at + 6 + i * OPT_SACK_BLOCK_LEN)]);
  return out;
}

function synInfo(seg: TcpSegment, opts: readonly TcpOption[]): SynInfo {
  const info: SynInfo = { isn: seg.seq, mss: 536, wscale: -1, sackOk: false, ts: null, tsecr: null, ecn: seg.has(TCP_ECE), window: seg.window };
  for (const o of opts) {
    if (o.kind === 'mss') info.mss = o.mss;
    else if (o.kind === 'wscale') info.wscale = Math.min(o.shift, MAX_WSCALE);
    else if (o.kind === 'sack-permitted') info.sackOk = true;
    else if (o.kind === 'timestamp') {
      info.ts = o.tsval;
      info.tsecr = o.tsecr;
    }
  }
  return info;
}

export class Merger {
  /** client address → (client port, service port) → connection */
  private readonly conns = new Map<number, Map<number, Conn>>();
  private count = 0;
  private readonly stalled = new Set<Conn>();
  /** Connections holding P's SYN(-ACK) until S's arrives. */
  private readonly pending = new Set<Conn>();
  /** Connections whose P's FIN is held while S's stream goes on (earlyEndGraceMs). */
  private readonly earlyEnded = new Set<Conn>();
  /** Connections degraded because the replicas differed (the secondary must not continue them). */
  private readonly diverged = new Set<Conn>();
  /**
   * Connections this node served alone before it became the primary (the
   * secondary took over, then the other node rejoined as secondary): their
   * numbers are the client's already, so P's segments pass unchanged.
   * client → (client port, service port) → when last seen, and whether S has a copy.
   */
  private readonly adopted = new Map<number, Map<number, Adopted>>();
  private nextExpiry = 0;
  /** After a secondary failure (§6): every connection primary-only, new ones too. */
  private alone = false;
  readonly stats: MergerStats = newStats();
  readonly cfg: MergerConfig;

  constructor(
    cfg: Partial<MergerConfig> & { service: number },
    private readonly sink: MergerSink,
    /** Divergence and other rare events, for the shell's log. Never called per packet in normal operation. */
    private readonly onEvent: (what: string, conn: { readonly client: number; readonly clientPort: number; readonly servicePort: number }) => void = () => {},
    /** The kernel's translation of client segments, where the shell has it. */
    private readonly offload: InboundOffload | null = null,
  ) {
    this.cfg = { ...DEFAULT_MERGER_CONFIG, ...cfg };
  }

  /** The connection's address as the offload keys it. */
  private addr(c: Conn): { client: number; service: number; clientPort: number; servicePort: number } {
    return { client: c.client, service: this.cfg.service, clientPort: c.clientPort, servicePort: c.servicePort };
  }

  /**
   * Takes in what the offload saw of the client since the last look: when it
   * was last heard, and its ACK and sequence end — the ACK only if it
   * acknowledges something released, no more (RFC 5961, as fromClient).
   */
  private refresh(c: Conn, now: number): void {
    if (!this.offload || c.phase === 'handshake') return;
    const seen = this.offload.seen(this.addr(c));
    if (!seen || seen.packets === c.offloadPackets) return;
    c.offloadPackets = seen.packets;
    if (seen.ageMs !== undefined) c.lastSeen = Math.max(c.lastSeen, now - seen.ageMs);
    if (seen.ackMax !== undefined && seqGt(seen.ackMax, c.isn) && seqLe(seen.ackMax, c.relNxt)) {
      c.established = true;
      if (!c.hasAckClient || seqGt(seen.ackMax, c.ackClient)) {
        c.ackClient = seen.ackMax;
        c.hasAckClient = true;
      }
    }
    if (seen.nxtMax !== undefined && (!c.hasClientNxt || seqGt(seen.nxtMax, c.clientNxt))) {
      c.clientNxt = seen.nxtMax;
      c.hasClientNxt = true;
    }
  }

  get connections(): number {
    return this.count;
  }

  /** Connections by phase (for metrics). */
  phases(): Record<ConnPhase, number> {
    const r: Record<ConnPhase, number> = { handshake: 0, merging: 0, degraded: 0, closed: 0 };
    for (const m of this.conns.values()) for (const c of m.values()) r[c.phase]++;
    return r;
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
  divergedConnections(): Array<{ client: number; clientPort: number; servicePort: number }> {
    const out = [...this.diverged].map((c) => ({ client: c.client, clientPort: c.clientPort, servicePort: c.servicePort }));
    for (const [client, m] of this.adopted) {
      for (const [key, a] of m) if (a.secondaryCopy) out.push({ client, clientPort: Math.floor(key / 65536), servicePort: key % 65536 });
    }
    return out;
  }

  /** Connections waiting for S (segments held, or the client's bytes acknowledged by P only), for diagnostics (at most `max`). */
  stuck(max = 5): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const m of this.conns.values()) {
      for (const c of m.values()) {
        if (out.length >= max) return out;
        if (!c.held.length && !c.heldSyn && !c.waitsForS()) continue;
        out.push({
          client: `${ipv4ToString(c.client)}:${c.clientPort}`,
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

  /** Adopts connections this node already serves alone (see `adopted`). */
  adopt(keys: ReadonlyArray<{ client: number; clientPort: number; servicePort: number }>, now: number): void {
    for (const k of keys) {
      // Listed after our rules went in, a connection whose SYN-ACK came
      // through us is merged, not adopted.
      if (this.find(k.client, k.clientPort, k.servicePort)?.synP) continue;
      let m = this.adopted.get(k.client);
      if (!m) this.adopted.set(k.client, (m = new Map()));
      const key = connKey(k.clientPort, k.servicePort);
      const a = m.get(key);
      if (a) a.seen = now;
      else {
        this.stats.adopted++;
        m.set(key, { seen: now, secondaryCopy: false });
      }
    }
  }

  /** Whether (client, ports) is adopted; if so, notes that S's TCP has a copy of it. */
  private adoptedCopiedByS(client: number, clientPort: number, servicePort: number): boolean {
    const a = this.adopted.get(client)?.get(connKey(clientPort, servicePort));
    if (!a) return false;
    if (!a.secondaryCopy) {
      a.secondaryCopy = true;
      this.onEvent('not replicated (adopted), but the secondary has a copy: it will reset it if it takes over', { client, clientPort, servicePort });
    }
    return true;
  }

  /** Whether (client, ports) is an adopted connection; refreshes its idle clock. */
  private adoptedSeen(client: number, clientPort: number, servicePort: number, now: number, end: boolean): boolean {
    const m = this.adopted.get(client);
    const key = connKey(clientPort, servicePort);
    const a = m?.get(key);
    if (!a) return false;
    if (end) {
      m!.delete(key);
      if (m!.size === 0) this.adopted.delete(client);
    } else a.seen = now;
    return true;
  }

  find(client: number, clientPort: number, servicePort: number): Conn | undefined {
    return this.conns.get(client)?.get(connKey(clientPort, servicePort));
  }

  private create(client: number, clientPort: number, servicePort: number, now: number): Conn {
    let m = this.conns.get(client);
    if (!m) {
      m = new Map();
      this.conns.set(client, m);
    }
    const c = new Conn(client, clientPort, servicePort, now);
    m.set(connKey(clientPort, servicePort), c);
    this.count++;
    return c;
  }

  /**
   * Whether a new connection may be tracked: below maxConnections, and, when
   * it will hold P's SYN(-ACK) in the kernel's queue, below maxPendingHandshakes.
   */
  private room(holds: boolean): boolean {
    if (this.count >= this.cfg.maxConnections) return false;
    return !holds || this.pending.size < this.cfg.maxPendingHandshakes;
  }

  /** Forgets `c`, dropping whatever of P's it still held in the kernel's queue. */
  private remove(c: Conn): void {
    if (c.phase !== 'handshake') this.offload?.remove(this.addr(c));
    if (c.heldSyn) this.sink.drop(c.heldSyn.id);
    c.heldSyn = null;
    for (const h of c.held) this.sink.drop(h.id);
    c.held = [];
    this.stalled.delete(c);
    this.pending.delete(c);
    this.diverged.delete(c);
    this.earlyEnded.delete(c);
    const m = this.conns.get(c.client);
    if (m?.delete(connKey(c.clientPort, c.servicePort))) {
      this.count--;
      if (m.size === 0) this.conns.delete(c.client);
    }
  }

  // --- P's own output (NFQUEUE OUTPUT) ----------------------------------------

  /** A segment P's TCP sent to a client. Always ends in a verdict for `id`, now or later. */
  fromPrimary(id: number, pkt: Buffer, gso: boolean, now: number, csum: ChecksumState = 'unverified'): void {
    const seg = this.parseOrDrop(id, pkt, csum);
    if (!seg) return;
    const flags = seg.flags;
    let c = this.find(seg.dst, seg.dstPort, seg.srcPort);
    if (flags & TCP_SYN) {
      const opts = seg.options();
      if (opts instanceof WireError) {
        this.stats.drops.malformed++;
        this.sink.drop(id);
        return;
      }
      if (!c || c.phase === 'closed') {
        if (c) this.remove(c);
        this.adoptedSeen(seg.dst, seg.dstPort, seg.srcPort, now, true); // a new connection on the same ports
        if (!this.room(!this.alone)) {
          this.stats.drops['table-full']++;
          this.sink.drop(id);
          return;
        }
        c = this.create(seg.dst, seg.dstPort, seg.srcPort, now);
      }
      c.lastSeen = now;
      if (c.phase === 'handshake') {
        c.synP = synInfo(seg, opts);
        if (c.heldSyn) this.sink.drop(c.heldSyn.id); // P retransmitted its SYN(-ACK): keep the newest
        c.heldSyn = { id, pkt, seg, start: seg.seq, end: seqAdd(seg.seq, 1), gso };
        c.heldSynAt ??= now;
        this.pending.add(c);
        if (flags & TCP_ACK_FLAG) this.noteAckP(c, seg);
        if (this.alone) this.mergeHandshake(c, true);
        else if (c.synS) this.mergeHandshake(c, false);
        return;
      }
      // A retransmitted SYN(-ACK) of a merged connection: straight through (§4).
      this.release(c, id, pkt, seg, gso, true);
      return;
    }
    // An adopted connection passes unchanged — also when S's SYN-ACK for it
    // reached us (its handshake straddled our start: P's TCP answered the SYN
    // before our rules were in, so we hold only S's half, never P's).
    if ((!c || (c.phase === 'handshake' && !c.synP)) && this.adoptedSeen(seg.dst, seg.dstPort, seg.srcPort, now, (flags & TCP_RST) !== 0)) {
      if (c) {
        this.remove(c);
        this.adoptedCopiedByS(seg.dst, seg.dstPort, seg.srcPort);
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
    if (flags & TCP_ACK_FLAG) this.noteAckP(c, seg);
    this.noteTsP(c, seg);
    const start = seqSub(seg.seq, c.deltaSeq);
    const end = seqAdd(start, seg.seqLength);
    if (flags & TCP_RST) {
      // P aborted. Release only if S aborted too (or S is gone); else hold.
      if (c.phase === 'degraded' || c.phase === 'closed') this.release(c, id, pkt, seg, gso, false);
      else this.sink.drop(id);
      return;
    }
    if (c.phase === 'degraded' || c.phase === 'closed') {
      this.release(c, id, pkt, seg, gso, false);
      if (flags & TCP_FIN) c.finReleased = true;
      if (c.finClient && c.finReleased && c.closedAt === null) c.closedAt = now;
      return;
    }
    if (seg.seqLength === 0) {
      this.pureAck(c, id, pkt, seg, gso, 'P');
      return;
    }
    if (seqLt(start, c.relNxt)) this.refresh(c, now); // a retransmission: what did the client acknowledge?
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
      this.release(c, id, pkt, seg, gso, false);
      return;
    }
    if (seqLt(start, c.relNxt)) {
      // A retransmission reaching past what was released: the released part
      // the client has not acknowledged goes out now (copied); the rest is
      // held already, in P's original.
      this.stats.retransmissions++;
      this.sendRange(c, start, seg.payload, acked, c.relNxt);
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
    c.held.push({ id, pkt, seg, start, end, gso });
    this.releaseCovered(c, now);
    this.checkStall(c, now);
    this.maybeAck(c, now, null);
  }

  // --- S's diverted output (NFQUEUE PREROUTING, already authenticated) ---------

  /**
   * A segment S's TCP sent to the client, diverted to us. `client` is the
   * address from the divert option. The packet is consumed: verdict drop.
   */
  fromSecondary(id: number, pkt: Buffer, client: number, now: number, csum: ChecksumState = 'unverified'): void {
    const seg = this.parseOrDrop(id, pkt, csum);
    if (!seg) return;
    this.sink.drop(id);
    this.stats.divertedSegments++;
    this.stats.divertedBytes += seg.payloadLength;
    const flags = seg.flags;
    let c = this.find(client, seg.dstPort, seg.srcPort);
    // S's TCP answering for a connection P's TCP has from before our rules
    // (adopted): not replicated, and S's copy must never be continued. (An
    // RST only says S has no socket for it.)
    if (!c && !(flags & TCP_RST) && this.adoptedCopiedByS(client, seg.dstPort, seg.srcPort)) {
      this.stats.drops['diverted-unknown']++;
      return;
    }
    if (flags & TCP_SYN) {
      const opts = seg.options();
      if (opts instanceof WireError) {
        this.stats.drops.malformed++;
        return;
      }
      if (!c || c.phase === 'closed') {
        if (this.alone) return;
        if (c) this.remove(c);
        if (!this.room(false)) {
          this.stats.drops['table-full']++;
          return;
        }
        c = this.create(client, seg.dstPort, seg.srcPort, now);
      }
      if (c.phase === 'handshake') {
        c.synS = synInfo(seg, opts);
        if (flags & TCP_ACK_FLAG) this.noteAckS(c, seg);
        if (c.synP) this.mergeHandshake(c, false);
      }
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
    if (flags & TCP_ACK_FLAG) this.noteAckS(c, seg);
    const ts = seg.timestampOffset();
    if (ts >= 0) {
      const v = pkt.readUInt32BE(ts + 2);
      if (seqGt(v, c.tsvalS)) c.tsvalS = v;
      const e = pkt.readUInt32BE(ts + 6);
      if (seqGt(e, c.tsecr)) c.tsecr = e;
    }
    if (flags & TCP_RST) {
      // S aborted; P's RST (if any) was held back. Degrade: P decides alone now.
      this.degrade(c, 'secondary reset');
      return;
    }
    if (seg.payloadLength > 0 && seqLt(seg.seq, c.relNxt)) this.secondaryRetransmission(c, seg, now);
    let added = -1;
    if (seg.payloadLength > 0) {
      if (c.store.size + seg.payloadLength > this.cfg.maxStoredBytes) {
        this.stats.drops['store-full']++;
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
      this.releaseCovered(c, now, covered ?? c.sCovered());
      // S repeating bytes we have: its retransmission timer fired, so it is
      // waiting for the client to acknowledge what both servers produced — and
      // the client cannot before it gets it. Send that part now.
      if (c.held.length && added === 0) this.releasePrefix(c);
      this.checkStall(c, now);
    }
    if (c.phase === 'merging' && seg.seqLength === 0) this.pureAck(c, -1, pkt, seg, false, 'S');
    else this.maybeAck(c, now, seg);
  }

  // --- the client's segments to P (NFQUEUE PREROUTING), the demultiplexer ------

  /**
   * A client segment for P's TCP. Its ACK, SACK blocks and timestamp echo are
   * moved from S's spaces into P's before P's TCP sees it. Verdict now.
   */
  fromClient(id: number, pkt: Buffer, now: number, csum: ChecksumState = 'unverified'): void {
    const seg = this.parseOrDrop(id, pkt, csum);
    if (!seg) return;
    const c = this.find(seg.src, seg.srcPort, seg.dstPort);
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
      this.refresh(c, now);
      if (this.exactClientSeq(c, seg.seq)) {
        c.phase = 'closed';
        c.closedAt = now;
        c.lastSeen = now;
      }
    } else if (this.acceptableFromClient(c, seg)) {
      c.lastSeen = now;
      if (flags & TCP_ACK_FLAG) {
        c.established = true;
        if (!c.hasAckClient || seqGt(seg.ack, c.ackClient)) {
          c.ackClient = seg.ack;
          c.hasAckClient = true;
        }
      }
      const end = seqAdd(seg.seq, seg.seqLength);
      if (!c.hasClientNxt || seqGt(end, c.clientNxt)) {
        c.clientNxt = end;
        c.hasClientNxt = true;
      }
      if (flags & TCP_FIN) c.finClient = true;
      if (c.finClient && c.finReleased && c.closedAt === null) c.closedAt = now;
    }
    if (c.deltaSeq === 0 && c.tsOffset === 0) {
      this.sink.accept(id);
      return;
    }
    if (flags & TCP_ACK_FLAG) seg.setAck(seqAdd(seg.ack, c.deltaSeq));
    const sack = findTcpOption(pkt, seg.optionsOffset, seg.optionsEnd, OPT_SACK);
    if (sack >= 0) {
      // Whole blocks only: the option's length comes from the client.
      const n = Math.floor((pkt[sack + 1]! - 2) / OPT_SACK_BLOCK_LEN);
      for (let b = 0; b < n; b++) {
        const at = sack + 2 + b * OPT_SACK_BLOCK_LEN;
        pkt.writeUInt32BE(seqAdd(pkt.readUInt32BE(at), c.deltaSeq), at);
        pkt.writeUInt32BE(seqAdd(pkt.readUInt32BE(at + 4), c.deltaSeq), at + 4);
      }
    }
    if (c.tsOn) {
      const ts = seg.timestampOffset();
      if (ts >= 0 && flags & TCP_ACK_FLAG) pkt.writeUInt32BE(seqAdd(pkt.readUInt32BE(ts + 6), c.tsOffset), ts + 6);
    }
    // nfqueue marks a mangled packet CHECKSUM_NONE: the sum must be complete.
    seg.fillChecksum();
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
    this.alone = true;
    for (const m of this.conns.values()) {
      for (const c of m.values()) {
        if (c.phase === 'handshake') {
          if (c.heldSyn) this.mergeHandshake(c, true);
        } else if (c.phase === 'merging') {
          this.degrade(c, 'secondary failed');
        }
      }
    }
  }

  /** The secondary is back (new connections are replicated again). */
  secondaryRejoined(): void {
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
    for (const c of [...this.stalled]) {
      if (c.stallAt !== null && now - c.stallAt >= this.cfg.stallMs) {
        this.releasePrefix(c);
        this.checkStall(c, now);
      }
    }
    for (const c of [...this.earlyEnded]) {
      this.earlyEnded.delete(c);
      if (c.phase === 'merging' && c.earlyEndAt !== null) this.releaseCovered(c, now);
    }
    if (now < this.nextExpiry) return 0;
    this.nextExpiry = now + 1000;
    let n = 0;
    for (const m of [...this.conns.values()]) {
      for (const c of [...m.values()]) {
        this.checkSilence(c, now);
        // The offload's segments count too: looked at only for a connection about to go.
        if (this.expired(c, now)) this.refresh(c, now);
        if (!this.expired(c, now)) continue;
        this.remove(c);
        n++;
      }
    }
    for (const [client, m] of this.adopted) {
      for (const [key, a] of m) if (now - a.seen > this.cfg.idleTimeoutMs) m.delete(key);
      if (m.size === 0) this.adopted.delete(client);
    }
    this.stats.expired += n;
    return n;
  }

  // --- internals ---------------------------------------------------------------

  /** Whether `c` is to be forgotten now: half-open too long, closed and lingered, or idle. */
  private expired(c: Conn, now: number): boolean {
    return (
      ((c.phase === 'handshake' || !c.established) && now - c.createdAt > this.cfg.handshakeTimeoutMs) ||
      (c.closedAt !== null && now - Math.max(c.closedAt, c.lastSeen) > this.cfg.lingerMs) ||
      now - c.lastSeen > this.cfg.idleTimeoutMs
    );
  }

  /**
   * A live secondary that makes no progress on a connection waiting for it
   * for secondarySilenceMs has lost it (its socket vanished, or its TCP never
   * answered the SYN: a stale socket on the same ports). The connection goes
   * on primary-only rather than hang, and counts as diverged: the secondary
   * resets it if it takes over, since it cannot continue it.
   */
  private checkSilence(c: Conn, now: number): void {
    const limit = this.cfg.secondarySilenceMs;
    if (c.phase === 'handshake') {
      if (this.alone || !c.heldSyn || c.synS || c.heldSynAt === null || now - c.heldSynAt < limit) return;
      this.stats.secondarySilent++;
      this.mergeHandshake(c, true);
      this.diverged.add(c);
      this.onEvent(`primary-only: the secondary did not answer the SYN in ${now - c.heldSynAt} ms`, c);
      return;
    }
    if (!c.waitsForS()) {
      c.waitingSince = null;
      return;
    }
    c.waitingSince ??= now;
    const silent = now - Math.max(c.waitingSince, c.sProgressAt);
    if (silent < limit) return;
    this.stats.secondarySilent++;
    this.degrade(c, `the secondary made no progress for ${silent} ms`, true);
  }

  /** The TCP segment in `pkt`, or null after dropping it (and counting) when malformed or corrupted. */
  private parseOrDrop(id: number, pkt: Buffer, csum: ChecksumState): TcpSegment | null {
    const ip = Ipv4Packet.parse(pkt);
    const seg = ip instanceof WireError ? ip : TcpSegment.fromIpv4(ip);
    if (seg instanceof WireError) {
      this.stats.drops.malformed++;
      this.sink.drop(id);
      return null;
    }
    if (csum === 'unverified' && !seg.checksumValid()) {
      this.stats.drops['bad-checksum']++;
      this.sink.drop(id);
      return null;
    }
    return seg;
  }

  /**
   * RFC 5961 §3.2: a client RST ends the connection only at the exact next
   * sequence number a server expects (P's or S's acknowledgement, or the end
   * of the client's last accepted segment). Anything else in the window
   * draws a challenge ACK from P's TCP; the genuine client answers it with an
   * exact RST.
   */
  private exactClientSeq(c: Conn, seq: number): boolean {
    return (c.hasAckP && seq === c.ackP) || (c.hasAckS && seq === c.ackS) || (c.hasClientNxt && seq === c.clientNxt);
  }

  /**
   * Whether a client segment (not a RST) may change the connection's state:
   * its ACK acknowledges something we released, no more (RFC 5961 §5: from
   * our ISN + 1 up to the highest number released, and not far below what
   * the client acknowledged), and its sequence number lies within the
   * servers' receive windows (RFC 9293 §3.10.7.4). A blind attacker knows
   * neither number.
   */
  private acceptableFromClient(c: Conn, seg: TcpSegment): boolean {
    if (seg.has(TCP_ACK_FLAG)) {
      const ack = seg.ack;
      if (!seqGt(ack, c.isn) || seqGt(ack, c.relNxt)) return false;
      if (c.hasAckClient && seqLt(ack, seqSub(c.ackClient, MAX_WINDOW))) return false;
    } else if (!seg.has(TCP_SYN)) {
      return false; // after the handshake every genuine segment carries an ACK
    }
    if (!c.hasAckP && !c.hasAckS) return true; // §7.2: no server has acknowledged the client's SYN yet
    const lo = c.hasAckP && c.hasAckS ? seqMin(c.ackP, c.ackS) : c.hasAckP ? c.ackP : c.ackS;
    const hi = c.hasAckP && c.hasAckS ? seqMax(c.ackP, c.ackS) : lo;
    const win = Math.max(c.winP, c.winS, 65535);
    return seqGe(seqAdd(seg.seq, seg.seqLength), seqSub(lo, win)) && seqLe(seg.seq, seqAdd(hi, win));
  }

  /** Starts or ends the stall clock of `c`: its first held segment partly covered by S. */
  private checkStall(c: Conn, now: number): void {
    const partly = c.phase === 'merging' && c.held.length > 0 && seqGt(c.sCovered(), seqMax(c.held[0]!.start, c.relNxt));
    if (partly) {
      if (c.stallAt === null) {
        c.stallAt = now;
        this.stalled.add(c);
      }
    } else if (c.stallAt !== null) {
      c.stallAt = null;
      this.stalled.delete(c);
    }
  }

  private noteAckP(c: Conn, seg: TcpSegment): void {
    if (!c.hasAckP || seqGe(seg.ack, c.ackP)) {
      c.ackP = seg.ack;
      c.hasAckP = true;
      c.sackP = sackBlocks(seg);
    }
    c.winP = seg.window * 2 ** (seg.has(TCP_SYN) ? 0 : c.wsP);
  }

  private noteAckS(c: Conn, seg: TcpSegment): void {
    if (!c.hasAckS || seqGe(seg.ack, c.ackS)) {
      c.ackS = seg.ack;
      c.hasAckS = true;
      c.sackS = sackBlocks(seg);
    }
    c.winS = seg.window * 2 ** (seg.has(TCP_SYN) ? 0 : c.wsS);
  }

  /**
   * The SACK blocks the client may be told: only what BOTH servers hold
   * above the merged ACK. A block one server reports alone (or a D-SACK
   * below its own ACK) would make the client stop retransmitting bytes the
   * other server still lacks — or take its own retransmissions for
   * spurious and stretch its reordering window — and then only its
   * backed-off timer moves the connection (seen as multi-second stalls of
   * uploads under loss before this).
   */
  mergedSack(c: Conn): Array<[number, number]> {
    const m = this.mergedAck(c);
    // Each side's holdings above m, as offsets from m: [0, ack − m) plus its blocks.
    const held = (ack: number, blocks: ReadonlyArray<[number, number]>): Array<[number, number]> => {
      const out: Array<[number, number]> = [];
      const top = seqSub(ack, m);
      if (top > 0) out.push([0, top]);
      for (const [l, r] of blocks) {
        const a = Math.max(0, seqSub(l, m) | 0);
        const b = seqSub(r, m) | 0;
        if (b > a && b < 2 ** 30) out.push([a, b]);
      }
      return out;
    };
    const a = held(c.ackP, c.sackP);
    const b = held(c.ackS, c.sackS);
    const out: Array<[number, number]> = [];
    for (const [al, ar] of a) {
      for (const [bl, br] of b) {
        const l = Math.max(al, bl);
        const r = Math.min(ar, br);
        if (r > l && l > 0) out.push([seqAdd(m, l), seqAdd(m, r)]);
      }
    }
    return out.slice(0, 4);
  }

  /** Rewrites the SACK option of a segment to the client in place to the merged blocks (NOPs where fewer). */
  private rewriteSack(c: Conn, pkt: Buffer, seg: TcpSegment): void {
    const at = findTcpOption(pkt, seg.optionsOffset, seg.optionsEnd, OPT_SACK);
    if (at < 0) return;
    const room = Math.floor((pkt[at + 1]! - 2) / OPT_SACK_BLOCK_LEN);
    const blocks = this.mergedSack(c).slice(0, room);
    const len = pkt[at + 1]!;
    if (!blocks.length) {
      pkt.fill(OPT_NOP, at, at + len);
      return;
    }
    pkt[at + 1] = 2 + blocks.length * OPT_SACK_BLOCK_LEN;
    blocks.forEach(([l, r], i) => {
      pkt.writeUInt32BE(l >>> 0, at + 2 + i * OPT_SACK_BLOCK_LEN);
      pkt.writeUInt32BE(r >>> 0, at + 6 + i * OPT_SACK_BLOCK_LEN);
    });
    pkt.fill(OPT_NOP, at + 2 + blocks.length * OPT_SACK_BLOCK_LEN, at + len);
  }

  private noteTsP(c: Conn, seg: TcpSegment): void {
    if (!c.tsOn) return;
    const ts = seg.timestampOffset();
    if (ts < 0) return;
    const v = seqSub(seg.buf.readUInt32BE(ts + 2), c.tsOffset);
    if (seqGt(v, c.tsvalP)) c.tsvalP = v;
    const e = seg.buf.readUInt32BE(ts + 6);
    if (seqGt(e, c.tsecr)) c.tsecr = e;
  }

  /** The ACK and window the client gets now. */
  private mergedAck(c: Conn): number {
    if (c.phase !== 'merging') return c.ackP;
    if (!c.hasAckS) return c.ackP;
    if (!c.hasAckP) return c.ackS;
    return seqMin(c.ackP, c.ackS);
  }

  private mergedWindowBytes(c: Conn): number {
    if (c.phase !== 'merging') return c.winP;
    return Math.min(c.winP, c.winS);
  }

  /** The 16-bit window field for `bytes`, in the scale the client learned (S's). */
  private windowField(c: Conn, bytes: number, syn: boolean): number {
    const shifted = syn ? bytes : Math.floor(bytes / 2 ** c.wsS);
    return Math.min(0xffff, shifted);
  }

  /**
   * Merges the handshake (§7): Δseq, the timestamp offset, MSS = min, window
   * scale = S's (the client keeps S after a failover), SACK and ECN only if
   * both offered them. Releases P's SYN(-ACK) rewritten. `alone`: no S.
   */
  private mergeHandshake(c: Conn, alone: boolean): void {
    const p = c.synP!;
    const s = alone ? p : c.synS!;
    c.deltaSeq = seqSub(p.isn, s.isn);
    c.tsOn = p.ts !== null && s.ts !== null;
    c.tsOffset = c.tsOn ? seqSub(p.ts!, s.ts!) : 0;
    c.wsP = Math.max(0, p.wscale);
    c.wsS = Math.max(0, s.wscale);
    c.isn = s.isn;
    c.relNxt = seqAdd(s.isn, 1);
    c.store = new ByteStore(c.relNxt);
    c.phase = alone ? 'degraded' : 'merging';
    c.tsvalP = s.ts ?? 0;
    c.tsvalS = s.ts ?? 0;
    // The echo starts at the client's first TSval, not 0: "later than 0" is
    // false for half of all clocks in serial arithmetic, and the echo would stay 0.
    c.tsecr = s.tsecr ?? p.tsecr ?? 0;
    this.stats.handshakes++;
    // From here on the kernel may translate the client's common segments itself.
    this.offload?.add(this.addr(c), c.deltaSeq, c.tsOffset, c.tsOn);
    const h = c.heldSyn!;
    c.heldSyn = null;
    this.pending.delete(c);
    this.release(c, h.id, h.pkt, h.seg, h.gso, true);
  }

  /**
   * P's SYN(-ACK) options in place (same lengths, NOPs where one goes away):
   * MSS = min, window scale = S's, SACK-permitted and timestamps only if both
   * offered them, ECE only if both did.
   */
  private rewriteSynOptions(c: Conn, pkt: Buffer, seg: TcpSegment): void {
    const p = c.synP;
    const s = c.phase === 'merging' ? c.synS : p;
    if (!p || !s) return;
    const o0 = seg.optionsOffset;
    const o1 = seg.optionsEnd;
    const mss = findTcpOption(pkt, o0, o1, OPT_MSS);
    if (mss >= 0) pkt.writeUInt16BE(Math.min(p.mss, s.mss), mss + 2);
    const ws = findTcpOption(pkt, o0, o1, OPT_WSCALE);
    if (ws >= 0) {
      if (s.wscale < 0) pkt.fill(OPT_NOP, ws, ws + 3);
      else pkt[ws + 2] = s.wscale;
    }
    const sack = findTcpOption(pkt, o0, o1, OPT_SACK_PERMITTED);
    if (sack >= 0 && !s.sackOk) pkt.fill(OPT_NOP, sack, sack + 2);
    if (!c.tsOn) {
      const ts = seg.timestampOffset();
      if (ts >= 0) pkt.fill(OPT_NOP, ts, ts + 10);
    }
    if (p.ecn && !s.ecn) pkt[seg.off + 13] = pkt[seg.off + 13]! & ~TCP_ECE;
  }

  /** Releases held P segments whose bytes S has produced, in order. */
  private releaseCovered(c: Conn, now: number, covered = c.sCovered()): void {
    while (c.held.length) {
      const h = c.held[0]!;
      if (c.finS !== null && seqGt(h.end, seqAdd(c.finS, 1))) {
        // P produced bytes past the end of S's stream.
        this.stats.divergences++;
        this.degrade(c, 'P sent past S’s FIN', true);
        return;
      }
      if (!seqLe(h.end, covered)) break;
      const seg = h.seg;
      const dataStart = h.start;
      const fin = seg.has(TCP_FIN);
      const dataEnd = fin ? seqSub(h.end, 1) : h.end;
      const payload = seg.payload;
      const finMismatch = fin && c.finS !== dataEnd;
      if (finMismatch && (c.finS === null || seqGt(c.finS, dataEnd)) && c.store.matches(dataStart, payload.subarray(0, seqSub(dataEnd, dataStart)))) {
        // P's stream ends here, S's goes on: held, in case P's server died
        // and the secondary is about to continue the connection (earlyEndGraceMs).
        c.earlyEndAt ??= now;
        if (now - c.earlyEndAt < this.cfg.earlyEndGraceMs) {
          this.earlyEnded.add(c);
          break;
        }
      }
      if (finMismatch || !c.store.matches(dataStart, payload.subarray(0, seqSub(dataEnd, dataStart)))) {
        this.stats.divergences++;
        this.degrade(c, finMismatch ? 'FIN at different offsets' : 'different bytes at the same offset', true);
        return;
      }
      c.held.shift();
      const sent = seqLt(dataStart, c.relNxt) ? Math.min(seqSub(c.relNxt, dataStart), payload.length) : 0;
      if (sent > 0 && sent === payload.length && !fin) {
        // Every byte of it went out already, in prefixes (releasePrefix).
        this.sink.drop(h.id);
        continue;
      }
      if (sent > 0) {
        // Its first bytes went out already as a prefix: only the rest goes now
        // (sent again, they took link capacity and drew duplicate-ACKs).
        const rest = trimPayloadFront(h.pkt, seg, sent);
        this.stats.prefixBytesTrimmed += sent;
        this.release(c, h.id, rest, TcpSegment.fromIpv4(Ipv4Packet.parse(rest) as Ipv4Packet) as TcpSegment, h.gso, false);
      } else {
        this.release(c, h.id, h.pkt, seg, h.gso, false);
      }
      if (fin) {
        c.finReleased = true;
        if (c.finClient && c.closedAt === null) c.closedAt = c.lastSeen;
      }
    }
    c.store.advance(c.relNxt);
  }

  /**
   * Sends the bytes of the first held P segment that S has produced too, as
   * new segments (the paper's construction, §3.4), when waiting for S to cover
   * the whole segment would deadlock: S retransmits only from the client's
   * ACK, and the client acknowledges only what it received. The held segment
   * itself goes out once covered, without the bytes sent here
   * (releaseCovered trims them).
   */
  private releasePrefix(c: Conn): void {
    const h = c.held[0];
    if (!h) return;
    const covered = c.sCovered();
    const from = seqMax(h.start, c.relNxt);
    if (!seqLt(from, covered) || !seqLt(covered, h.end)) return;
    const payload = h.seg.payload;
    if (!c.store.matches(h.start, payload.subarray(0, seqSub(covered, h.start)))) {
      this.stats.divergences++;
      this.degrade(c, 'different bytes at the same offset', true);
      return;
    }
    this.sendRange(c, h.start, payload, from, covered);
    c.relNxt = covered;
    c.store.advance(covered);
    this.stats.prefixReleases++;
  }

  /**
   * A connection stops being replicated: divergence, a secondary reset, or a
   * secondary failure. Held bytes go out as P produced them (the client never
   * got a byte of S's that P did not also produce), Δseq stays.
   */
  private degrade(c: Conn, why: string, diverged = false): void {
    if (c.phase !== 'merging') return;
    c.phase = 'degraded';
    if (diverged) this.diverged.add(c);
    this.onEvent(`degraded to primary-only: ${why}`, c);
    c.store.clear();
    const held = c.held;
    c.held = [];
    c.stallAt = null;
    this.stalled.delete(c);
    for (const h of held) this.release(c, h.id, h.pkt, h.seg, h.gso, false);
  }

  /**
   * Rewrites P's segment into S's spaces — seq − Δseq, TSval − offset, the
   * merged ACK and window — and accepts it.
   */
  private release(c: Conn, id: number, pkt: Buffer, seg: TcpSegment, gso: boolean, syn: boolean): void {
    // A segment without data says "next byte is relNxt": P's own next sequence
    // number may be ahead of what has been released while P's data is held.
    const bare = seg.seqLength === 0 && !seg.has(TCP_RST);
    const start = bare ? c.relNxt : seqSub(seg.seq, c.deltaSeq);
    pkt.writeUInt32BE(start, seg.off + 4);
    if (syn) this.rewriteSynOptions(c, pkt, seg);
    const isAck = seg.has(TCP_ACK_FLAG);
    if (isAck) {
      const ack = this.mergedAck(c);
      pkt.writeUInt32BE(ack, seg.off + 8);
      if (c.phase === 'merging' && !syn) this.rewriteSack(c, pkt, seg);
      if (!c.ackSentValid || seqGt(ack, c.ackSent)) {
        c.ackSent = ack;
        c.ackSentValid = true;
      }
    }
    const win = syn ? Math.min(c.synP?.window ?? seg.window, c.synS?.window ?? seg.window) : this.windowField(c, this.mergedWindowBytes(c), false);
    pkt.writeUInt16BE(syn ? Math.min(win, 0xffff) : win, seg.off + 14);
    // The right edge the client now believes in (a SYN's window is unscaled).
    c.edgeSent = seqAdd(c.ackSent, syn ? win : win * 2 ** c.wsS);
    if (c.tsOn) {
      const ts = seg.timestampOffset();
      if (ts >= 0) pkt.writeUInt32BE(seqSub(pkt.readUInt32BE(ts + 2), c.tsOffset), ts + 2);
    }
    // Mangled packets leave nfqueue as CHECKSUM_NONE: a complete sum, except for
    // GSO packets, which the kernel segments in software and sums itself.
    if (!gso) seg.fillChecksum();
    const end = seqAdd(start, seg.seqLength);
    if (seqGt(end, c.relNxt)) c.relNxt = end;
    this.stats.releasedSegments++;
    this.stats.releasedBytes += seg.payloadLength;
    this.sink.accept(id, pkt);
  }

  /**
   * A segment without data from P (id ≥ 0, held in the queue) or S (id −1,
   * already consumed). It goes out when the merged ACK advanced, as a
   * duplicate ACK from the lagging side (fast retransmit needs those), or when
   * the window opened; otherwise it is absorbed.
   */
  private pureAck(c: Conn, id: number, pkt: Buffer, seg: TcpSegment, gso: boolean, side: 'P' | 'S'): void {
    if (c.phase === 'merging' && !(c.hasAckP && c.hasAckS)) {
      // One server has not acknowledged anything yet (the last step of a
      // server-initiated handshake): the minimum is nothing.
      if (id >= 0) this.sink.drop(id);
      return;
    }
    const m = this.mergedAck(c);
    const mine = side === 'P' ? c.ackP : c.ackS;
    const other = side === 'P' ? c.ackS : c.ackP;
    const winBytes = this.mergedWindowBytes(c);
    const edge = seqAdd(m, Math.floor(winBytes / 2 ** c.wsS) * 2 ** c.wsS);
    const advanced = !c.ackSentValid || seqGt(m, c.ackSent);
    // The lagging side's duplicate ACKs carrying SACK blocks (what drives the
    // client's fast retransmit); when both lag equally, P speaks for both.
    // Other same-ACK segments are absorbed, as in §3.4.
    const dup =
      !advanced &&
      m === mine &&
      (side === 'P' ? seqLe(mine, other) : seqLt(mine, other)) &&
      findTcpOption(seg.buf, seg.optionsOffset, seg.optionsEnd, OPT_SACK) >= 0;
    // A window update means nothing once the client has sent its FIN (it
    // sends no more data) — and after its close, an extra ACK only draws a
    // reset from its stack.
    const opened = !c.finClient && (seqGt(edge, seqAdd(c.edgeSent, 2 * this.cfg.mtu)) || (c.edgeSent === c.ackSent && seqGt(edge, c.edgeSent)));
    if (!advanced && !dup && !opened) {
      if (id >= 0) this.sink.drop(id);
      return;
    }
    if (side === 'P' && id >= 0) {
      // Forward P's own ACK (its SACK blocks are in the client's space already).
      this.release(c, id, pkt, seg, gso, false);
      return;
    }
    this.sendAck(c, side === 'S' ? seg : null);
  }

  /** After new data from either side: send an ACK if the merged ACK moved and nothing carried it. */
  private maybeAck(c: Conn, _now: number, _seg: TcpSegment | null): void {
    if (c.phase !== 'merging') return;
    const m = this.mergedAck(c);
    if ((!c.ackSentValid || seqGt(m, c.ackSent)) && c.hasAckP && c.hasAckS) this.sendAck(c, null);
  }

  /**
   * S re-sent bytes that were already released (§4: below the highest
   * sequence number sent, a retransmission): the released copy may have been
   * lost on the way to the client, and S's retransmission timer is the
   * reliable one. P's is not: P's RTT estimate includes the time its segments
   * sat held here, and Linux does not retransmit a segment whose original is
   * still in a host queue (a held segment the prefix rule sent part of). So
   * the part the client has not acknowledged goes out now, as S sent it —
   * the same bytes P produced, compared when they were released.
   */
  private secondaryRetransmission(c: Conn, seg: TcpSegment, now: number): void {
    this.refresh(c, now);
    const from = c.notAcked(seg.seq);
    const to = seqMin(c.relNxt, seqAdd(seg.seq, seg.payloadLength));
    if (!seqLt(from, to)) return;
    this.stats.secondaryRetransmissions++;
    this.sendRange(c, seg.seq, seg.payload, from, to);
  }

  /** Sends bytes [from, to) of `payload` (which starts at S-space `start`) as MTU-sized segments. */
  private sendRange(c: Conn, start: number, payload: Buffer, from: number, to: number): void {
    const chunk = this.cfg.mtu - 40 - 12;
    for (let at = from; seqLt(at, to); ) {
      const off = seqSub(at, start);
      if (off >= payload.length) break;
      const n = Math.min(chunk, seqSub(to, at), payload.length - off);
      this.sendSegment(c, at, payload.subarray(off, off + n));
      at = seqAdd(at, n);
    }
  }

  /** Builds a data segment to the client in S's spaces and sends it by raw socket. */
  private sendSegment(c: Conn, seq: number, payload: Buffer): void {
    const ack = this.mergedAck(c);
    const win = this.windowField(c, this.mergedWindowBytes(c), false);
    const options: TcpOption[] = c.tsOn ? [{ kind: 'timestamp', tsval: seqMax(c.tsvalS, c.tsvalP), tsecr: c.tsecr }] : [];
    const pkt = buildIpv4Tcp(
      { src: this.cfg.service, dst: c.client, ttl: 64 },
      { srcPort: c.servicePort, dstPort: c.clientPort, seq, ack, flags: TCP_ACK_FLAG | TCP_PSH, window: win, urgent: 0, options, payload },
    );
    c.ackSent = ack;
    c.ackSentValid = true;
    c.edgeSent = seqAdd(ack, win * 2 ** c.wsS);
    this.stats.releasedSegments++;
    this.stats.releasedBytes += payload.length;
    this.sink.send(pkt);
  }

  /** Builds a pure ACK to the client in S's spaces and sends it by raw socket. */
  private sendAck(c: Conn, fromS: TcpSegment | null): void {
    const ack = this.mergedAck(c);
    const win = this.windowField(c, this.mergedWindowBytes(c), false);
    const options: TcpOption[] = [];
    if (c.tsOn) options.push({ kind: 'timestamp', tsval: seqMax(c.tsvalS, c.tsvalP), tsecr: c.tsecr });
    if (fromS) {
      const blocks = this.mergedSack(c).slice(0, c.tsOn ? 3 : 4);
      if (blocks.length) options.push({ kind: 'sack', blocks });
    }
    const pkt = buildIpv4Tcp(
      { src: this.cfg.service, dst: c.client, ttl: 64 },
      { srcPort: c.servicePort, dstPort: c.clientPort, seq: c.relNxt, ack, flags: TCP_ACK_FLAG, window: win, urgent: 0, options, payload: EMPTY },
    );
    c.ackSent = ack;
    c.ackSentValid = true;
    c.edgeSent = seqAdd(ack, win * 2 ** c.wsS);
    this.stats.acksSent++;
    this.sink.send(pkt);
  }
}

const EMPTY = Buffer.alloc(0);
/** The largest window TCP can announce (65535 << 14): RFC 5961's MAX.SND.WND when the client's is unknown. */
const MAX_WINDOW = 65535 * 2 ** 14;

/** The protocol number the merger handles (for the shell's sanity checks). */
export const MERGER_PROTOCOL = IPPROTO_TCP;

/** Parses the options of a segment, for tests and logs. */
export function optionsOf(pkt: Buffer): TcpOption[] {
  const ip = Ipv4Packet.parse(pkt);
  if (ip instanceof WireError) return [];
  const seg = TcpSegment.fromIpv4(ip);
  if (seg instanceof WireError) return [];
  const o = parseTcpOptions(pkt, seg.optionsOffset, seg.optionsEnd);
  return o instanceof WireError ? [] : o;
}
