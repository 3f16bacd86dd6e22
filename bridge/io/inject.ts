/**
 * Raw IP injection through npm `raw-socket` (IPPROTO_RAW: the packet carries
 * its own IP header; an IPv4 and an IPv6 socket). Every packet is sent with SO_MARK so the bridge's own
 * netfilter rules let it pass. A packet to a local address is delivered to
 * the local stack; otherwise it is routed out.
 *
 * A packet is handed to the kernel at once (one sendto on the non-blocking
 * socket) when nothing is queued before it. raw-socket's own send() would
 * queue it and send one packet per "writable" poll event, one per event-loop
 * turn: a burst of merged segments then leaves spread over milliseconds,
 * carrying the ACK they were built with. Only when the kernel says EAGAIN or
 * ENOBUFS does a packet wait, and every later one behind it, in raw-socket's
 * queue; it keeps pending sends in an Array it shift()s per packet, which
 * degrades badly with many queued: we keep at most `maxInFlight` there and the
 * rest in our own bounded FIFO, dropping (and counting) beyond `maxQueued`.
 */
import * as raw from 'raw-socket';
import { ipv4ToString, ipv6ToString } from '../../net/addr.js';
import { IP_DST } from '../wire/ipv4.js';
import { IP6_DST } from '../wire/ipv6.js';
import { ipVersion } from '../wire/ip.js';
import { monotonicMs } from '../clock.js';

/** Mark on every packet the bridge injects itself: its own rules let it pass. */
export const BRIDGE_MARK = 0x7466;

const IPPROTO_RAW = 255;
const SOL_SOCKET = 1;
const SO_MARK = 36;
const SO_SNDBUF = 7;

export interface InjectorStats {
  sent: number;
  /** Packets that had to wait for the socket (EAGAIN, ENOBUFS) instead of leaving at once. */
  deferred: number;
  errors: number;
  dropped: number;
  queued: number;
}

/**
 * The bridge's raw sockets: an IPv4 one, and an IPv6 one opened with the
 * first IPv6 packet (IPPROTO_RAW on AF_INET6 also carries its own header).
 * One queue each: a packet waits only behind packets of its own family.
 */
export class Injector {
  private readonly lane4: RawLane;
  private lane6: RawLane | undefined;
  private closed = false;
  readonly stats: InjectorStats = { sent: 0, deferred: 0, errors: 0, dropped: 0, queued: 0 };
  lastError: Error | undefined;

  constructor(
    readonly mark: number,
    private readonly maxInFlight = 32,
    private readonly maxQueued = 65536,
  ) {
    this.lane4 = this.lane(raw.AddressFamily.IPv4, dstOf4);
  }

  private lane(family: number, dstOf: (packet: Buffer) => string): RawLane {
    return new RawLane(family, dstOf, {
      mark: this.mark,
      maxInFlight: this.maxInFlight,
      maxQueued: this.maxQueued,
      stats: this.stats,
      failed: (e) => {
        this.stats.errors++;
        this.lastError = e;
      },
      queuedChanged: () => (this.stats.queued = this.lane4.queued + (this.lane6?.queued ?? 0)),
    });
  }

  /** Queues one complete IP packet (either family) for sending. Returns false when it had to be dropped. */
  send(packet: Buffer): boolean {
    if (this.closed) return false;
    if (ipVersion(packet) === 6) {
      this.lane6 ??= this.lane(raw.AddressFamily.IPv6, dstOf6);
      return this.lane6.send(packet);
    }
    return this.lane4.send(packet);
  }

  /** Resolves when every queued packet has been handed to the kernel. */
  async drain(timeoutMs = 5000): Promise<void> {
    const until = monotonicMs() + timeoutMs;
    while ((this.lane4.busy || this.lane6?.busy) && monotonicMs() < until) {
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.lane4.close();
    this.lane6?.close();
  }
}

/** What a lane shares with its injector. */
interface LaneContext {
  mark: number;
  maxInFlight: number;
  maxQueued: number;
  /** The injector's counters: `sent`, `deferred` and `dropped` the lane counts itself. */
  stats: InjectorStats;
  failed(e: Error): void;
  queuedChanged(): void;
}

/** One raw socket and the packets waiting for it. */
class RawLane {
  private readonly sock: raw.Socket;
  private readonly wrap: NativeWrap;
  private readonly fifo: Buffer[] = [];
  private head = 0;
  private inFlight = 0;

  constructor(
    family: number,
    private readonly dstOf: (packet: Buffer) => string,
    private readonly x: LaneContext,
  ) {
    this.sock = raw.createSocket({ protocol: IPPROTO_RAW, addressFamily: family });
    this.sock.setOption(SOL_SOCKET, SO_MARK, x.mark >>> 0);
    this.sock.setOption(SOL_SOCKET, SO_SNDBUF, 4 * 1024 * 1024);
    this.sock.pauseRecv();
    // raw-socket's native handle: send() there is a plain sendto that throws on error.
    this.wrap = (this.sock as unknown as { wrap: NativeWrap }).wrap;
    if (typeof this.wrap?.send !== 'function')
      throw new Error('raw-socket: no native send (unsupported raw-socket version)');
    this.sock.on('error', (e: Error) => x.failed(e));
  }

  get busy(): boolean {
    return this.inFlight > 0 || this.head < this.fifo.length;
  }

  get queued(): number {
    return this.fifo.length - this.head;
  }

  send(packet: Buffer): boolean {
    const x = this.x;
    if (this.inFlight === 0 && this.head === this.fifo.length) {
      const r = this.sendNow(packet);
      if (r !== 'again') return r === 'sent';
      x.stats.deferred++;
    }
    if (this.inFlight < x.maxInFlight) {
      this.dispatch(packet);
      return true;
    }
    if (this.fifo.length - this.head >= x.maxQueued) {
      x.stats.dropped++;
      return false;
    }
    this.fifo.push(packet);
    x.queuedChanged();
    return true;
  }

  /** One sendto now; 'again' when the socket cannot take it yet. */
  private sendNow(packet: Buffer): 'sent' | 'again' | 'error' {
    try {
      this.wrap.send(packet, 0, packet.length, this.dstOf(packet), noop);
      this.x.stats.sent++;
      return 'sent';
    } catch (e) {
      const err = e as Error;
      if (/temporarily unavailable|No buffer space/i.test(err.message)) return 'again';
      this.x.failed(err);
      return 'error';
    }
  }

  private dispatch(packet: Buffer): void {
    this.inFlight++;
    this.sock.send(packet, 0, packet.length, this.dstOf(packet), (err) => {
      this.inFlight--;
      if (err) this.x.failed(err);
      else this.x.stats.sent++;
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.x.maxInFlight && this.head < this.fifo.length) {
      const p = this.fifo[this.head]!;
      this.fifo[this.head++] = EMPTY;
      this.dispatch(p);
    }
    if (this.head > 1024 && this.head * 2 > this.fifo.length) {
      this.fifo.splice(0, this.head);
      this.head = 0;
    }
    this.x.queuedChanged();
  }

  close(): void {
    this.sock.close();
  }
}

const EMPTY = Buffer.alloc(0);
const noop = (): void => {};
/** The destination of a complete IPv4 packet, as raw-socket wants it. */
const dstOf4 = (packet: Buffer): string => ipv4ToString(packet.readUInt32BE(IP_DST));
/** The destination of a complete IPv6 packet. */
const dstOf6 = (packet: Buffer): string => ipv6ToString(packet, IP6_DST);

interface NativeWrap {
  send(buf: Buffer, offset: number, length: number, address: string, after: (bytes: number) => void): void;
}
