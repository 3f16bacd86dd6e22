/**
 * The kernel's share of the merge (native/bpf/merge.h): a merged connection
 * starts there once its handshake is merged, and the kernel releases each
 * range whose second copy arrives, the servers' FINs too, and passes the
 * client's FIN; a close that passed there is told (KernelEnded). At the
 * first thing the kernel does not handle — a SYN or RST, SACK, a copy that
 * does not line up, different bytes — the connection comes here, with the
 * kernel's state (and goes back once nothing of it waits on either side:
 * kernelResume):
 * what the client was sent, each server's ACK and window, the timestamps,
 * and the ranges one side produced that wait for the other's copy (P's were
 * stolen and come again from P's TCP; S's were dropped, their bytes counted
 * as produced, and P's copies compared with their digests: digestsMatch).
 */
import { seqAdd, seqGt, seqLt, seqSub } from '../../wire/seq.js';
import type { Conn, KernelDigests, SynInfo } from './conn.js';
import type { MergeCore } from './types.js';

/** What the client was told and each server said, in the client's spaces. */
interface KernelAcks {
  /** What the client was sent up to. */
  relNxt: number;
  ackP: number;
  ackS: number;
  /** Windows, bytes. */
  winP: number;
  winS: number;
  ackSent: number;
  edgeSent: number;
  tsvalMax: number;
  tsecr: number;
}

/** How a connection the kernel is to merge starts. */
export interface KernelMergeInit extends KernelAcks {
  /** Both servers acknowledged the client and the client was told: false for a server-initiated connection, whose servers' ACKs come next. */
  acksKnown: boolean;
  dseq: number;
  dts: number;
  timestamps: boolean;
  wscaleP: number;
  wscaleS: number;
}

/** The kernel's state of a connection when the bridge took it. */
export interface KernelMergeState extends KernelAcks {
  flags: number;
  /** Why the kernel let it go (KERNEL_HANDOVER_REASONS). */
  handover: number;
  /** How long it had waited for S when taken, ms (P's ranges, or P's ACK past S's); unit tests' fakes may leave it out. */
  waitMs?: number;
  /** 0 neither, 1 P's segments waited (stolen), 2 S's copies came first (dropped). */
  ahead: number;
  /** The waiting ranges' ends, oldest first; the first starts at relNxt. */
  pending: number[];
  /** Their digests (native/bpf/digest.h), 8 bytes each in host order; unit tests' fakes may leave them out. */
  digests?: Buffer;
  /**
   * Copies of P's segments the kernel stole and kept (bpf/maps.h `stash`):
   * its waiting first arrivals, and the one stolen as it let the
   * connection go — IP packets as P's TCP sent them (TCP sum partial).
   */
  stashed: Buffer[];
}

/** merge_flags in native/bpf/maps.h. */
export const KERNEL_DIVERGED = 1 << 1;
const KERNEL_ACK_P = 1 << 2;
const KERNEL_ACK_S = 1 << 3;
const KERNEL_SENT = 1 << 4;
/** The servers' FIN went to the client. */
export const KERNEL_FIN = 1 << 5;
/** The last waiting range ends with its side's FIN. */
export const KERNEL_FIN_PENDING = 1 << 6;
/** The client's FIN reached P's TCP in the kernel. */
export const KERNEL_FIN_CLIENT = 1 << 7;
/** The client's RST ended the connection in the kernel. */
export const KERNEL_RESET = 1 << 9;
const AHEAD_S = 2;
/** merge_handover in native/bpf/maps.h, by value. */
export const KERNEL_HANDOVER_REASONS = [
  'none',
  'bridge',
  'unaligned',
  'diverged',
  'full',
  'segment',
  'slow',
  'large',
  'ack-lag',
] as const;

/**
 * What the kernel needs to merge `c` once its merged SYN-ACK (or SYN) leaves —
 * what that tells the client: the smaller ACK, the smaller (unscaled) window,
 * S's sequence and timestamp spaces. A server-initiated connection's SYNs
 * acknowledge nothing: the servers' ACKs of the client's SYN-ACK come next,
 * and the kernel takes those as they come.
 */
export function kernelInit(c: Conn): KernelMergeInit | null {
  if (!c.synOptsP || !c.synOptsS) return null;
  const acksKnown = c.hasAckP && c.hasAckS;
  const ack = !acksKnown ? 0 : seqLt(c.ackP, c.ackS) ? c.ackP : c.ackS;
  return {
    acksKnown,
    dseq: c.deltaSeq,
    dts: c.tsOffset,
    timestamps: c.tsOn,
    wscaleP: c.wsP,
    wscaleS: c.wsS,
    relNxt: c.relNxt,
    ackP: acksKnown ? c.ackP : 0,
    ackS: acksKnown ? c.ackS : 0,
    winP: c.winP,
    winS: c.winS,
    ackSent: ack,
    edgeSent: acksKnown ? seqAdd(ack, Math.min(c.synWinP, c.synWinS)) : 0,
    tsvalMax: c.newestTsval(),
    tsecr: c.tsecr,
  };
}

