/**
 * One failover connection as the merger sees it: what each side's SYN said,
 * the offsets between P's and S's spaces (Δseq, the timestamp offset, the
 * window scales), P's segments held in the kernel's queue, S's bytes stored,
 * and what each side — the two servers and the client — acknowledged.
 */
import type { IpAddr } from '../../../net/addr.js';
import { seqAdd, seqGt, seqMax } from '../../wire/seq.js';
import { MAX_WSCALE, type TcpOption } from '../../wire/tcp-options.js';
import { NO_SACK_BLOCKS, TCP_ECE, type TcpSegment } from '../../wire/tcp.js';
import { ByteStore } from '../byte-store.js';

export type ConnPhase = 'handshake' | 'merging' | 'degraded' | 'closed';

/**
 * What an idle connection holds of its held segments: nothing, shared (frozen,
 * so a push throws), as for its SACK blocks (NO_SACK_BLOCKS) and stored chunks.
 * A connection gets an array of its own only while it holds something, and
 * gives it back once empty: the arrays a drained connection kept (their
 * capacity stays after a shift) were ~270 B a connection
 * (bench/micro/merger-memory.ts).
 */
export const NO_HELD: Held[] = [];
Object.freeze(NO_HELD);

export interface Held {
  id: number;
  pkt: Buffer;
  /** The segment in `pkt`, parsed once when it arrived. */
  seg: TcpSegment;
  /** Start and end (exclusive, SYN/FIN counted) in S's sequence space. */
  start: number;
  end: number;
  gso: boolean;
}

/**
 * Ranges S produced whose copies the kernel's merge dropped (its first
 * arrivals) and whose bytes the bridge therefore never had: their digests
 * (native/bpf/digest.h), so that P's copies are still compared.
 */
export interface KernelDigests {
  /** Where the first starts (S-space); each ends at `ends[i]`, the next starts there. */
  from: number;
  ends: number[];
  digests: BigUint64Array;
}

/** What one side's SYN (or SYN-ACK) said. */
export interface SynInfo {
  isn: number;
  mss: number;
  wscale: number; // −1: no window scaling
  sackOk: boolean;
  ts: number | null;
  /** The TSecr it carried (a SYN-ACK's: the client's first TSval). */
  tsecr: number | null;
  ecn: boolean;
  window: number;
  /** When the bridge saw it (ms, the merger's clock). */
  at: number;
}

/**
 * How far apart (ms, as the bridge saw them) the two servers' newest
 * SYN(-ACK)s may be to be paired. Each server answers every SYN the client
 * sends, and its own timer sends its answer again, at least a second apart:
 * two answers this close were sent for the same cause, at the same moment
 * on both clocks. Two further apart (one server's copy of the client's first
 * SYN was lost, a full accept queue drops a SYN: the other's answer to it
 * against this one's to the SYN sent again) would set a timestamp offset a
 * second off: the handshake waits for the next pair, which the client's next
 * SYN brings at the latest.
 */
export const SYN_PAIR_MS = 250;

/**
 * Whether the newest SYN(-ACK)s of both servers can be merged: they came
 * within SYN_PAIR_MS of each other, or they carry no timestamps. The merged
 * one carries S's newest TSval, and the client's echo of it is P's newest in
 * P's space: each server sent that very value. A Linux server in SYN-RECV
 * (6.15 on) takes the client's ACK only if its echo is one of its SYN-ACKs'
 * TSvals (between its first and its last), so no offset but theirs will do.
 */
export function synsPaired(p: SynInfo, s: SynInfo): boolean {
  return p.ts === null || s.ts === null || Math.abs(p.at - s.at) <= SYN_PAIR_MS;
}

/**
 * What a connection needs only while it opens, closes or waits: most of its
 * life these are null or false, and an idle connection holds none of them
 * (Conn's accessors; the object comes with the first value that is not the
 * default, and goes when all are back to theirs).
 */
type RareField = Exclude<keyof ConnRare, 'idle'>;

