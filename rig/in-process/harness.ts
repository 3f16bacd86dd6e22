/**
 * A deterministic model of one failover connection for the merger and
 * diverter unit tests: P's and S's TCP output as segments, S's segments run
 * through the real Diverter (IPv4; over IPv6 they reach the merger as the
 * kernel path brings them, unchanged), everything fed to the real Merger, and
 * a recording sink that plays the client's view.
 */
import { ip6Addr, ipv4, ipv6, isIp6, type IpAddr } from '../../net/addr.js';
import { buildIpTcp, parseIpTcp } from '../../bridge/wire/ip.js';
import { WireError } from '../../bridge/wire/error.js';
import { seqAdd } from '../../bridge/wire/seq.js';
import type { TcpOption } from '../../bridge/wire/tcp-options.js';
import { parseTcpRepr, TCP_ACK_FLAG, TCP_FIN, TCP_PSH, TCP_SYN, type TcpRepr } from '../../bridge/wire/tcp.js';
import { PortMatcher } from '../../net/ports.js';
import { Merger, type InboundOffload, type MergerConfig, type MergerSink } from '../../bridge/primary/merger.js';
import { Diverter } from '../../bridge/secondary/diverter.js';

export const VIP = ipv4('192.0.2.100');
export const A_P = ipv4('192.0.2.1');
export const A_S = ipv4('192.0.2.2');
export const CLIENT = ipv4('192.0.2.10');
export const VIP6 = ip6Addr(ipv6('2001:db8::100'));
export const CLIENT6 = ip6Addr(ipv6('2001:db8::10'));
export const A_P6 = ip6Addr(ipv6('2001:db8::1'));
export const A_S6 = ip6Addr(ipv6('2001:db8::2'));
export const CPORT = 40000;

/** The addresses a harness connection runs between: IPv4's or IPv6's. */
export interface Family {
  service: IpAddr;
  client: IpAddr;
}
export const V4: Family = { service: VIP, client: CLIENT };
export const V6: Family = { service: VIP6, client: CLIENT6 };
/** Both, named, for `describe.each`. */
export const FAMILIES: ReadonlyArray<[string, Family]> = [
  ['IPv4', V4],
  ['IPv6', V6],
];

let current: Family = V4;
/** The family of the pairs, servers and client segments made from now on without one named (a test file's `beforeEach`). */
export function useFamily(f: Family): void {
  current = f;
}
export const SPORT = 7000;

export interface Released {
  id: number;
  repr: TcpRepr;
  checksumOk: boolean;
}

/** Records verdicts and sends; decodes what the client would see. */
export class RecordingSink implements MergerSink {
  accepted: Array<{ id: number; packet?: Buffer }> = [];
  dropped: number[] = [];
  sent: Buffer[] = [];
  /** Everything that went towards the client, in order: released (accepted-modified) P segments and built ACKs. */
  toClient: Released[] = [];
  /** Ids of P's packets and their fate. */
  private readonly pIds = new Set<number>();

  markP(id: number): void {
    this.pIds.add(id);
  }

  accept(id: number, packet?: Buffer): void {
    // A copy: the merger uses a held copy's buffer again once its verdict is given.
    if (packet) packet = Buffer.from(packet);
    this.accepted.push({ id, packet });
    if (packet && this.pIds.has(id)) this.toClient.push(decode(id, packet));
  }
  drop(id: number): void {
    this.dropped.push(id);
  }
  send(packet: Buffer): void {
    this.sent.push(packet);
    this.toClient.push(decode(-1, packet));
  }
  /** Packets into the secondary's own stack (resets of its half-open sockets), in order. */
  toS: Buffer[] = [];
  toSecondary(packet: Buffer): void {
    this.toS.push(Buffer.from(packet));
  }
  /** Verdict for `id`, or undefined while held. */
  fate(id: number): 'accept' | 'drop' | undefined {
    if (this.accepted.some((a) => a.id === id)) return 'accept';
    if (this.dropped.includes(id)) return 'drop';
    return undefined;
  }
  acceptedPacket(id: number): Buffer | undefined {
    return this.accepted.find((a) => a.id === id)?.packet;
  }
  /** The payload bytes the client received, by S-space sequence number, checking there is one consistent stream. */
  stream(isnS: number): Buffer {
    const bytes = new Map<number, number>();
    for (const r of this.toClient) {
      for (let i = 0; i < r.repr.payload.length; i++) {
        const at = (r.repr.seq - isnS - 1 + i + 2 ** 32) % 2 ** 32;
        const prev = bytes.get(at);
        if (prev !== undefined && prev !== r.repr.payload[i])
          throw new Error(`client saw two different bytes at offset ${at}`);
        bytes.set(at, r.repr.payload[i]!);
      }
    }
    const out = Buffer.alloc(bytes.size);
    for (let i = 0; i < bytes.size; i++) {
      const b = bytes.get(i);
      if (b === undefined) throw new Error(`hole at offset ${i}`);
      out[i] = b;
    }
    return out;
  }
}