/**
 * What the kernel needs to merge `c` again, which the bridge took from it —
 * or null while something of it waits or is under way here. The rule: the
 * connection returns when nothing waits on either side. Both servers
 * produced exactly what the client was sent (no segment of P's held, none of
 * S's bytes stored or counted past it), both servers' ACKs and what the
 * client was told are known, neither server's ACK carries SACK blocks, and no
 * FIN, RST, stall or divergence is under way — whatever the kernel let it
 * go for: one let go for a segment larger than it merges (a jumbo-frame
 * LAN's) returns too, for its next answers may be small (docs/kernel-fast-path.md,
 * bench/micro/jumbo.ts). The kernel then starts where
 * the bridge stands, as it starts from a merged handshake; a segment of the
 * connection that still reaches the queues afterwards (one that passed the
 * programs before the return) goes back to the kernel if it is P's and the
 * match would let it past now, and otherwise takes the connection back, as
 * any segment that reaches the bridge first does: no byte is released twice
 * or never.
 */
export function kernelResume(c: Conn): KernelMergeInit | null {
  // Not `established`: of a connection merged in the kernel from its handshake the bridge
  // seldom sees the client's ACK (the kernel translates it), and the kernel took such
  // connections from their handshake on.
  if (c.inKernel || c.outInKernel || c.phase !== 'merging') return null;
  if (c.held.length > 0 || c.store.size > 0 || c.sCovered() !== c.relNxt) return null;
  if (!c.hasAckP || !c.hasAckS || !c.ackSentValid) return null;
  if (c.sackP.length > 0 || c.sackS.length > 0) return null;
  if (c.heldSyn || c.rstP || c.finS !== null || c.finReleased || c.finClient || c.closedAt !== null) return null;
  if (c.stallAt !== null || c.earlyEndAt !== null) return null;
  // Nor while the client's bytes P acknowledged wait for S's ACK too: the
  // bridge bounds that wait (the kernel lets the connection go once it
  // lasts: merge_handover's ack-lag).
  if (c.waitsForS()) return null;
  const init = kernelInit(c);
  if (!init) return null;
  init.ackSent = c.ackSent;
  init.edgeSent = c.edgeSent;
  return init;
}

/** The digests of S's ranges the kernel kept without their bytes, from its state; null if none. */
function digestsOf(s: KernelMergeState): KernelDigests | null {
  if (s.ahead !== AHEAD_S || !s.digests || s.pending.length === 0) return null;
  // A FIN waiting at the end is a range of its own, of no bytes.
  const n = s.flags & KERNEL_FIN_PENDING ? s.pending.length - 1 : s.pending.length;
  if (n <= 0 || s.digests.length < n * 8) return null;
  const digests = new BigUint64Array(n);
  Buffer.from(digests.buffer).set(s.digests.subarray(0, n * 8));
  return { from: s.relNxt, ends: s.pending.slice(0, n), digests };
}

/**
 * Whether P's bytes `data` at `seq` (S-space) match the digests of S's
 * ranges the kernel kept without their bytes, each range they cover whole;
 * a range they cover in part is not compared (as the bytes of a diverted
 * copy lost on the LAN are not). Ranges the client was sent are forgotten.
 */
export function digestsMatch(core: MergeCore, c: Conn, seq: number, data: Buffer): boolean {
  const d = c.sDigests;
  if (!d) return true;
  if (!seqLt(c.relNxt, d.ends[d.ends.length - 1]!)) {
    c.sDigests = null;
    return true;
  }
  const digest = core.offload?.digest;
  if (!digest) return true;
  const end = seqAdd(seq, data.length);
  let from = d.from;
  for (let i = 0; i < d.ends.length; i++) {
    const e = d.ends[i]!;
    if (!seqLt(from, end)) break;
    // 0: the kernel could not read the range (never for a segment it merges); not compared.
    if (!seqLt(from, seq) && !seqGt(e, end) && d.digests[i] !== 0n) {
      core.stats.digestsCompared++;
      if (digest(data.subarray(seqSub(from, seq), seqSub(e, seq))) !== d.digests[i]) {
        core.stats.digestMismatches++;
        return false;
      }
    }
    from = e;
  }
  return true;
}

/** S's bytes [seq, seq + data.length) as the bridge knows them: its store's, and the kernel's digests where it dropped them. */
export function sMatches(core: MergeCore, c: Conn, seq: number, data: Buffer): boolean {
  return c.store.matches(seq, data) && digestsMatch(core, c, seq, data);
}

