/**
 * The primary's inbound translation in the kernel (native/xlate.bpf.c,
 * loaded by native/xlate.cc): a tc ingress program on the LAN interface
 * moves the client's ACK, SACK blocks and timestamp echo into P's spaces for
 * every connection the merger lists in its map, and marks the segment so the
 * bridge's queue lets it pass; a tc egress program records what the bridge
 * released, so that only a client segment inside the windows is recorded. The common segment of an established
 * connection, and a client's SYN to the service, reach P's TCP without a
 * trip to user space; closes, resets and unusual layouts still go through
 * the queue.
 */
import { join } from 'node:path';
import { load } from './nfqueue.js';
import { PACKAGE_ROOT } from './paths.js';
import type { PortSet } from '../ports.js';

interface NativeXlate {
  set(client: number, service: number, cport: number, sport: number, dseq: number, dts: number, flags: number, wscale: number): boolean;
  remove(client: number, service: number, cport: number, sport: number): void;
  get(client: number, service: number, cport: number, sport: number): OffloadSeen | null;
  service(addr: number, port: number): boolean;
  counters(): XlateCounters;
  duplicateTo(to: Buffer | null, from?: Buffer): boolean;
  close(): void;
}

interface NativeXlateClass {
  new (objectPath: string, ifname: string, maxEntries: number): NativeXlate;
  detach(ifname: string): boolean;
}

/** What the program saw of one connection's client segments. */
export interface OffloadSeen {
  packets: number;
  /** Since the last one, ms (when packets > 0). */
  ageMs?: number;
  /** The highest ACK and sequence end the client sent (its own spaces), once seen. */
  ackMax?: number;
  nxtMax?: number;
}

export interface XlateCounters {
  /** Client segments translated in the kernel. */
  translated: number;
  /** Client SYNs to the service passed in the kernel. */
  synsPassed: number;
  /** The client's frames copied to the secondary (lan.mode: switch). */
  duplicated: number;
  /** Client segments translated but not recorded: outside the windows (a forged or very old segment). */
  outOfWindow: number;
}

export interface ConnAddr {
  client: number;
  service: number;
  clientPort: number;
  servicePort: number;
}

const F_TS = 1;

export const XLATE_OBJECT = join(PACKAGE_ROOT, 'build', 'Release', 'xlate.bpf.o');

function native(): NativeXlateClass {
  return (load() as unknown as { Xlate: NativeXlateClass }).Xlate;
}

export class InboundXlate {
  private constructor(private readonly x: NativeXlate) {}

  /**
   * Loads and attaches the program on `ifname` (replacing a killed
   * predecessor's), for the service address `vip` and its failover ports.
   * Throws when the kernel refuses it.
   */
  static open(ifname: string, maxEntries: number, vip: number, ports: PortSet): InboundXlate {
    const x = new (native())(XLATE_OBJECT, ifname, maxEntries);
    for (const p of ports) {
      const [lo, hi] = typeof p === 'number' ? [p, p] : p;
      for (let port = lo; port <= hi; port++) x.service(vip >>> 0, port);
    }
    return new InboundXlate(x);
  }

  /** Removes the program a killed bridge left on `ifname`; whether there was one. */
  static detach(ifname: string): boolean {
    try {
      return native().detach(ifname);
    } catch {
      return false;
    }
  }

  /** Lists a merged connection: its offsets, and the window scale its client was told (the servers' windows are in its units). */
  add(c: ConnAddr, dseq: number, dts: number, timestamps: boolean, wscale: number): boolean {
    return this.x.set(c.client, c.service, c.clientPort, c.servicePort, dseq >>> 0, dts >>> 0, timestamps ? F_TS : 0, wscale);
  }

  remove(c: ConnAddr): void {
    this.x.remove(c.client, c.service, c.clientPort, c.servicePort);
  }

  seen(c: ConnAddr): OffloadSeen | null {
    return this.x.get(c.client, c.service, c.clientPort, c.servicePort);
  }

  counters(): XlateCounters {
    return this.x.counters();
  }

  /**
   * On a learning switch: copies every client frame for the service to MAC
   * `to` (the secondary's) from MAC `from` (ours: the switch must not learn
   * the client's MAC on our port), before any translation; null stops it.
   */
  duplicateTo(to: Buffer | null, from?: Buffer): void {
    if (!this.x.duplicateTo(to, from)) throw new Error('could not set the frame copy to the secondary');
  }

  close(): void {
    if (this.closed) return;
    this.last = this.x.counters();
    this.closed = true;
    this.x.close();
  }

  private closed = false;
  private last: XlateCounters = { translated: 0, synsPassed: 0, duplicated: 0, outOfWindow: 0 };

  /** The counters, also after close (their last values). */
  get stats(): XlateCounters {
    return this.closed ? this.last : this.x.counters();
  }
}
