/**
 * Acknowledgements, windows, SACK and timestamps (paper §3.3, and what it
 * leaves out): what each server acknowledged and offered, what the client
 * may be told — the minimum ACK and window, the SACK blocks both servers
 * hold — and the client's own ACK, checked (RFC 5961) and moved into P's
 * spaces before P's TCP sees it.
 */
import { seqAdd, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin, seqSub } from '../../wire/seq.js';
import { TCP_ACK_FLAG, TCP_FIN, TCP_SYN, type TcpSegment } from '../../wire/tcp.js';
import type { Conn } from './conn.js';
import { kernelOf, offloadKey, type MergeCore } from './types.js';

export type Side = 'P' | 'S';

/** The largest window TCP can announce (65535 << 14): RFC 5961's MAX.SND.WND when the client's is unknown. */
const MAX_WINDOW = 65535 * 2 ** 14;

/** A server's ACK, SACK blocks and window, from its segment (a SYN's window is unscaled). */
export function noteAck(c: Conn, side: Side, seg: TcpSegment): void {
  if (side === 'P') {
    if (!c.hasAckP || seqGe(seg.ack, c.ackP)) {
      c.ackP = seg.ack;
      c.hasAckP = true;
      c.sackP = seg.sackBlocks();
    }
    c.winP = seg.window * 2 ** (seg.has(TCP_SYN) ? 0 : c.wsP);
  } else {
    if (!c.hasAckS || seqGe(seg.ack, c.ackS)) {
      c.ackS = seg.ack;
      c.hasAckS = true;
      c.sackS = seg.sackBlocks();
    }
    c.winS = seg.window * 2 ** (seg.has(TCP_SYN) ? 0 : c.wsS);
  }
}

/** A server's newest TSval (in S's space) and the client's newest TSval it echoes. */
export function noteTs(c: Conn, side: Side, seg: TcpSegment): void {
  if (side === 'P' && !c.tsOn) return;
  const ts = seg.timestamp();
  if (!ts) return;
  if (side === 'P') {
    const v = seqSub(ts.tsval, c.tsOffset);
    if (seqGt(v, c.tsvalP)) c.tsvalP = v;
  } else if (seqGt(ts.tsval, c.tsvalS)) c.tsvalS = ts.tsval;
  if (seqGt(ts.tsecr, c.tsecr)) c.tsecr = ts.tsecr;
}

/** The ACK the client gets now. */
export function mergedAck(c: Conn): number {
  if (c.phase !== 'merging') return c.ackP;
  if (!c.hasAckS) return c.ackP;
  if (!c.hasAckP) return c.ackS;
  return seqMin(c.ackP, c.ackS);
}

/** The window the client gets now, in bytes. */
export function mergedWindowBytes(c: Conn): number {
  if (c.phase !== 'merging') return c.winP;
  return Math.min(c.winP, c.winS);
}

