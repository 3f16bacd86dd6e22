/**
 * The handshake (paper §7): the offsets between P's and S's spaces, taken
 * from both SYN(-ACK)s once both are in, and the options the client may be
 * told — MSS = min, window scale = S's (the client keeps S after a
 * failover), SACK, timestamps and ECN only if both servers offered them.
 */
import { seqAdd, seqMin, seqSub } from '../../wire/seq.js';
import { TCP_ECE, type TcpSegment } from '../../wire/tcp.js';
import { ByteStore } from '../byte-store.js';
import { packSyn, unpackSynOpts, type Conn, type Held } from './conn.js';
import { kernelOf, offloadKey, type MergeCore } from './types.js';

/**
 * Merges the handshake of `c` (`alone`: without S, P's numbers are the
 * client's) and returns P's held SYN(-ACK), which the caller releases
 * (release(…, syn = true)).
 */
export function mergeHandshake(core: MergeCore, c: Conn, alone: boolean): Held {
  handshakeNumbers(core, c, alone);
  // From here on the kernel may translate the client's common segments itself.
  const kernel = kernelOf(core, c);
  kernel?.add(offloadKey(core, c), c.deltaSeq, c.tsOffset, c.tsOn, c.wsS);
  // Begun alone: P's segments after its SYN-ACK (which still goes through the queue) may leave in the kernel.
  if (alone)
    c.outInKernel = kernel?.primaryOnly(offloadKey(core, c), c.deltaSeq, c.tsOffset, c.tsOn, c.wsP, c.wsS) ?? false;
  const h = c.heldSyn!;
  c.heldSyn = null;
  c.heldSynAt = null;
  core.pending.delete(c);
  packSyn(c);
  return h;
}

/**
 * A handshake the kernel merged (native/bpf/handshake.h) into the record of
 * `c`, whose synP and synS hold both SYN-ACKs (or both SYNs): the same
 * numbers as mergeHandshake, and what the kernel's SYN-ACK told the client —
 * the ACK both servers gave and the smaller of their windows (a SYN tells
 * none). The kernel made the connection's entries itself.
 */
export function kernelHandshake(core: MergeCore, c: Conn): void {
  handshakeNumbers(core, c, false);
  packSyn(c);
  if (c.hasAckP && c.hasAckS) {
    c.ackSent = seqMin(c.ackP, c.ackS);
    c.ackSentValid = true;
  }
  // The right edge as release() keeps it for a SYN(-ACK) it sends (its window unscaled).
  c.edgeSent = seqAdd(c.ackSent, Math.min(c.synWinP, c.synWinS));
}

/** The offsets and the client's view of `c` from both SYN(-ACK)s (`alone`: P's only). */
function handshakeNumbers(core: MergeCore, c: Conn, alone: boolean): void {
  const p = c.synP!;
  const s = alone ? p : c.synS!;
  c.deltaSeq = seqSub(p.isn, s.isn);
  c.tsOn = p.ts !== null && s.ts !== null;
  c.tsOffset = c.tsOn ? seqSub(p.ts!, s.ts!) : 0;
  c.wsP = Math.max(0, p.wscale);
  c.wsS = Math.max(0, s.wscale);
  c.isn = s.isn;
  c.relNxt = seqAdd(s.isn, 1);
  c.store = new ByteStore(c.relNxt, core.buffered, core.pool);
  c.phase = alone ? 'degraded' : 'merging';
  c.tsvalP = s.ts ?? 0;
  c.tsvalS = s.ts ?? 0;
  c.tsvalSent = s.ts ?? 0;
  // The echo starts at the client's first TSval, not 0: "later than 0" is
  // false for half of all clocks in serial arithmetic, and the echo would stay 0.
  c.tsecr = s.tsecr ?? p.tsecr ?? 0;
  core.stats.handshakes++;
}

/**
 * P's SYN(-ACK) options in place (same lengths, NOPs where one goes away):
 * MSS = min, window scale = S's, SACK-permitted and timestamps only if both
 * offered them, ECE only if both did.
 */
export function rewriteSynOptions(c: Conn, seg: TcpSegment): void {
  const p = unpackSynOpts(c.synOptsP);
  const s = c.phase === 'merging' ? unpackSynOpts(c.synOptsS) : p;
  if (!p || !s) return;
  seg.writeMss(Math.min(p.mss, s.mss));
  seg.writeWscale(s.wscale < 0 ? null : s.wscale);
  if (!s.sackOk) seg.removeSackPermitted();
  if (!c.tsOn) seg.removeTimestamps();
  if (p.ecn && !s.ecn) seg.clearFlags(TCP_ECE);
}