/** Takes the kernel's state of `c` into the record, at `now`. */
export function adoptKernelState(c: Conn, s: KernelMergeState, now: number): void {
  c.relNxt = s.relNxt;
  if (s.flags & KERNEL_ACK_P) {
    c.ackP = s.ackP;
    c.winP = s.winP;
    c.hasAckP = true;
  }
  if (s.flags & KERNEL_ACK_S) {
    c.ackS = s.ackS;
    c.winS = s.winS;
    c.hasAckS = true;
  }
  if (s.flags & KERNEL_SENT) {
    c.ackSent = s.ackSent;
    c.ackSentValid = true;
    c.edgeSent = s.edgeSent;
  }
  c.standingP = c.standingS = 0;
  if (c.tsOn) {
    if (seqGt(s.tsvalMax, c.tsvalP)) c.tsvalP = s.tsvalMax;
    if (seqGt(s.tsvalMax, c.tsvalS)) c.tsvalS = s.tsvalMax;
    if (seqGt(s.tsecr, c.tsecr)) c.tsecr = s.tsecr;
    if (seqGt(s.tsvalMax, c.tsvalSent)) c.tsvalSent = s.tsvalMax;
  }
  // S's store starts where the client is; what S produced beyond it (its
  // copies the kernel dropped) counts as produced, without bytes — its FIN
  // too, where its last dropped copy carried one.
  c.store.clear();
  c.store.advance(c.relNxt);
  const sEnd = s.ahead === AHEAD_S && s.pending.length ? s.pending[s.pending.length - 1]! : null;
  const sFin = sEnd !== null && (s.flags & KERNEL_FIN_PENDING) !== 0;
  c.sDigests = digestsOf(s);
  c.sMax = sEnd === null ? c.relNxt : sFin ? seqSub(sEnd, 1) : sEnd;
  if (sFin) c.finS = seqSub(sEnd, 1);
  if (s.flags & KERNEL_FIN) {
    // Both servers' FINs went out: the stream ended one before relNxt.
    c.finS = seqSub(c.relNxt, 1);
    c.finReleased = true;
  }
  if (s.flags & KERNEL_FIN_CLIENT) c.finClient = true;
  if (s.flags & KERNEL_RESET) c.phase = 'closed';
  // S's silence counts from when the wait for it began in the kernel, not
  // from the take: a connection let go as S's ACK lagged (an upload) is
  // taken only at P's next segment, which a stalled client sends at its
  // backed-off retransmissions.
  const waited = Math.max(0, s.waitMs ?? 0);
  c.sProgressAt = now - waited;
  if (waited > 0) c.waitingSince = now - waited;
}

/**
 * A connection whose close (the client's FIN and the servers') passed in the
 * kernel, or that the client's RST ended there (native/bpf/maps.h `end_event`).
 */
export interface KernelEnded {
  client: number;
  service: number;
  clientPort: number;
  servicePort: number;
  /** Its Δseq: which connection on these ports. */
  dseq: number;
  /** The client's RST ended it. */
  reset: boolean;
}

/**
 * Counts a connection the kernel let go, by why; one the bridge took from it
 * (reason "bridge") also by what brought it (`by`, as "p/data").
 */
export function countHandover(core: MergeCore, s: KernelMergeState, by: string): void {
  const why = KERNEL_HANDOVER_REASONS[s.handover] ?? 'none';
  core.stats.kernelHandovers[why] = (core.stats.kernelHandovers[why] ?? 0) + 1;
  if (why === 'bridge') core.stats.kernelTakes[by] = (core.stats.kernelTakes[by] ?? 0) + 1;
}

/**
 * A handshake the kernel merged (native/bpf/maps.h `hs_event`): both
 * SYN-ACKs (or both SYNs) as they were, the client's connection by its
 * addresses and ports.
 */
export interface KernelHandshake {
  client: number;
  service: number;
  clientPort: number;
  servicePort: number;
  /** The client's ISN + 1: what both servers acknowledged (0 for SYNs). */
  ack: number;
  /** Both were SYNs: a connection the servers open; their ACKs of the client's SYN-ACK come next. */
  syn: boolean;
  /** The client's TSval both echoed (timestamps only). */
  tsecr: number;
  p: KernelSynAck;
  s: KernelSynAck;
}

/** One server's SYN-ACK, as the kernel read it. */
export interface KernelSynAck {
  isn: number;
  mss: number;
  /** −1: no window scaling. */
  wscale: number;
  sackOk: boolean;
  /** null: no timestamps. */
  tsval: number | null;
  window: number;
}

/** What the record of a connection the kernel merged the handshake of starts with: each server's SYN-ACK as the queue would have read it. */
export function kernelSynInfo(h: KernelHandshake, side: 'p' | 's'): SynInfo {
  const a = h[side];
  return {
    isn: a.isn,
    mss: a.mss,
    wscale: a.wscale,
    sackOk: a.sackOk,
    ts: a.tsval,
    tsecr: a.tsval === null ? null : h.tsecr,
    ecn: false,
    window: a.window,
    at: 0, // the kernel paired the two: the time is not needed
  };
}
