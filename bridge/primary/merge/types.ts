/**
 * What the merger's parts share: its configuration, where its decisions go
 * (MergerSink), the kernel's share of the client's segments (InboundOffload),
 * its counters, and MergeCore — the state every part works on.
 */
import { ip4Of, isIp6, type IpAddr } from '../../../net/addr.js';
import type { BufferPool } from '../buffer-pool.js';
import type { Conn } from './conn.js';
import type { KernelMergeInit, KernelMergeState } from './kernel.js';

/** A connection's address as the kernel offload keys it. */
export interface OffloadKey {
  client: number;
  service: number;
  clientPort: number;
  servicePort: number;
}

/** A connection's identity, for events and reports. */
export interface ConnId {
  readonly client: IpAddr;
  readonly clientPort: number;
  readonly servicePort: number;
}

/**
 * The kernel's share of the client's segments (io/xlate.ts): once a
 * connection's offsets are known it translates the common client segment
 * itself, so those never reach fromClient. What the merger still needs of
 * them — the client's highest ACK and sequence number, when it was last
 * heard — it reads back when it needs it (rarely: retransmissions, expiry,
 * a reset).
 */
/** What InboundOffload.primaryOnly takes, for one connection of primaryOnlyMany. */
export interface PrimaryOnlyEntry {
  c: OffloadKey;
  dseq: number;
  dts: number;
  timestamps: boolean;
  wscaleP: number;
  wscaleS: number;
}

export interface InboundOffload {
  /** `wscale`: the window scale the client was told (S's). */
  add(c: OffloadKey, deltaSeq: number, tsOffset: number, timestamps: boolean, wscale: number): void;
  /**
   * `c` goes on primary-only (degraded, or begun while alone): P's own
   * segments may leave in the kernel from now on, moved into the client's
   * spaces (seq − Δseq, TSval − offset, the window from P's scale to S's).
   * SYN, FIN and RST still come through the queue.
   */
  primaryOnly(
    c: OffloadKey,
    deltaSeq: number,
    tsOffset: number,
    timestamps: boolean,
    wscaleP: number,
    wscaleS: number,
  ): boolean;
  /**
   * The kernel merges `c` from now on (its handshake just merged); false if
   * it cannot (not available, its map full): the queue merges it.
   */
  mergeStart(c: OffloadKey, init: KernelMergeInit): boolean;
  /**
   * `c`, which the bridge took from the kernel's merge, returns there with
   * nothing waiting on either side (kernelResume); false if it cannot.
   * Absent: a connection the bridge takes stays with the queue.
   */
  mergeResume?(c: OffloadKey, init: KernelMergeInit): boolean;
  /**
   * primaryOnly for many connections at once (the secondary failed); how
   * many of the first it took.
   */
  primaryOnlyMany?(list: readonly PrimaryOnlyEntry[]): number;
  /** The bridge takes `c` from the kernel's merge, atomically; its state then (null: the kernel did not have it). */
  mergeTake(c: OffloadKey): KernelMergeState | null;
  remove(c: OffloadKey): void;
  seen(c: OffloadKey): { packets: number; ageMs?: number; ackMax?: number; nxtMax?: number } | null;
  /** The kernel merge's digest of a range's bytes (native/bpf/digest.h): what its dropped copies are known by. */
  digest?(bytes: Buffer): bigint;
}

/** Where the merger's decisions go. The shell maps these onto NFQUEUE verdicts and the raw socket. */
export interface MergerSink {
  /**
   * Let a queued packet continue; `packet` (the same bytes, rewritten) when it
   * was modified. `packet` is the merger's again once accept returns (a held
   * copy's buffer serves the next one): copy whatever is kept.
   */
  accept(id: number, packet?: Buffer): void;
  drop(id: number): void;
  /** Send a new packet (to the client) through the raw socket. */
  send(packet: Buffer): void;
  /**
   * Send a packet (an IPv4 packet, from the client to the service address)
   * into the secondary's own stack: a frame to its MAC on the LAN.
   */
  toSecondary(packet: Buffer): void;
}