function decode(id: number, packet: Buffer): Released {
  const p = parseIpTcp(packet);
  if (p instanceof WireError) throw p;
  const repr = parseTcpRepr(p.tcp);
  if (repr instanceof WireError) throw repr;
  const ipOk = 'checksumValid' in p.ip ? p.ip.checksumValid() : true; // IPv6 has no header checksum
  return { id, repr, checksumOk: ipOk && p.tcp.checksumValid() };
}

export interface SideSpec {
  isn: number;
  ts?: number | null;
  mss?: number;
  wscale?: number | null;
  sack?: boolean;
  /** The client's TSval this side echoes (TSecr): 777 in its SYN(-ACK), one more after. */
  echo?: number;
}

/** One server's TCP output for the connection, in its own spaces. */
export class ServerSide {
  nxt: number;
  ts: number | null;
  constructor(
    readonly spec: SideSpec,
    readonly fam: Family = current,
  ) {
    this.nxt = seqAdd(spec.isn, 1);
    this.ts = spec.ts === undefined ? 1000 : spec.ts;
  }
  synOptions(): TcpOption[] {
    const o: TcpOption[] = [{ kind: 'mss', mss: this.spec.mss ?? 1460 }];
    if (this.spec.sack ?? true) o.push({ kind: 'sack-permitted' });
    if (this.ts !== null) o.push({ kind: 'timestamp', tsval: this.ts, tsecr: this.spec.echo ?? 777 });
    if (this.spec.wscale !== null) o.push({ kind: 'wscale', shift: this.spec.wscale ?? 7 });
    return o;
  }
  opts(extra: TcpOption[] = []): TcpOption[] {
    return this.ts !== null
      ? [{ kind: 'timestamp', tsval: this.ts, tsecr: ((this.spec.echo ?? 777) + 1) >>> 0 }, ...extra]
      : extra;
  }
  synAck(clientIsn: number, window = 64240): Buffer {
    return seg(
      {
        seq: this.spec.isn,
        ack: seqAdd(clientIsn, 1),
        flags: TCP_SYN | TCP_ACK_FLAG,
        window,
        options: this.synOptions(),
      },
      this.fam,
    );
  }
  syn(window = 64240): Buffer {
    return seg({ seq: this.spec.isn, ack: 0, flags: TCP_SYN, window, options: this.synOptions() }, this.fam);
  }
  data(bytes: Buffer, ack: number, window = 500, flags = TCP_ACK_FLAG | TCP_PSH): Buffer {
    const p = seg({ seq: this.nxt, ack, flags, window, options: this.opts(), payload: bytes }, this.fam);
    this.nxt = seqAdd(this.nxt, bytes.length + (flags & TCP_FIN ? 1 : 0));
    if (this.ts !== null) this.ts++;
    return p;
  }
  /** The same bytes again from an earlier sequence number (a retransmission). */
  dataAt(seq: number, bytes: Buffer, ack: number, window = 500): Buffer {
    return seg({ seq, ack, flags: TCP_ACK_FLAG | TCP_PSH, window, options: this.opts(), payload: bytes }, this.fam);
  }
  ack(ack: number, window = 500, extra: TcpOption[] = []): Buffer {
    return seg({ seq: this.nxt, ack, flags: TCP_ACK_FLAG, window, options: this.opts(extra) }, this.fam);
  }
  fin(ack: number, window = 500): Buffer {
    return this.data(Buffer.alloc(0), ack, window, TCP_ACK_FLAG | TCP_FIN);
  }
}