class ConnRare {
  /** P's SYN(-ACK), held until S's arrives. */
  heldSyn: Held | null = null;
  /** S-space sequence number of S's FIN, or null. */
  finS: number | null = null;
  finReleased: boolean = false;
  finClient: boolean = false;
  /**
   * When the connection ended — both FINs passed, or a reset did — or null.
   * Its entry lingers lingerMs after that (and its last segment) for late
   * segments, and gives its place to a new connection when the table is full.
   */
  closedAt: number | null = null;
  /** P's RST, held until S's (both servers aborted: one RST for the client). */
  rstP: Held | null = null;
  /** Since when the first held segment has been partly covered by S without progress, or null. */
  stallAt: number | null = null;
  /** When P's SYN(-ACK) was first held waiting for S's, or null. */
  heldSynAt: number | null = null;
  /** Since when (as seen by poll) the connection waits for S, or null. */
  waitingSince: number | null = null;
  /** Since when P's FIN is held because S's stream goes on past it, or null. */
  earlyEndAt: number | null = null;
  /** S's copies the kernel dropped, by digest: what P's bytes are compared with (KernelDigests), or null. */
  sDigests: KernelDigests | null = null;

  /** Every field at its default: the connection can let the object go. */
  idle(): boolean {
    return (
      this.heldSyn === null &&
      this.finS === null &&
      !this.finReleased &&
      !this.finClient &&
      this.closedAt === null &&
      this.rstP === null &&
      this.stallAt === null &&
      this.heldSynAt === null &&
      this.waitingSince === null &&
      this.earlyEndAt === null &&
      this.sDigests === null
    );
  }
}