export interface MergerConfig {
  /** The service address (VIP) clients connect to. */
  service: number;
  /**
   * The IPv6 service address, as an IpAddr, if the service has one: without it the
   * merger refuses IPv6 segments (counted as `malformed`).
   */
  service6?: string | null;
  /** Largest packet the kernel hands us unsegmented without GSO (the LAN MTU). */
  mtu: number;
  /** Idle time after which an established connection is forgotten, ms. */
  idleTimeoutMs: number;
  /** Time a half-open connection (handshake not merged) is kept, ms. */
  handshakeTimeoutMs: number;
  /**
   * Time a connection's entry is kept after it ended (both FINs, or a reset)
   * and after its last segment, for late ones (a lost last ACK, a segment
   * in flight), ms. A full table takes the oldest such entry first.
   */
  lingerMs: number;
  /**
   * How long the first held segment may sit partly covered by S before the
   * covered part is sent on its own (S may be waiting for the client's ACK of
   * it: a small congestion window after loss), ms.
   */
  stallMs: number;
  /** Upper bound on S bytes stored per connection (backpressure, not memory growth). */
  maxStoredBytes: number;
  /**
   * Upper bound on the bytes buffered over all connections: S's stored and
   * copies of P's held segments. Beyond it P's new segments are not held
   * (dropped: P's TCP sends them again) and S's bytes are stored only where
   * they cover what P waits with.
   */
  maxBufferedBytes: number;
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
  /** Overwrite each pooled copy's buffer when it is given back (a verdict, bytes compared), so a reader too late reads garbage (tests). */
  poisonPooled: boolean;
}

export const DEFAULT_MERGER_CONFIG: Omit<MergerConfig, 'service'> = {
  mtu: 1500,
  idleTimeoutMs: 2 * 60 * 60 * 1000,
  handshakeTimeoutMs: 30_000,
  lingerMs: 2000,
  stallMs: 5,
  maxStoredBytes: 8 << 20,
  maxBufferedBytes: 256 << 20,
  maxConnections: 65536,
  maxPendingHandshakes: 4096,
  secondarySilenceMs: 2000,
  earlyEndGraceMs: 3000,
  poisonPooled: false,
};

/**
 * Why a packet was dropped. 'out-of-window': a secondary's RST outside its
 * send window (forged, or very old); 'unmatched-syn': a secondary's SYN(-ACK)
 * no SYN(-ACK) of P's ever matched (forged, or P never answered), forgotten.
 */
export type DropReason =
  | 'unknown-connection'
  | 'malformed'
  | 'diverted-unknown'
  | 'store-full'
  | 'degraded-diverted'
  | 'table-full'
  | 'client-acknowledged'
  | 'bad-checksum'
  | 'out-of-window'
  | 'unmatched-syn'
  | 'memory-full';

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
  /** Ended connections whose entries made room for a new connection before their linger was over. */
  evictedClosed: number;
  /** Connections whose client never acknowledged the handshake, forgotten to make room for a new one (a SYN flood's). */
  evictedHalfOpen: number;
  /** Connections put on primary-only because S made no progress on them for secondarySilenceMs. */
  secondarySilent: number;
  /**
   * Merged connections turned primary-only after the secondary failed: by
   * goAlone's steps, or at once as P's segment of one came first; and those
   * the kernel released primary-only at once, in one batch (beginAlone).
   */
  aloneTurns: { steps: number; asNeeded: number; inKernelAtOnce: number };
  /** Connections adopted untranslated (this node served them alone before it became primary). */
  adopted: number;
  /** Connections the kernel merged from their handshake on, and those it handed to the bridge, by why. */
  kernelMerged: number;
  /** Of those, the handshakes the kernel merged too (the bridge heard of them afterwards). */
  kernelHandshakes: number;
  /** Of those, the connections whose close passed in the kernel (the bridge heard of it afterwards). */
  kernelCloses: number;
  kernelHandovers: Record<string, number>;
  /**
   * Of the connections the bridge took from the kernel's merge, what brought
   * each: whose segment ("p", "s", "client"; "alone" when the secondary failed)
   * and what it was ("rst", "fin", "data", "ack"), as "p/data".
   */
  kernelTakes: Record<string, number>;
  /** Connections the bridge gave back to the kernel's merge, nothing waiting on either side (kernelResume). */
  kernelReturns: number;
  /** Ranges of S's the kernel dropped (its first arrivals) that the bridge compared with P's bytes by their digests. */
  digestsCompared: number;
  /** Of those, the ones whose digest differed (a divergence, counted there too). */
  digestMismatches: number;
  /** P's segments the kernel had stolen and kept, merged at once when the bridge took their connection. */
  stashedTaken: number;
  /**
   * Half-open sockets of the secondary's that the pair will never merge
   * (their SYN-ACK came while alone, for a primary-only or adopted
   * connection, or no SYN-ACK of P's joined it): reset in S's stack.
   */
  halfOpenResets: number;
  drops: Record<DropReason, number>;
}

