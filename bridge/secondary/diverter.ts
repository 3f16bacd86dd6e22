/**
 * The secondary's diverter (paper §3.1), pure: no sockets, no clock.
 *
 * Inbound: a client frame captured promiscuously (addressed to the primary's
 * MAC) becomes the IP packet (IPv4 or IPv6) injected into S's own stack. The service
 * address sits dormant on S's `lo` (DESIGN.md), so the packet is injected
 * unchanged — no address translation that would have to outlive a takeover.
 * Only the client's MSS option is clamped, so that S's segments still fit the
 * MTU once the divert option is added.
 *
 * Outbound: each segment S's TCP sends to a client is diverted to the
 * primary — source a_s, destination a_p — with the client's address in the
 * divert option (kind 253, RFC 6994 ExID).
 */
import { WireError } from '../wire/error.js';
import { EthernetFrame, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../wire/ethernet.js';
import { buildIpTcp, parseIpTcp } from '../wire/ip.js';
import { Ipv4Packet } from '../wire/ipv4.js';
import { buildDiverted, clampedMss } from '../wire/divert.js';
import { TcpSegment, TCP_ACK_FLAG, TCP_FIN, TCP_RST, TCP_SYN } from '../wire/tcp.js';
import { seqAdd } from '../wire/seq.js';
import type { PortMatcher } from '../../net/ports.js';
import { isIp6, type IpAddr } from '../../net/addr.js';

export interface DiverterConfig {
  /** The service address (VIP). */
  service: number;
  /** This node's own address (a_s): the diverted segments' source. */
  self: number;
  /** The primary's own address (a_p): the diverted segments' destination. */
  primary: number;
  ports: PortMatcher;
  /** LAN MTU; S's segments plus the divert option must fit. */
  mtu: number;
  /** The IPv6 addresses, if the service has one: the service's, this node's and the primary's (IpAddr hex). */
  v6?: { service: string; self: string; primary: string } | null;
  /**
   * The primary's MAC: only frames to it are injected. Others to the service
   * (the primary's copies on a learning switch, to our own MAC) reach our
   * TCP from the kernel directly; they are only looked at.
   */
  primaryMac: string;
}

export type DivertSkip = 'not-service' | 'not-failover-port' | 'malformed' | 'no-option-room' | 'bad-checksum';

export interface DiverterStats {
  diverted: number;
  divertedBytes: number;
  injected: number;
  /** Captured client frames whose TCP checksum was wrong: not injected. */
  badChecksum: number;
  mssClamped: number;
  sackTrimmed: number;
  skipped: Record<DivertSkip, number>;
}

/** What the last captured client segment of a connection said (for prompts after a takeover). */
interface ClientView {
  client: IpAddr;
  clientPort: number;
  servicePort: number;
  seq: number;
  ack: number;
  window: number;
  tsval: number | null;
}

/** Connections tracked for prompts at most; the oldest are forgotten beyond. */
const MAX_TRACKED = 65536;

export class Diverter {
  /** client address → (client port × 65536 + service port) → view */
  private readonly views = new Map<IpAddr, Map<number, ClientView>>();
  private tracked = 0;
  readonly stats: DiverterStats = {
    diverted: 0,
    divertedBytes: 0,
    injected: 0,
    badChecksum: 0,
    mssClamped: 0,
    sackTrimmed: 0,
    skipped: { 'not-service': 0, 'not-failover-port': 0, malformed: 0, 'no-option-room': 0, 'bad-checksum': 0 },
  };
  private readonly mssLimit: number;
  private readonly mssLimit6: number;

  private readonly primaryMac: string;

  constructor(readonly cfg: DiverterConfig) {
    this.mssLimit = clampedMss(cfg.mtu);
    this.mssLimit6 = clampedMss(cfg.mtu, true);
    this.primaryMac = cfg.primaryMac.toLowerCase();
  }

  /**
   * S's own segment to a client → the diverted packet (a new Buffer), or a
   * skip reason. The caller must never let a skipped failover segment out
   * unchanged (fail closed): only `not-service`/`not-failover-port` are not ours.
   */
  divert(pkt: Buffer, gso: boolean, partial = false): Buffer | DivertSkip {
    const parsed = parseIpTcp(pkt);
    if (parsed instanceof WireError) return this.skip('malformed');
    const { ip, tcp: seg } = parsed;
    const own = this.addrsOf(seg.src);
    if (!own || seg.src !== own.service) return this.skip('not-service');
    if (!this.cfg.ports.has(seg.srcPort)) return this.skip('not-failover-port');
    // Complete sums are checked before the option is added and the sum made again.
    if (!partial && !seg.checksumValid()) return this.skip('bad-checksum');
    const d = buildDiverted(ip, seg, own.self, own.primary, gso);
    if (d === 'no-option-room') return this.skip('no-option-room');
    if (d.sackTrimmed) this.stats.sackTrimmed++;
    const payloadLen = seg.payloadLength;
    this.stats.diverted++;
    this.stats.divertedBytes += payloadLen;
    return d.pkt;
  }

  /** The service's, this node's and the primary's addresses in `a`'s family; null for IPv6 without them. */
  private addrsOf(a: IpAddr): { service: IpAddr; self: IpAddr; primary: IpAddr } | null {
    return isIp6(a) ? (this.cfg.v6 ?? null) : this.cfg;
  }

  /**
   * A captured Ethernet frame → the IP packet to inject into S's stack (a
   * copy), or null when it is not a client segment for a failover port.
   */
  inbound(frame: Buffer): Buffer | null {
    const eth = EthernetFrame.parse(frame);
    if (eth instanceof WireError || (eth.etherType !== ETHERTYPE_IPV4 && eth.etherType !== ETHERTYPE_IPV6)) return null;
    const parsed = parseIpTcp(frame, eth.payloadOffset);
    if (parsed instanceof WireError) return null;
    const { ip, tcp: seg } = parsed;
    if (seg.dst !== this.addrsOf(seg.dst)?.service || !this.cfg.ports.has(seg.dstPort)) return null;
    if (eth.dstString !== this.primaryMac) {
      // Not the primary's frame: our kernel delivers it (a copy to our MAC). Only what it tells of the client is kept.
      if (seg.checksumPartial() || seg.checksumValid()) this.track(seg);
      return null;
    }
    // libpcap does not say whether a frame's checksum is still to be done
    // (a local veth peer's offload): a sum in that partial form passes and is
    // completed below; any other wrong sum is a corrupted frame, not injected.
    if (!seg.checksumPartial() && !seg.checksumValid()) {
      this.stats.badChecksum++;
      return null;
    }
    const off = eth.payloadOffset;
    const pkt = Buffer.from(frame.subarray(off, seg.off + seg.len)); // past the IP length: padding, not copied
    const s = new TcpSegment(pkt, seg.off - off, seg.len, seg.src, seg.dst, seg.addrSum);
    if (s.has(TCP_SYN)) {
      const limit = ip instanceof Ipv4Packet ? this.mssLimit : this.mssLimit6;
      const mss = s.mss();
      if (mss !== null && mss > limit) {
        s.writeMss(limit);
        this.stats.mssClamped++;
      }
    }
    // A frame from a local veth peer may carry a partial checksum (offload):
    // injected packets are verified in software, so complete the sum.
    s.fillChecksum();
    this.track(s);
    this.stats.injected++;
    return pkt;
  }

  private track(s: TcpSegment): void {
    const client = s.src;
    let m = this.views.get(client);
    const key = s.srcPort * 65536 + s.dstPort;
    if (s.has(TCP_RST) || s.has(TCP_FIN)) {
      if (m?.delete(key)) this.tracked--;
      return;
    }
    if (!m) {
      m = new Map();
      this.views.set(client, m);
    }
    let v = m.get(key);
    if (!v) {
      // A bare SYN is not a connection yet (a SYN flood must not fill the
      // table): tracking starts with the client's first ACK.
      if (s.has(TCP_SYN) || this.tracked >= MAX_TRACKED) return;
      v = { client, clientPort: s.srcPort, servicePort: s.dstPort, seq: 0, ack: 0, window: 0, tsval: null };
      m.set(key, v);
      this.tracked++;
    }
    v.seq = seqAdd(s.seq, s.seqLength);
    v.ack = s.ack;
    v.window = s.window;
    v.tsval = s.timestamp()?.tsval ?? null;
  }

  /**
   * After a takeover: for each connection, a copy of the client's last
   * segment one byte in the past, to inject into S's own stack. S's TCP
   * answers an old segment at once with an ACK (RFC 9293 §3.10.7.4), so each
   * client learns where S stands without waiting for a backed-off timer.
   */
  prompts(): Buffer[] {
    const out: Buffer[] = [];
    for (const m of this.views.values())
      for (const v of m.values()) {
        out.push(
          buildIpTcp(
            { src: v.client, dst: this.addrsOf(v.client)!.service },
            {
              srcPort: v.clientPort,
              dstPort: v.servicePort,
              seq: seqAdd(v.seq, -1),
              ack: v.ack,
              flags: TCP_ACK_FLAG,
              window: v.window,
              urgent: 0,
              options: v.tsval !== null ? [{ kind: 'timestamp', tsval: v.tsval, tsecr: 0 }] : [],
              payload: Buffer.alloc(0),
            },
          ),
        );
      }
    return out;
  }

  /**
   * After a takeover, for connections the primary reported as diverged (its
   * client got the primary's bytes, which differ from ours, or ours stopped):
   * a reset into our own stack (the client's next sequence number, so the
   * kernel accepts it and the server sees the connection aborted), then to
   * the client a reset at our next sequence number as the client last
   * acknowledged it, and a bare ACK at the same number. The client takes the
   * reset if that number is its next; if it is elsewhere in its window, the
   * reset draws a challenge ACK; if it is outside (the client got far more
   * from the primary than we sent), the reset is ignored but the ACK draws a
   * duplicate ACK. Either answer reaches our stack, which — the socket gone —
   * answers it with an exact reset. The connection ends instead of continuing
   * on different bytes, or hanging. Such connections are then forgotten.
   * (The reset into our own stack needs the client's exact next number; a
   * client segment the kernel got without the capture seeing it defeats it,
   * so the caller also aborts our sockets by address, then sends `prods`.)
   */
  resets(keys: ReadonlyArray<{ client: IpAddr; clientPort: number; servicePort: number }>): {
    packets: Buffer[];
    prods: Buffer[];
    closed: number;
  } {
    const packets: Buffer[] = [];
    /** The bare ACKs to the clients alone, to send again once our sockets are surely gone. */
    const prods: Buffer[] = [];
    let closed = 0;
    const seg = (src: IpAddr, dst: IpAddr, sport: number, dport: number, seq: number, ack: number, flags: number) =>
      buildIpTcp(
        { src, dst },
        {
          srcPort: sport,
          dstPort: dport,
          seq,
          ack,
          flags,
          window: 0,
          urgent: 0,
          options: [],
          payload: Buffer.alloc(0),
        },
      );
    for (const k of keys) {
      const m = this.views.get(k.client);
      const key = k.clientPort * 65536 + k.servicePort;
      const v = m?.get(key);
      if (!v) continue;
      const service = this.addrsOf(v.client)!.service; // tracked only with its family's addresses
      packets.push(seg(v.client, service, v.clientPort, v.servicePort, v.seq, 0, TCP_RST));
      packets.push(seg(service, v.client, v.servicePort, v.clientPort, v.ack, 0, TCP_RST));
      const prod = seg(service, v.client, v.servicePort, v.clientPort, v.ack, v.seq, TCP_ACK_FLAG);
      packets.push(prod);
      prods.push(prod);
      m!.delete(key);
      this.tracked--;
      closed++;
    }
    return { packets, prods, closed };
  }

  get trackedConnections(): number {
    return this.tracked;
  }

  private skip(why: DivertSkip): DivertSkip {
    this.stats.skipped[why]++;
    return why;
  }
}
