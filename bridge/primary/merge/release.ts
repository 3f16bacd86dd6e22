/**
 * Releasing P's output (paper §3.4, §4): P's segments are held in the
 * kernel's queue until S's bytes cover them, compared, and let go rewritten
 * into S's spaces — seq − Δseq, TSval − offset, the merged ACK and window.
 * Retransmissions pass straight through; what breaks a stall (a covered
 * prefix sent on its own, S's retransmission of released bytes) and what
 * ends replication of a connection (degrade) live here too.
 */
import { seqAdd, seqGt, seqLe, seqLt, seqMax, seqMin, seqSub } from '../../wire/seq.js';
import type { TcpOption } from '../../wire/tcp-options.js';
import { isIp6 } from '../../../net/addr.js';
import { buildIpTcp, trimPayloadFront } from '../../wire/ip.js';
import { TCP_ACK_FLAG, TCP_FIN, TCP_PSH, TCP_RST, type TcpSegment } from '../../wire/tcp.js';
import { mergedAck, mergedSack, mergedWindowBytes, refresh, windowField, type Side } from './ack.js';
import { NO_HELD, type Conn } from './conn.js';
import { rewriteSynOptions } from './handshake.js';
import { sMatches } from './kernel.js';
import { kernelOf, offloadKey, serviceFor, type MergeCore } from './types.js';

const EMPTY = Buffer.alloc(0);

/**
 * Rewrites P's segment into S's spaces — seq − Δseq, TSval − offset, the
 * merged ACK and window — and accepts it.
 */
export function release(
  core: MergeCore,
  c: Conn,
  id: number,
  pkt: Buffer,
  seg: TcpSegment,
  gso: boolean,
  syn: boolean,
): void {
  // A segment without data says "next byte is relNxt": P's own next sequence
  // number may be ahead of what has been released while P's data is held.
  const bare = seg.seqLength === 0 && !seg.has(TCP_RST);
  const start = bare ? c.relNxt : seqSub(seg.seq, c.deltaSeq);
  seg.writeSeq(start);
  if (syn) rewriteSynOptions(c, seg);
  if (seg.has(TCP_ACK_FLAG)) {
    const ack = mergedAck(c);
    seg.writeAck(ack);
    if (c.phase === 'merging' && !syn && seg.hasSack()) seg.writeSackBlocks(mergedSack(c));
    if (!c.ackSentValid || seqGt(ack, c.ackSent)) {
      c.ackSent = ack;
      c.ackSentValid = true;
    }
  }
  const win = syn
    ? Math.min(c.synWinP < 0 ? seg.window : c.synWinP, c.synWinS < 0 ? seg.window : c.synWinS)
    : windowField(c, mergedWindowBytes(c), false);
  seg.writeWindow(syn ? Math.min(win, 0xffff) : win);
  // The right edge the client now believes in (a SYN's window is unscaled).
  c.edgeSent = seqAdd(c.ackSent, syn ? win : win * 2 ** c.wsS);
  c.standingP = c.standingS = 0;
  if (c.tsOn) {
    const ts = seg.timestamp();
    if (ts) {
      // Never below what the client was sent already (S's clock may run ahead of P's): PAWS.
      const v = seqSub(ts.tsval, c.tsOffset);
      if (seqGt(c.tsvalSent, v)) seg.writeTsval(c.tsvalSent);
      else {
        seg.writeTsval(v);
        c.tsvalSent = v;
      }
    }
  }
  // Mangled packets leave nfqueue as CHECKSUM_NONE: a complete sum, except for
  // GSO packets, which the kernel segments in software and sums itself.
  if (!gso) seg.fillChecksum();
  const end = seqAdd(start, seg.seqLength);
  if (seqGt(end, c.relNxt)) c.relNxt = end;
  core.stats.releasedSegments++;
  core.stats.releasedBytes += seg.payloadLength;
  core.sink.accept(id, pkt);
}