/** The 16-bit window field for `bytes`, in the scale the client learned (S's). */
export function windowField(c: Conn, bytes: number, syn: boolean): number {
  const shifted = syn ? bytes : Math.floor(bytes / 2 ** c.wsS);
  return Math.min(0xffff, shifted);
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
export function mergedSack(c: Conn): Array<[number, number]> {
  const m = mergedAck(c);
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

/**
 * RFC 5961 §3.2: a client RST ends the connection only at the exact next
 * sequence number a server expects (P's or S's acknowledgement, or the end
 * of the client's last accepted segment). Anything else in the window
 * draws a challenge ACK from P's TCP; the genuine client answers it with an
 * exact RST.
 */
export function exactClientSeq(c: Conn, seq: number): boolean {
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
export function acceptableFromClient(c: Conn, seg: TcpSegment): boolean {
  if (seg.has(TCP_ACK_FLAG)) {
    const ack = seg.ack;
    if (!seqGt(ack, c.isn) || seqGt(ack, c.relNxt)) return false;
    if (c.hasAckClient && seqLt(ack, seqSub(c.ackClient, MAX_WINDOW))) return false;
  } else if (!seg.has(TCP_SYN)) {
    return false; // after the handshake every genuine segment carries an ACK
  }
  return inReceiveWindow(c, seg.seq, seqAdd(seg.seq, seg.seqLength));
}

/** The client's highest ACK, once it acknowledges the handshake. */
function noteClientAck(c: Conn, ack: number): void {
  c.established = true;
  if (!c.hasAckClient || seqGt(ack, c.ackClient)) {
    c.ackClient = ack;
    c.hasAckClient = true;
  }
}

/** The end of the client's accepted data. */
function noteClientNxt(c: Conn, nxt: number): void {
  if (!c.hasClientNxt || seqGt(nxt, c.clientNxt)) {
    c.clientNxt = nxt;
    c.hasClientNxt = true;
  }
}

/**
 * What an acceptable client segment (not a RST) tells of the connection:
 * its ACK, how far its data reaches, its FIN.
 */
export function noteClient(c: Conn, seg: TcpSegment, now: number): void {
  c.lastSeen = now;
  if (seg.has(TCP_ACK_FLAG)) noteClientAck(c, seg.ack);
  noteClientNxt(c, seqAdd(seg.seq, seg.seqLength));
  if (seg.has(TCP_FIN)) c.finClient = true;
}

/**
 * Moves a client segment's ACK, SACK blocks and timestamp echo from S's
 * spaces into P's (the paper's demultiplexer), checksum completed: nfqueue
 * marks a mangled packet CHECKSUM_NONE.
 */
export function translateClient(c: Conn, seg: TcpSegment): void {
  const ack = seg.has(TCP_ACK_FLAG);
  if (ack) seg.writeAck(seqAdd(seg.ack, c.deltaSeq));
  seg.shiftSackBlocks(c.deltaSeq);
  if (c.tsOn && ack) {
    const ts = seg.timestamp();
    if (ts) seg.writeTsecr(seqAdd(ts.tsecr, c.tsOffset));
  }
  seg.fillChecksum();
}

/**
 * Takes in what the offload saw of the client since the last look: when it
 * was last heard, and its ACK and sequence end — the ACK only if it
 * acknowledges something released, no more (RFC 5961, as noteClient).
 */
export function refresh(core: MergeCore, c: Conn, now: number): void {
  const offload = kernelOf(core, c);
  if (!offload || c.phase === 'handshake') return;
  const seen = offload.seen(offloadKey(core, c));
  if (!seen || seen.packets === c.offloadPackets) return;
  c.offloadPackets = seen.packets;
  if (seen.ageMs !== undefined) c.lastSeen = Math.max(c.lastSeen, now - seen.ageMs);
  // The kernel took both only inside the windows of what it saw leave (RFC
  // 5961): where it releases what P sends, relNxt here lags and its check stands.
  const kernel = c.releasedByKernel;
  if (seen.ackMax !== undefined && seqGt(seen.ackMax, c.isn) && (kernel || seqLe(seen.ackMax, c.relNxt)))
    noteClientAck(c, seen.ackMax);
  if (seen.nxtMax !== undefined && (kernel || inReceiveWindow(c, seen.nxtMax, seen.nxtMax)))
    noteClientNxt(c, seen.nxtMax);
}

/** Whether client data from `seq` to `end` falls within the servers' receive windows (RFC 9293 §3.10.7.4). */
function inReceiveWindow(c: Conn, seq: number, end: number): boolean {
  if (!c.hasAckP && !c.hasAckS) return true; // §7.2: no server has acknowledged the client's SYN yet
  const lo = c.hasAckP && c.hasAckS ? seqMin(c.ackP, c.ackS) : c.hasAckP ? c.ackP : c.ackS;
  const hi = c.hasAckP && c.hasAckS ? seqMax(c.ackP, c.ackS) : lo;
  const win = Math.max(c.winP, c.winS, 65535);
  return seqGe(end, seqSub(lo, win)) && seqLe(seq, seqAdd(hi, win));
}
