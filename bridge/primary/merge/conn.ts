/**
 * One failover connection as the merger sees it: what each side's SYN said,
 * the offsets between P's and S's spaces (Δseq, the timestamp offset, the
 * window scales), P's segments held in the kernel's queue, S's bytes stored,
 * and what each side — the two servers and the client — acknowledged.
 */
import { seqAdd, seqGt } from '../../wire/seq.js';
import { MAX_WSCALE, type TcpOption } from '../../wire/tcp-options.js';
import { TCP_ECE, type TcpSegment } from '../../wire/tcp.js';
import { ByteStore } from '../byte-store.js';

export type ConnPhase = 'handshake' | 'merging' | 'degraded' | 'closed';

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
  /**
   * Pure ACKs each server sent since the last segment to the client that
   * moved nothing, at the merged ACK: both servers answering the same client
   * segment (a keepalive, a zero-window probe, bytes both hold sent again).
   */
  standingP = 0;
  standingS = 0;
  tsvalS = 0;
  tsvalP = 0; // already in S's space
  /** The highest TSval the kernel's merge sent the client, once it did (P's later segments never go below it). */
  tsvalFloor: number | null = null;
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
  /**
   * When the connection ended — both FINs passed, or a reset did — or null.
   * Its entry lingers lingerMs after that (and its last segment) for late
   * segments, and gives its place to a new connection when the table is full.
   */
  closedAt: number | null = null;
  /** P's RST, held until S's (both servers aborted: one RST for the client). */
  rstP: Held | null = null;

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

export function synInfo(seg: TcpSegment, opts: readonly TcpOption[]): SynInfo {
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
