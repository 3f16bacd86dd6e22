/**
 * The transparency oracle: what the client's own capture must show for every
 * failover connection. One consistent sequence space (no segment carries P's
 * raw numbers), the same byte at the same offset in every copy, no RST, a
 * valid checksum on every segment the client received, MSS respected.
 */
import { WireError } from '../bridge/wire/error.js';
import { EthernetFrame, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../bridge/wire/ethernet.js';
import { ip6Addr, ipAddr, isIp6, type IpAddr } from '../net/addr.js';
import { IP_DST } from '../bridge/wire/ipv4.js';
import { IP6_DST, IP6_HEADER_LEN } from '../bridge/wire/ipv6.js';
import { parseIpTcp } from '../bridge/wire/ip.js';
import { seqAdd, seqGe, seqGt, seqLe, seqLt, seqSub } from '../bridge/wire/seq.js';
import { type TcpSegment, TCP_ACK_FLAG as TCP_ACK, TCP_FIN, TCP_FLAGS, TCP_RST, TCP_SYN } from '../bridge/wire/tcp.js';
import type { CapturedFrame } from './capture.js';

export interface ConnReport {
  clientPort: number;
  isn: number;
  mss: number | null;
  wscale: number | null;
  dataBytes: number;
  segments: number;
  retransmittedBytes: number;
}

export interface OracleReport {
  connections: ConnReport[];
  problems: string[];
  /** Segments whose checksum was checked: complete and valid, or left to offload (partial). */
  checkedChecksums: number;
  validChecksums: number;
  /**
   * Segments with a partial checksum (CHECKSUM_PARTIAL: the pseudo-header sum,
   * the rest left to the NIC). Between veths a TSO super-segment arrives like
   * that; a real NIC completes it on the wire.
   */
  offloadChecksums: number;
  /**
   * RSTs after both ends closed, each answering a stale segment: the
   * client's, answering an exact copy of an earlier segment or data it had
   * already acknowledged (a late original from a reordering link); the
   * service's, at the end of its FIN, answering the duplicate ACK with which
   * the client met a segment of the service's that came after the client had
   * acknowledged the FIN. Not problems.
   */
  rstAfterClose: number;
}

interface State {
  rep: ConnReport;
  bytes: Map<number, number>;
  maxEnd: number;
  synTime: number;
  /** The sequence number after the client's FIN, once it sent one. */
  clientFinEnd: number | null;
  /** The service acknowledged the client's FIN: the client may have no socket left. */
  clientFinAcked: boolean;
  /** The sequence number after the service's FIN, once it sent one. */
  serviceFinEnd: number | null;
  /**
   * A segment of the service's, all of it before what the client had
   * acknowledged, came after the client acknowledged the service's FIN: the
   * client (in TIME-WAIT) answers it with a duplicate ACK, and a server whose
   * socket is gone answers that with a RST.
   */
  staleAfterClose: boolean;
  /** (seq, ack, flags, length) of every segment from the service. */
  seen: Set<string>;
  /** The highest acknowledgment the client sent. */
  clientAck: number | null;
  /**
   * The latest segment from the service was stale: it repeated an earlier one
   * exactly, or carried only data the client had already acknowledged.
   */
  lastWasStale: boolean;
}

/**
 * The TCP segments to or from the service in a capture. A capture with a
 * short snaplen keeps the headers only: the frame is parsed as if the rest
 * were there (zeros); callers check no checksum or byte content then.
 */
function* serviceSegments(
  frames: readonly CapturedFrame[],
  service: IpAddr,
  port: number,
): Generator<{ f: CapturedFrame; seg: TcpSegment; ipValid: () => boolean; ipLength: number }> {
  // What the client's NIC takes: frames to its own MAC. On a hub its capture
  // (promiscuous) also sees the secondary's output on its way to the primary
  // (the kernel path sends it unchanged, to the primary's MAC), and the
  // primary's RSTs into the secondary's stack (from the client's address, to
  // the secondary's MAC: merger.ts resetHalfOpenS): not the client's. So the
  // client's MAC is the source of a frame to the service that is not a RST.
  const six = isIp6(service);
  const etherType = six ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4;
  const clientMacs = new Set<string>();
  for (const f of frames) {
    const eth = EthernetFrame.parse(f.data);
    if (eth instanceof WireError || eth.etherType !== etherType) continue;
    // Headers only are read here (a short snaplen keeps only those; the rig sends no IPv6 extension headers).
    const at = eth.payloadOffset;
    const dstAt = at + (six ? IP6_DST : IP_DST);
    if (f.data.length < dstAt + (six ? 16 : 4)) continue;
    if ((six ? ip6Addr(f.data, dstAt) : f.data.readUInt32BE(dstAt)) !== service) continue;
    const flagsAt = at + (six ? IP6_HEADER_LEN : (f.data[at]! & 0x0f) * 4) + TCP_FLAGS;
    if (f.data.length > flagsAt && f.data[flagsAt]! & TCP_RST) continue;
    clientMacs.add(eth.srcString);
  }
  for (const f of frames) {
    const eth = EthernetFrame.parse(f.data);
    if (eth instanceof WireError || eth.etherType !== etherType) continue;
    if (clientMacs.size && !clientMacs.has(eth.dstString) && !clientMacs.has(eth.srcString)) continue;
    const data =
      f.originalLength > f.data.length
        ? Buffer.concat([f.data, Buffer.alloc(Math.min(f.originalLength, 65549) - f.data.length)])
        : f.data;
    const v = parseIpTcp(data, eth.payloadOffset);
    if (v instanceof WireError) continue;
    const seg = v.tcp;
    if ((seg.src === service && seg.srcPort === port) || (seg.dst === service && seg.dstPort === port)) {
      const ip = v.ip;
      // IPv6 has no header checksum.
      const ipValid = 'checksumValid' in ip ? () => ip.checksumValid() : () => true;
      yield {
        f,
        seg,
        ipValid,
        ipLength: six ? IP6_HEADER_LEN + ip.payloadLength : (ip as { totalLength: number }).totalLength,
      };
    }
  }
}

/**
 * `frames`: the client's capture (full snaplen for checksum checks; a short
 * snaplen skips them). `vip`, `port`: the service.
 */
export function checkTransparency(
  frames: readonly CapturedFrame[],
  vip: string,
  port: number,
  opts: { maxSpan?: number } = {},
): OracleReport {
  const service = ipAddr(vip);
  const conns = new Map<number, State>();
  const problems: string[] = [];
  let checkedChecksums = 0;
  let validChecksums = 0;
  let offloadChecksums = 0;
  const maxSpan = opts.maxSpan ?? 2 ** 30;
  let rstAfterClose = 0;
  for (const { f, seg, ipValid, ipLength } of serviceSegments(frames, service, port)) {
    const fromServer = seg.src === service && seg.srcPort === port;
    const cport = fromServer ? seg.dstPort : seg.srcPort;
    if (seg.has(TCP_RST)) {
      const st = conns.get(cport);
      // A client whose connection is over (its FIN acknowledged) answers a
      // stale segment with a RST, as any TCP peer does: a late exact copy (a
      // duplicating link) or a late original of data it already acknowledged
      // (a reordering link held it back). The network's doing, not ours.
      if (!fromServer && st?.clientFinAcked && st.lastWasStale) {
        rstAfterClose++;
        continue;
      }
      // A server whose connection is over at both ends (both FINs acknowledged)
      // answers the client's duplicate ACK of its FIN with a RST at its FIN's end,
      // as any TCP does once its socket is gone. The duplicate ACK answered a
      // late segment of the service's: two of its segments left in one order
      // and came in the other (the network's doing: packets sent on two CPUs).
      if (fromServer && st?.clientFinAcked && st.staleAfterClose && seg.seq === st.serviceFinEnd) {
        rstAfterClose++;
        continue;
      }
      const at = st
        ? ` (seq offset ${seqSub(seg.seq, seqAdd(st.rep.isn, 1))} of ${st.rep.dataBytes} bytes seen, ${((f.time - st.synTime) * 1000).toFixed(1)} ms after the SYN-ACK)`
        : '';
      problems.push(`RST ${fromServer ? 'from the service' : 'from the client'} on client port ${cport}${at}`);
    }
    if (!fromServer) {
      const st = conns.get(cport);
      if (st && seg.has(TCP_FIN)) st.clientFinEnd = seqAdd(seg.seq, seg.payloadLength + 1);
      if (st && seg.has(TCP_ACK) && (st.clientAck === null || seqGt(seg.ack, st.clientAck))) st.clientAck = seg.ack;
      continue;
    }
    const full = f.originalLength === f.data.length;
    if (full) {
      checkedChecksums++;
      if (!ipValid()) problems.push(`bad IP checksum from the service on client port ${cport}`);
      if (seg.checksumValid()) validChecksums++;
      else if (seg.checksumPartial()) offloadChecksums++;
      else problems.push(`bad TCP checksum from the service on client port ${cport} (seq ${seg.seq})`);
    }
    // A frame above the MTU is a TSO super-segment between veths (the NIC would cut it).
    const superSegment = ipLength > 1500;
    let st = conns.get(cport);
    if (st) {
      const sig = `${seg.seq}/${seg.ack}/${seg.flags}/${seg.payloadLength}`;
      const oldData =
        seg.payloadLength > 0 && st.clientAck !== null && seqLe(seqAdd(seg.seq, seg.payloadLength), st.clientAck);
      st.lastWasStale = st.seen.has(sig) || oldData;
      st.seen.add(sig);
      const end = seqAdd(seg.seq, seg.payloadLength + (seg.has(TCP_FIN) ? 1 : 0));
      if (
        st.serviceFinEnd !== null &&
        st.clientAck !== null &&
        seqGe(st.clientAck, st.serviceFinEnd) &&
        seqLt(seg.seq, st.clientAck) &&
        seqLe(end, st.clientAck)
      )
        st.staleAfterClose = true;
      if (seg.has(TCP_FIN)) st.serviceFinEnd = end;
      if (st.clientFinEnd !== null && seg.has(TCP_ACK) && seqGe(seg.ack, st.clientFinEnd)) st.clientFinAcked = true;
    }
    if (seg.has(TCP_SYN)) {
      const segOpts = seg.options();
      const o = segOpts instanceof WireError ? [] : segOpts;
      const mss = o.find((x) => x.kind === 'mss');
      const ws = o.find((x) => x.kind === 'wscale');
      if (!st) {
        st = {
          rep: {
            clientPort: cport,
            isn: seg.seq,
            mss: mss && mss.kind === 'mss' ? mss.mss : null,
            wscale: ws && ws.kind === 'wscale' ? ws.shift : null,
            dataBytes: 0,
            segments: 0,
            retransmittedBytes: 0,
          },
          bytes: new Map(),
          maxEnd: 0,
          synTime: f.time,
          clientFinEnd: null,
          clientFinAcked: false,
          serviceFinEnd: null,
          staleAfterClose: false,
          seen: new Set(),
          clientAck: null,
          lastWasStale: false,
        };
        conns.set(cport, st);
      } else if (seg.seq !== st.rep.isn) {
        problems.push(`client port ${cport}: two SYNs with different ISNs (${st.rep.isn}, ${seg.seq})`);
      }
      continue;
    }
    if (!st) continue; // connection began before the capture
    st.rep.segments++;
    const off = seqSub(seg.seq, seqAdd(st.rep.isn, 1));
    if (off > maxSpan) {
      problems.push(
        `client port ${cport}: segment at seq ${seg.seq} is outside the connection's sequence space (offset ${off}) — raw primary numbers?`,
      );
      continue;
    }
    const payload = seg.payload;
    if (st.rep.mss !== null && payload.length > st.rep.mss && full && !superSegment)
      problems.push(`client port ${cport}: ${payload.length}-byte segment exceeds MSS ${st.rep.mss}`);
    if (!full) {
      if (seg.payloadLength) st.rep.dataBytes = Math.max(st.rep.dataBytes, off + seg.payloadLength);
      continue;
    }
    for (let i = 0; i < payload.length; i++) {
      const at = off + i;
      const prev = st.bytes.get(at);
      if (prev === undefined) st.bytes.set(at, payload[i]!);
      else {
        st.rep.retransmittedBytes++;
        if (prev !== payload[i]) {
          problems.push(`client port ${cport}: two different bytes at offset ${at}`);
          break;
        }
      }
    }
    if (payload.length) st.rep.dataBytes = Math.max(st.rep.dataBytes, off + payload.length);
  }
  return {
    connections: [...conns.values()].map((s) => s.rep),
    problems,
    checkedChecksums,
    validChecksums,
    offloadChecksums,
    rstAfterClose,
  };
}

/**
 * The frames of one connection around its first RST, one line each
 * (direction, flags, relative seq/ack, length, ms since the first frame):
 * what a failure message needs to explain where the reset came from.
 */
export function framesAroundRst(
  frames: readonly CapturedFrame[],
  vip: string,
  port: number,
  before = 20,
  after = 5,
): string {
  const service = ipAddr(vip);
  const lines: Array<{ text: string; rst: boolean }> = [];
  const isn = new Map<string, number>();
  let t0 = 0;
  for (const { f, seg } of serviceSegments(frames, service, port)) {
    const fromServer = seg.src === service && seg.srcPort === port;
    const dir = fromServer ? 'S>C' : 'C>S';
    const cport = fromServer ? seg.dstPort : seg.srcPort;
    if (seg.has(TCP_SYN)) isn.set(`${dir}${cport}`, seg.seq);
    const other = isn.get(`${fromServer ? 'C>S' : 'S>C'}${cport}`) ?? 0;
    const mine = isn.get(`${dir}${cport}`) ?? 0;
    t0 ||= f.time;
    const flags = ['SYN', 'ACK', 'FIN', 'RST', 'PSH']
      .filter((_, i) => seg.has([TCP_SYN, 0x10, 0x01, TCP_RST, 0x08][i]!))
      .join(',');
    lines.push({
      text: `${((f.time - t0) * 1000).toFixed(1).padStart(9)} ms ${dir} port ${cport} [${flags}] seq ${seqSub(seg.seq, mine)} ack ${seqSub(seg.ack, other)} len ${seg.payloadLength} win ${seg.window}`,
      rst: seg.has(TCP_RST),
    });
  }
  const i = lines.findIndex((l) => l.rst);
  if (i < 0) return '';
  return lines
    .slice(Math.max(0, i - before), i + after + 1)
    .map((l) => l.text)
    .join('\n');
}