export class Conn {
  /**
   * Sequence numbers, acknowledgments, timestamps and their offsets: 32-bit
   * values, stored signed (a small integer inline in the object) and read
   * unsigned through the accessors below. Stored as they are, half of them
   * sat above 2^31, each in a box of its own (~16 B).
   */
  private deltaSeq32 = 0;
  private tsOffset32 = 0;
  private relNxt32 = 0;
  private ackP32 = 0;
  private ackS32 = 0;
  private ackSent32 = 0;
  private ackClient32 = 0;
  private isn32 = 0;
  private clientNxt32 = 0;
  private edgeSent32 = 0;
  private tsvalS32 = 0;
  private tsvalP32 = 0;
  private tsvalSent32 = 0;
  private tsecr32 = 0;
  /** The rarely set fields (ConnRare), null while all are at their defaults. */
  private rare: ConnRare | null = null;
  private setRare<K extends RareField>(k: K, v: ConnRare[K], dflt: ConnRare[K]): void {
    if (this.rare) {
      this.rare[k] = v;
      if (v === dflt && this.rare.idle()) this.rare = null;
    } else if (v !== dflt) (this.rare = new ConnRare())[k] = v;
  }
  get heldSyn(): Held | null {
    return this.rare ? this.rare.heldSyn : null;
  }
  set heldSyn(v: Held | null) {
    this.setRare('heldSyn', v, null);
  }
  get finS(): number | null {
    return this.rare ? this.rare.finS : null;
  }
  set finS(v: number | null) {
    this.setRare('finS', v, null);
  }
  get finReleased(): boolean {
    return this.rare ? this.rare.finReleased : false;
  }
  set finReleased(v: boolean) {
    this.setRare('finReleased', v, false);
  }
  get finClient(): boolean {
    return this.rare ? this.rare.finClient : false;
  }
  set finClient(v: boolean) {
    this.setRare('finClient', v, false);
  }
  get closedAt(): number | null {
    return this.rare ? this.rare.closedAt : null;
  }
  set closedAt(v: number | null) {
    this.setRare('closedAt', v, null);
  }
  get rstP(): Held | null {
    return this.rare ? this.rare.rstP : null;
  }
  set rstP(v: Held | null) {
    this.setRare('rstP', v, null);
  }
  get stallAt(): number | null {
    return this.rare ? this.rare.stallAt : null;
  }
  set stallAt(v: number | null) {
    this.setRare('stallAt', v, null);
  }
  get heldSynAt(): number | null {
    return this.rare ? this.rare.heldSynAt : null;
  }
  set heldSynAt(v: number | null) {
    this.setRare('heldSynAt', v, null);
  }
  get waitingSince(): number | null {
    return this.rare ? this.rare.waitingSince : null;
  }
  set waitingSince(v: number | null) {
    this.setRare('waitingSince', v, null);
  }
  get earlyEndAt(): number | null {
    return this.rare ? this.rare.earlyEndAt : null;
  }
  set earlyEndAt(v: number | null) {
    this.setRare('earlyEndAt', v, null);
  }
  get sDigests(): KernelDigests | null {
    return this.rare ? this.rare.sDigests : null;
  }
  set sDigests(v: KernelDigests | null) {
    this.setRare('sDigests', v, null);
  }
  phase: ConnPhase = 'handshake';
  /** The SYN of each side, until the handshake is merged (then packed: synOptsP, synOptsS, synWinP, synWinS). */
  synP: SynInfo | null = null;
  synS: SynInfo | null = null;
  /**
   * What each side's SYN(-ACK) said that a retransmitted one needs, packed
   * into small integers once the handshake is merged (packSyn): two
   * SynInfo objects and their boxed numbers were ~270 B a connection.
   * 0 / −1: that side's SYN was not seen.
   */
  synOptsP = 0;
  synOptsS = 0;
  synWinP = -1;
  synWinS = -1;
  get deltaSeq(): number {
    return this.deltaSeq32 >>> 0;
  }
  set deltaSeq(v: number) {
    this.deltaSeq32 = v | 0;
  }
  get tsOffset(): number {
    return this.tsOffset32 >>> 0;
  }
  set tsOffset(v: number) {
    this.tsOffset32 = v | 0;
  }
  tsOn = false;
  wsP = 0;
  wsS = 0;
  /** Next S-space sequence number to release to the client. */
  get relNxt(): number {
    return this.relNxt32 >>> 0;
  }
  set relNxt(v: number) {
    this.relNxt32 = v | 0;
  }
  /** P's segments held until S covers them, in order. */
  held: Held[] = NO_HELD;
  store: ByteStore = new ByteStore(0);
  get ackP(): number {
    return this.ackP32 >>> 0;
  }
  set ackP(v: number) {
    this.ackP32 = v | 0;
  }
  get ackS(): number {
    return this.ackS32 >>> 0;
  }
  set ackS(v: number) {
    this.ackS32 = v | 0;
  }
  hasAckP = false;
  hasAckS = false;
  /** The SACK blocks of each server's latest ACK (the client's sequence space, shared by both). */
  sackP: ReadonlyArray<[number, number]> = NO_SACK_BLOCKS;
  sackS: ReadonlyArray<[number, number]> = NO_SACK_BLOCKS;
  winP = 0; // bytes (scaled)
  winS = 0;
  get ackSent(): number {
    return this.ackSent32 >>> 0;
  }
  set ackSent(v: number) {
    this.ackSent32 = v | 0;
  }
  /** The highest ACK the client sent (S's space), once hasAckClient. */
  get ackClient(): number {
    return this.ackClient32 >>> 0;
  }
  set ackClient(v: number) {
    this.ackClient32 = v | 0;
  }
  hasAckClient = false;
  /** The S-space ISN of the servers' side (the merged SYN-ACK's, or SYN's): a client ACK must be above it. */
  get isn(): number {
    return this.isn32 >>> 0;
  }
  set isn(v: number) {
    this.isn32 = v | 0;
  }
  /** The end of the client's last accepted segment (its sequence space), once hasClientNxt. */
  get clientNxt(): number {
    return this.clientNxt32 >>> 0;
  }
  set clientNxt(v: number) {
    this.clientNxt32 = v | 0;
  }
  hasClientNxt = false;
  /** How many of the client's segments the offload had handled at the last look. */
  offloadPackets = 0;
  /** Whether any ACK went to the client yet (ackSent means nothing before). */
  ackSentValid = false;
  get edgeSent(): number {
    return this.edgeSent32 >>> 0;
  }
  set edgeSent(v: number) {
    this.edgeSent32 = v | 0;
  }
  /**
   * Pure ACKs each server sent since the last segment to the client that
   * moved nothing, at the merged ACK: both servers answering the same client
   * segment (a keepalive, a zero-window probe, bytes both hold sent again).
   */
  standingP = 0;
  standingS = 0;
  get tsvalS(): number {
    return this.tsvalS32 >>> 0;
  }
  set tsvalS(v: number) {
    this.tsvalS32 = v | 0;
  }
  /** already in S's space */
  get tsvalP(): number {
    return this.tsvalP32 >>> 0;
  }
  set tsvalP(v: number) {
    this.tsvalP32 = v | 0;
  }
  /**
   * The highest TSval sent to the client (S's clock), by the bridge or the
   * kernel's merge: every later one is at least this. P's segments carry P's
   * clock, and a segment built here, or one of S's, may carry S's, which can
   * run a few ms ahead: a P segment released after it would read as older,
   * and the client drops a segment more than a tick older than the newest
   * at its left edge (PAWS).
   */
  get tsvalSent(): number {
    return this.tsvalSent32 >>> 0;
  }
  set tsvalSent(v: number) {
    this.tsvalSent32 = v | 0;
  }
  /** The TSval the client may be told now: the newer server's, never below one sent before (tsvalSent). */
  newestTsval(): number {
    return seqMax(seqMax(this.tsvalS, this.tsvalP), this.tsvalSent);
  }
  /** The kernel merges it (native/bpf/merge.h): its state is there until the bridge takes it. */
  inKernel = false;
  /** P's segments of it (primary-only) leave through the kernel's egress program, not the merger. */
  outInKernel = false;