/** Releases held P segments whose bytes S has produced, in order. */
export function releaseCovered(core: MergeCore, c: Conn, now: number, covered = c.sCovered()): void {
  while (c.held.length) {
    const h = c.held[0]!;
    if (c.finS !== null && seqGt(h.end, seqAdd(c.finS, 1))) {
      // P produced bytes past the end of S's stream.
      core.stats.divergences++;
      degrade(core, c, 'P sent past S’s FIN', true);
      return;
    }
    if (!seqLe(h.end, covered)) break;
    const seg = h.seg;
    const dataStart = h.start;
    const fin = seg.has(TCP_FIN);
    const dataEnd = fin ? seqSub(h.end, 1) : h.end;
    const payload = seg.payload;
    const finMismatch = fin && c.finS !== dataEnd;
    if (
      finMismatch &&
      (c.finS === null || seqGt(c.finS, dataEnd)) &&
      sMatches(core, c, dataStart, payload.subarray(0, seqSub(dataEnd, dataStart)))
    ) {
      // P's stream ends here, S's goes on: held, in case P's server died
      // and the secondary is about to continue the connection (earlyEndGraceMs).
      c.earlyEndAt ??= now;
      if (now - c.earlyEndAt < core.cfg.earlyEndGraceMs) {
        core.earlyEnded.add(c);
        break;
      }
    }
    if (finMismatch || !sMatches(core, c, dataStart, payload.subarray(0, seqSub(dataEnd, dataStart)))) {
      core.stats.divergences++;
      degrade(core, c, finMismatch ? 'FIN at different offsets' : 'different bytes at the same offset', true);
      return;
    }
    if (c.held.length === 1) c.held = NO_HELD;
    else c.held.shift();
    const sent = seqLt(dataStart, c.relNxt) ? Math.min(seqSub(c.relNxt, dataStart), payload.length) : 0;
    if (sent > 0 && sent === payload.length && !fin) {
      // Every byte of it went out already, in prefixes (releasePrefix).
      core.sink.drop(h.id);
      continue;
    }
    if (sent > 0) {
      // Its first bytes went out already as a prefix: only the rest goes now
      // (sent again, they took link capacity and drew duplicate-ACKs).
      const rest = trimPayloadFront(h.pkt, seg, sent);
      core.stats.prefixBytesTrimmed += sent;
      release(core, c, h.id, rest.pkt, rest.seg, h.gso, false);
    } else {
      release(core, c, h.id, h.pkt, seg, h.gso, false);
    }
    if (fin) {
      c.finReleased = true;
      if (c.finClient) core.ended(c, c.lastSeen);
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
export function releasePrefix(core: MergeCore, c: Conn): void {
  const h = c.held[0];
  if (!h) return;
  const covered = c.sCovered();
  const from = seqMax(h.start, c.relNxt);
  if (!seqLt(from, covered) || !seqLt(covered, h.end)) return;
  const payload = h.seg.payload;
  if (!sMatches(core, c, h.start, payload.subarray(0, seqSub(covered, h.start)))) {
    core.stats.divergences++;
    degrade(core, c, 'different bytes at the same offset', true);
    return;
  }
  sendRange(core, c, h.start, payload, from, covered);
  c.relNxt = covered;
  c.store.advance(covered);
  core.stats.prefixReleases++;
}

/** Starts or ends the stall clock of `c`: its first held segment partly covered by S. */
export function checkStall(core: MergeCore, c: Conn, now: number): void {
  const partly = c.phase === 'merging' && c.held.length > 0 && seqGt(c.sCovered(), seqMax(c.held[0]!.start, c.relNxt));
  if (partly) {
    if (c.stallAt === null) {
      c.stallAt = now;
      core.stalled.add(c);
    }
  } else if (c.stallAt !== null) {
    c.stallAt = null;
    core.stalled.delete(c);
  }
}

/**
 * A connection stops being replicated: divergence, a secondary reset, or a
 * secondary failure. Held bytes go out as P produced them (the client never
 * got a byte of S's that P did not also produce), Δseq stays.
 */
export function degrade(core: MergeCore, c: Conn, why: string, diverged = false, quiet = false): void {
  if (c.phase !== 'merging') return;
  c.phase = 'degraded';
  if (diverged) core.diverged.add(c);
  // Quiet when every connection goes at once (the secondary failed): one line says so for all.
  if (!quiet) core.event(`degraded to primary-only: ${why}`, c);
  c.store.clear();
  const held = c.held;
  c.held = NO_HELD;
  c.stallAt = null;
  core.stalled.delete(c);
  for (const h of held) release(core, c, h.id, h.pkt, h.seg, h.gso, false);
  // P had aborted: its RST goes out after its bytes.
  releaseHeldRst(core, c);
  // What P acknowledged past S's, and no segment of P's carried (an upload
  // whose secondary fell silent): the client hears it now, not after its
  // next retransmission, which its backed-off timer may hold for seconds.
  if (c.phase === 'degraded' && c.hasAckP && c.ackSentValid && seqGt(c.ackP, c.ackSent) && !c.finClient)
    sendAck(core, c, false);
  // What P sends from now on may leave in the kernel (the held copies went first, marked as ours).
  // (Already, when the secondary's failure put it there in a batch: Merger.releaseInKernelAtOnce.)
  if (c.phase === 'degraded' && !c.outInKernel)
    c.outInKernel =
      kernelOf(core, c)?.primaryOnly(offloadKey(core, c), c.deltaSeq, c.tsOffset, c.tsOn, c.wsP, c.wsS) ?? false;
}

/** P's held RST (it had aborted) goes out, and the connection ends. */
function releaseHeldRst(core: MergeCore, c: Conn, now?: number): void {
  const rst = c.rstP;
  if (!rst) return;
  c.rstP = null;
  c.phase = 'closed';
  release(core, c, rst.id, rst.pkt, rst.seg, rst.gso, false);
  core.ended(c, now);
}

/**
 * Both servers aborted (P's RST held, S's in): the held bytes S produced
 * too go out, the rest is dropped (an abort discards unsent data), then P's
 * RST — the client is reset as by a plain server (SO_LINGER 0) — and the
 * connection ends.
 */
export function abortBoth(core: MergeCore, c: Conn, now: number): void {
  releaseCovered(core, c, now);
  if (!c.rstP) return; // the replicas differed: degrade() sent P's bytes and RST
  for (const h of c.held) core.sink.drop(h.id);
  c.held = NO_HELD;
  c.stallAt = null;
  core.stalled.delete(c);
  core.earlyEnded.delete(c);
  releaseHeldRst(core, c, now);
}

/**
 * A segment without data from P (id ≥ 0, held in the queue) or S (id −1,
 * already consumed). It goes out when the merged ACK advanced, as a
 * duplicate ACK from the lagging side (fast retransmit needs those), or when
 * the window opened; otherwise it is absorbed.
 */
export function pureAck(
  core: MergeCore,
  c: Conn,
  id: number,
  pkt: Buffer,
  seg: TcpSegment,
  gso: boolean,
  side: Side,
): void {
  if (c.phase === 'merging' && !(c.hasAckP && c.hasAckS)) {
    // One server has not acknowledged anything yet (the last step of a
    // server-initiated handshake): the minimum is nothing.
    if (id >= 0) core.sink.drop(id);
    return;
  }
  const m = mergedAck(c);
  const mine = side === 'P' ? c.ackP : c.ackS;
  const other = side === 'P' ? c.ackS : c.ackP;
  const winBytes = mergedWindowBytes(c);
  const edge = seqAdd(m, Math.floor(winBytes / 2 ** c.wsS) * 2 ** c.wsS);
  const advanced = !c.ackSentValid || seqGt(m, c.ackSent);
  // The lagging side's duplicate ACKs carrying SACK blocks (what drives the
  // client's fast retransmit); when both lag equally, P speaks for both.
  // Other same-ACK segments are absorbed, as in §3.4.
  const dup = !advanced && m === mine && (side === 'P' ? seqLe(mine, other) : seqLt(mine, other)) && seg.hasSack();
  // A window update means nothing once the client has sent its FIN (it
  // sends no more data) — and after its close, an extra ACK only draws a
  // reset from its stack.
  const opened =
    !c.finClient &&
    (seqGt(edge, seqAdd(c.edgeSent, 2 * core.cfg.mtu)) || (c.edgeSent === c.ackSent && seqGt(edge, c.edgeSent)));
  // Both servers answered a client segment without moving: a keepalive, a
  // zero-window probe, a FIN or bytes both hold sent again. The client gets
  // one answer, else its keepalives go unanswered until it gives up, and a
  // zero window whose update was lost never reopens.
  if (!advanced && m === mine) {
    if (side === 'P') c.standingP++;
    else c.standingS++;
  }
  // After the client's FIN only a repeat of what it has (an answer to its FIN
  // sent again): a changed window there is no answer, and could meet a
  // closed socket.
  const answer = !advanced && c.standingP > 0 && c.standingS > 0 && (!c.finClient || edge === c.edgeSent);
  if (!advanced && !dup && !opened && !answer) {
    if (id >= 0) core.sink.drop(id);
    return;
  }
  if (side === 'P' && id >= 0) {
    // Forward P's own ACK (its SACK blocks are in the client's space already).
    release(core, c, id, pkt, seg, gso, false);
    return;
  }
  sendAck(core, c, side === 'S');
}

/** After new data from either side: send an ACK if the merged ACK moved and nothing carried it. */
export function maybeAck(core: MergeCore, c: Conn): void {
  if (c.phase !== 'merging') return;
  const m = mergedAck(c);
  if ((!c.ackSentValid || seqGt(m, c.ackSent)) && c.hasAckP && c.hasAckS) sendAck(core, c, false);
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
export function secondaryRetransmission(core: MergeCore, c: Conn, seg: TcpSegment, now: number): void {
  refresh(core, c, now);
  const from = c.notAcked(seg.seq);
  const to = seqMin(c.relNxt, seqAdd(seg.seq, seg.payloadLength));
  if (!seqLt(from, to)) return;
  core.stats.secondaryRetransmissions++;
  sendRange(core, c, seg.seq, seg.payload, from, to);
}

/** Sends bytes [from, to) of `payload` (which starts at S-space `start`) as MTU-sized segments. */
export function sendRange(core: MergeCore, c: Conn, start: number, payload: Buffer, from: number, to: number): void {
  // The IP header (IPv4's 20 bytes, IPv6's 40), TCP's 20 and a timestamp option's 12.
  const chunk = core.cfg.mtu - (isIp6(c.client) ? 40 : 20) - 20 - 12;
  for (let at = from; seqLt(at, to);) {
    const off = seqSub(at, start);
    if (off >= payload.length) break;
    const n = Math.min(chunk, seqSub(to, at), payload.length - off);
    sendSegment(core, c, at, payload.subarray(off, off + n));
    at = seqAdd(at, n);
  }
}

/** A segment to the client in S's spaces, built here: the merged ACK and window, the newest timestamps. */
function build(core: MergeCore, c: Conn, seq: number, flags: number, options: TcpOption[], payload: Buffer): Buffer {
  const ack = mergedAck(c);
  const win = windowField(c, mergedWindowBytes(c), false);
  const pkt = buildIpTcp(
    { src: serviceFor(core.cfg, c.client), dst: c.client, ttl: 64 },
    { srcPort: c.servicePort, dstPort: c.clientPort, seq, ack, flags, window: win, urgent: 0, options, payload },
  );
  c.ackSent = ack;
  c.ackSentValid = true;
  c.edgeSent = seqAdd(ack, win * 2 ** c.wsS);
  c.standingP = c.standingS = 0;
  return pkt;
}

/** The newest TSval of either server, never below one sent before (Conn.tsvalSent), which it then is. */
function timestampOption(c: Conn): TcpOption[] {
  if (!c.tsOn) return [];
  const tsval = c.newestTsval();
  c.tsvalSent = tsval;
  return [{ kind: 'timestamp', tsval, tsecr: c.tsecr }];
}

/** Builds a data segment to the client in S's spaces and sends it by raw socket. */
function sendSegment(core: MergeCore, c: Conn, seq: number, payload: Buffer): void {
  const pkt = build(core, c, seq, TCP_ACK_FLAG | TCP_PSH, timestampOption(c), payload);
  core.stats.releasedSegments++;
  core.stats.releasedBytes += payload.length;
  core.sink.send(pkt);
}

/** Builds a pure ACK to the client in S's spaces (with the merged SACK blocks when `sack`) and sends it. */
function sendAck(core: MergeCore, c: Conn, sack: boolean): void {
  const options = timestampOption(c);
  if (sack) {
    const blocks = mergedSack(c).slice(0, c.tsOn ? 3 : 4);
    if (blocks.length) options.push({ kind: 'sack', blocks });
  }
  const pkt = build(core, c, c.relNxt, TCP_ACK_FLAG, options, EMPTY);
  core.stats.acksSent++;
  core.sink.send(pkt);
}