export function newStats(): MergerStats {
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
    kernelMerged: 0,
    kernelHandshakes: 0,
    kernelCloses: 0,
    kernelHandovers: {},
    kernelTakes: {},
    kernelReturns: 0,
    digestsCompared: 0,
    digestMismatches: 0,
    stashedTaken: 0,
    halfOpenResets: 0,
    handshakes: 0,
    expired: 0,
    evictedClosed: 0,
    evictedHalfOpen: 0,
    secondarySilent: 0,
    aloneTurns: { steps: 0, asNeeded: 0, inKernelAtOnce: 0 },
    adopted: 0,
    drops: {
      'unknown-connection': 0,
      malformed: 0,
      'diverted-unknown': 0,
      'store-full': 0,
      'degraded-diverted': 0,
      'table-full': 0,
      'client-acknowledged': 0,
      'bad-checksum': 0,
      'out-of-window': 0,
      'unmatched-syn': 0,
      'memory-full': 0,
    },
  };
}

/** The merger's state that its parts read and change (the Merger class is the one implementation). */
export interface MergeCore {
  readonly cfg: MergerConfig;
  readonly sink: MergerSink;
  readonly stats: MergerStats;
  readonly offload: InboundOffload | null;
  /** Connections whose first held segment is partly covered by S: the stall clock runs. */
  readonly stalled: Set<Conn>;
  /** Connections holding P's SYN(-ACK) until S's arrives. */
  readonly pending: Set<Conn>;
  /** Connections whose P's FIN is held while S's stream goes on (earlyEndGraceMs). */
  readonly earlyEnded: Set<Conn>;
  /** Connections degraded because the replicas differed (the secondary must not continue them). */
  readonly diverged: Set<Conn>;
  /** Bytes buffered over all connections: S's stored (every ByteStore adds to it) and P's held copies. */
  readonly buffered: { stored: number; held: number };
  /** Where the held copies and stored bytes come from, and go back to once done with. */
  readonly pool: BufferPool;
  /** Connections that ended (closedAt set), oldest first. */
  readonly closing: Set<Conn>;
  /** `c` ended at `now` (default: the time of the event being handled): both FINs passed, or a reset did (sets closedAt once). */
  ended(c: Conn, now?: number): void;
  /** Divergence and other rare events, for the shell's log. Never per packet in normal operation. */
  event(what: string, c: ConnId): void;
}

/**
 * The kernel's share of `c`: none without an offload, nor for an IPv6 connection (the
 * kernel's maps key IPv4 addresses, so the queue carries an IPv6 connection whole).
 */
export function kernelOf(core: MergeCore, c: Conn): InboundOffload | null {
  return core.offload !== null && !isIp6(c.client) ? core.offload : null;
}

/** The connection's address as the offload keys it (an IPv4 connection's: kernelOf). */
export function offloadKey(core: MergeCore, c: Conn): OffloadKey {
  return { client: ip4Of(c.client), service: core.cfg.service, clientPort: c.clientPort, servicePort: c.servicePort };
}

/** The service address a client of `client`'s family reaches: the configured one of that family. */
export function serviceFor(cfg: MergerConfig, client: IpAddr): IpAddr {
  return isIp6(client) ? cfg.service6! : cfg.service;
}