  /**
   * Whether what the client was sent is known only to the kernel (relNxt
   * stands still here): its record of the client's ACK, which it took only
   * for bytes it saw leave, is then the one to believe.
   */
  get releasedByKernel(): boolean {
    return this.inKernel || this.outInKernel;
  }
  get tsecr(): number {
    return this.tsecr32 >>> 0;
  }
  set tsecr(v: number) {
    this.tsecr32 = v | 0;
  }
  lastSeen: number;
  /** When the connection was created. */
  readonly createdAt: number;
  /**
   * The client acknowledged the handshake (any ACK from it after the merge).
   * Until then the connection is half-open and expires after
   * handshakeTimeoutMs, whatever its phase (a SYN flood's entries).
   */
  established = false;

  /** The client's IPv4 address, stored signed as the sequence numbers are. */
  /** IPv4's as an int32 (a small integer to V8: no heap number per connection); IPv6's hex. */
  private readonly client32: number | string;
  get client(): IpAddr {
    return typeof this.client32 === 'number' ? this.client32 >>> 0 : this.client32;
  }

  constructor(
    client: IpAddr,
    readonly clientPort: number,
    readonly servicePort: number,
    now: number,
  ) {
    this.client32 = typeof client === 'number' ? client | 0 : client;
    this.lastSeen = now;
    this.createdAt = now;
  }

  /** Highest S-space sequence number S is known to have sent (out-of-order data included), or null. */
  sMax: number | null = null;
  /** When S last made progress: its ACK or what it produced moved forward (or the merge). */
  sProgressAt = 0;

  /** Whether P's SYN(-ACK) was seen: in the handshake, or merged since. */
  sawSynP(): boolean {
    return this.synP !== null || this.synOptsP !== 0;
  }

  /** The first byte at or after `from` the client has not acknowledged (S-space). */
  notAcked(from: number): number {
    return this.hasAckClient && seqGt(this.ackClient, from) ? this.ackClient : from;
  }

  /** Whether the connection waits for S: P's bytes or RST held, or the client's bytes acknowledged by P only. */
  waitsForS(): boolean {
    if (this.phase !== 'merging') return false;
    return this.held.length > 0 || this.rstP !== null || (this.hasAckP && this.hasAckS && seqGt(this.ackP, this.ackS));
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

/** The key of a connection in its client's map. */
export function connKey(port: number, servicePort: number): number {
  return port * 65536 + servicePort;
}

/** A SYN's options as its retransmission needs them, in one small integer (0: none seen). */
export interface SynOpts {
  mss: number;
  wscale: number; // −1: no window scaling
  sackOk: boolean;
  ecn: boolean;
}

const SYN_SEEN = 1 << 22;

/** SynInfo → one integer below 2^23: MSS (16 bits), window scale + 1 (4), SACK-permitted, ECN, and a bit that says it was seen. */
export function packSynOpts(s: SynInfo): number {
  return SYN_SEEN | (s.ecn ? 1 << 21 : 0) | (s.sackOk ? 1 << 20 : 0) | ((s.wscale + 1) << 16) | (s.mss & 0xffff);
}

/** packSynOpts's inverse; null for 0 (not seen). */
export function unpackSynOpts(w: number): SynOpts | null {
  if (!(w & SYN_SEEN)) return null;
  return { mss: w & 0xffff, wscale: ((w >> 16) & 0xf) - 1, sackOk: (w & (1 << 20)) !== 0, ecn: (w & (1 << 21)) !== 0 };
}

/** At the merge of the handshake: what later SYN(-ACK)s need from both SYNs, packed; the SynInfo objects go. */
export function packSyn(c: Conn): void {
  if (c.synP) {
    c.synOptsP = packSynOpts(c.synP);
    c.synWinP = c.synP.window;
  }
  if (c.synS) {
    c.synOptsS = packSynOpts(c.synS);
    c.synWinS = c.synS.window;
  }
  c.synP = null;
  c.synS = null;
}

export function synInfo(seg: TcpSegment, opts: readonly TcpOption[], at: number): SynInfo {
  const info: SynInfo = {
    isn: seg.seq,
    mss: 536,
    wscale: -1,
    sackOk: false,
    ts: null,
    tsecr: null,
    ecn: seg.has(TCP_ECE),
    window: seg.window,
    at,
  };
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
