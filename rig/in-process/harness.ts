/**
 * A deterministic model of one failover connection for the merger and
 * diverter unit tests: P's and S's TCP output as segments, S's segments run
 * through the real Diverter, everything fed to the real Merger, and a
 * recording sink that plays the client's view.
 */
import { ipv4 } from '../../net/addr.js';
import { WireError } from '../../bridge/wire/error.js';
import { seqAdd } from '../../bridge/wire/seq.js';
import type { TcpOption } from '../../bridge/wire/tcp-options.js';
import {
  buildIpv4Tcp,
  parseIpv4Tcp,
  parseTcpRepr,
  TCP_ACK_FLAG,
  TCP_FIN,
  TCP_PSH,
  TCP_SYN,
  type TcpRepr,
} from '../../bridge/wire/tcp.js';
import { PortMatcher } from '../../net/ports.js';
import { Merger, type InboundOffload, type MergerConfig, type MergerSink } from '../../bridge/primary/merger.js';
import { Diverter } from '../../bridge/secondary/diverter.js';

export const VIP = ipv4('192.0.2.100');
export const A_P = ipv4('192.0.2.1');
export const A_S = ipv4('192.0.2.2');
export const CLIENT = ipv4('192.0.2.10');
export const CPORT = 40000;
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
  const p = parseIpv4Tcp(packet);
  if (p instanceof WireError) throw p;
  const repr = parseTcpRepr(p.tcp);
  if (repr instanceof WireError) throw repr;
  return { id, repr, checksumOk: p.ip.checksumValid() && p.tcp.checksumValid() };
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
  constructor(readonly spec: SideSpec) {
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
    return seg({
      seq: this.spec.isn,
      ack: seqAdd(clientIsn, 1),
      flags: TCP_SYN | TCP_ACK_FLAG,
      window,
      options: this.synOptions(),
    });
  }
  syn(window = 64240): Buffer {
    return seg({ seq: this.spec.isn, ack: 0, flags: TCP_SYN, window, options: this.synOptions() });
  }
  data(bytes: Buffer, ack: number, window = 500, flags = TCP_ACK_FLAG | TCP_PSH): Buffer {
    const p = seg({ seq: this.nxt, ack, flags, window, options: this.opts(), payload: bytes });
    this.nxt = seqAdd(this.nxt, bytes.length + (flags & TCP_FIN ? 1 : 0));
    if (this.ts !== null) this.ts++;
    return p;
  }
  /** The same bytes again from an earlier sequence number (a retransmission). */
  dataAt(seq: number, bytes: Buffer, ack: number, window = 500): Buffer {
    return seg({ seq, ack, flags: TCP_ACK_FLAG | TCP_PSH, window, options: this.opts(), payload: bytes });
  }
  ack(ack: number, window = 500, extra: TcpOption[] = []): Buffer {
    return seg({ seq: this.nxt, ack, flags: TCP_ACK_FLAG, window, options: this.opts(extra) });
  }
  fin(ack: number, window = 500): Buffer {
    return this.data(Buffer.alloc(0), ack, window, TCP_ACK_FLAG | TCP_FIN);
  }
}

function seg(r: Partial<TcpRepr> & { seq: number; ack: number; flags: number }): Buffer {
  return buildIpv4Tcp(
    { src: VIP, dst: CLIENT },
    { srcPort: SPORT, dstPort: CPORT, window: 500, urgent: 0, options: [], payload: Buffer.alloc(0), ...r },
  );
}

/** A server's SYN-ACK (MSS only) to the client's `clientPort`, answering the SYN that `ack` acknowledges. */
export function serverSynAck(clientPort: number, seq: number, ack: number): Buffer {
  const mss: TcpOption[] = [{ kind: 'mss', mss: 1460 }];
  return seg({ dstPort: clientPort, seq, ack, flags: TCP_SYN | TCP_ACK_FLAG, window: 64240, options: mss });
}

/** A client segment to the service. */
export function clientSeg(r: Partial<TcpRepr> & { seq: number; ack: number; flags: number }): Buffer {
  return buildIpv4Tcp(
    { src: CLIENT, dst: VIP },
    { srcPort: CPORT, dstPort: SPORT, window: 1000, urgent: 0, options: [], payload: Buffer.alloc(0), ...r },
  );
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

  constructor(p: SideSpec, s: SideSpec, cfg: Partial<MergerConfig> = {}, offload: InboundOffload | null = null) {
    this.merger = new Merger(
      { service: VIP, poisonPooled: true, ...cfg },
      this.sink,
      (what) => this.events.push(what),
      offload,
    );
    this.p = new ServerSide(p);
    this.s = new ServerSide(s);
  }

  /** P's TCP emits `pkt`: returns its queue id. */
  fromP(pkt: Buffer, gso = false): number {
    const id = this.nextId++;
    this.sink.markP(id);
    this.merger.fromPrimary(id, pkt, gso, this.now);
    return id;
  }
  /** S's TCP emits `pkt`: diverted, then delivered to P (unless `lost`). */
  fromS(pkt: Buffer, lost = false): Buffer {
    const d = this.diverter.divert(pkt, false);
    if (typeof d === 'string') throw new Error(`divert skipped: ${d}`);
    if (!lost) this.merger.fromSecondary(this.nextId++, d, CLIENT, this.now);
    return d;
  }
  fromClient(pkt: Buffer): { id: number; out: Buffer | undefined } {
    const id = this.nextId++;
    this.merger.fromClient(id, pkt, this.now);
    return { id, out: this.sink.acceptedPacket(id) };
  }

  /** Runs the client-initiated handshake (P's SYN-ACK first); returns the client's ISN. */
  handshake(clientIsn = 5000): number {
    this.fromClient(clientSeg({ seq: clientIsn, ack: 0, flags: TCP_SYN, options: [{ kind: 'mss', mss: 1460 }] }));
    this.fromP(this.p.synAck(clientIsn));
    this.fromS(this.s.synAck(clientIsn));
    return clientIsn;
  }
}