function seg(r: Partial<TcpRepr> & { seq: number; ack: number; flags: number }, fam: Family = current): Buffer {
  return buildIpTcp(
    { src: fam.service, dst: fam.client },
    { srcPort: SPORT, dstPort: CPORT, window: 500, urgent: 0, options: [], payload: Buffer.alloc(0), ...r },
  );
}

/** A server's SYN-ACK (MSS only) to the client's `clientPort`, answering the SYN that `ack` acknowledges. */
export function serverSynAck(clientPort: number, seq: number, ack: number): Buffer {
  const mss: TcpOption[] = [{ kind: 'mss', mss: 1460 }];
  return seg({ dstPort: clientPort, seq, ack, flags: TCP_SYN | TCP_ACK_FLAG, window: 64240, options: mss });
}

/** A client segment to the service. */
export function clientSeg(r: Partial<TcpRepr> & { seq: number; ack: number; flags: number }, fam = current): Buffer {
  return buildIpTcp(
    { src: fam.client, dst: fam.service },
    { srcPort: CPORT, dstPort: SPORT, window: 1000, urgent: 0, options: [], payload: Buffer.alloc(0), ...r },
  );
}

/** A diverter of the secondary for both families' harness addresses, the primary at `primaryMac`. */
export function dualStackDiverter(primaryMac: string): Diverter {
  return new Diverter({
    service: VIP,
    self: A_S,
    primary: A_P,
    v6: { service: VIP6, self: A_S6, primary: A_P6 },
    ports: new PortMatcher([SPORT]),
    mtu: 1500,
    primaryMac,
  });
}

/** Merger + diverter + both servers, with ids handed out in order. */
export class Pair {
  readonly sink = new RecordingSink();
  readonly merger: Merger;
  readonly diverter = new Diverter({
    service: VIP,
    self: A_S,
    primary: A_P,
    ports: new PortMatcher([SPORT]),
    mtu: 1500,
    primaryMac: '02:00:00:00:00:02',
  });
  readonly p: ServerSide;
  readonly s: ServerSide;
  readonly events: string[] = [];
  private nextId = 1;
  now = 0;

  constructor(
    p: SideSpec,
    s: SideSpec,
    cfg: Partial<MergerConfig> = {},
    offload: InboundOffload | null = null,
    readonly fam: Family = current,
  ) {
    this.merger = new Merger(
      { service: VIP, service6: VIP6, poisonPooled: true, ...cfg },
      this.sink,
      (what) => this.events.push(what),
      offload,
    );
    this.p = new ServerSide(p, fam);
    this.s = new ServerSide(s, fam);
  }

  /** A client segment to the service, in this pair's family. */
  clientSeg(r: Partial<TcpRepr> & { seq: number; ack: number; flags: number }): Buffer {
    return clientSeg(r, this.fam);
  }

  /** P's TCP emits `pkt`: returns its queue id. */
  fromP(pkt: Buffer, gso = false): number {
    const id = this.nextId++;
    this.sink.markP(id);
    this.merger.fromPrimary(id, pkt, gso, this.now);
    return id;
  }
  /**
   * S's TCP emits `pkt`: diverted, then delivered to P (unless `lost`). Over IPv6 it
   * reaches P as the kernel path brings it: unchanged, the client its destination.
   */
  fromS(pkt: Buffer, lost = false): Buffer {
    const d = isIp6(this.fam.client) ? Buffer.from(pkt) : this.diverter.divert(pkt, false);
    if (typeof d === 'string') throw new Error(`divert skipped: ${d}`);
    if (!lost) this.merger.fromSecondary(this.nextId++, d, this.fam.client, this.now);
    return d;
  }
  fromClient(pkt: Buffer): { id: number; out: Buffer | undefined } {
    const id = this.nextId++;
    this.merger.fromClient(id, pkt, this.now);
    return { id, out: this.sink.acceptedPacket(id) };
  }

  /** Runs the client-initiated handshake (P's SYN-ACK first); returns the client's ISN. */
  handshake(clientIsn = 5000): number {
    this.fromClient(this.clientSeg({ seq: clientIsn, ack: 0, flags: TCP_SYN, options: [{ kind: 'mss', mss: 1460 }] }));
    this.fromP(this.p.synAck(clientIsn));
    this.fromS(this.s.synAck(clientIsn));
    return clientIsn;
  }
}
