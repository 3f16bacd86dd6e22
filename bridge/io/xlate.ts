/**
 * The primary's inbound translation in the kernel (native/xlate.bpf.c,
 * loaded by native/xlate.cc): a tc ingress program on the LAN interface
 * moves the client's ACK, SACK blocks and timestamp echo into P's spaces for
 * every connection the merger lists in its map, and marks the segment so the
 * bridge's queue lets it pass; a tc egress program records what the bridge
 * released, so that only a client segment inside the windows is recorded. The common segment of an established
 * connection, and a client's SYN to the service, reach P's TCP without a
 * trip to user space; closes, resets and unusual layouts still go through
 * the queue. The same object releases P's segments of primary-only
 * connections and, with merge: kernel, merges the common case
 * (native/bpf/merge.h); its netfilter match is pinned for iptables.
 */
import { readdirSync, statfsSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { native as addon } from './native.js';
import { PACKAGE_ROOT } from './paths.js';
import { run } from './run.js';
import type {
  KernelEnded,
  KernelHandshake,
  KernelMergeInit,
  KernelMergeState,
  KernelSynAck,
} from '../primary/merge/kernel.js';
import type { PortSet } from '../../net/ports.js';
import type { HeldHandshake } from '../primary/prompts.js';
import type { PrimaryOnlyEntry } from '../primary/merge/types.js';

interface NativeXlate {
  set(
    client: number,
    service: number,
    cport: number,
    sport: number,
    dseq: number,
    dts: number,
    flags: number,
    wscale: number,
  ): boolean;
  primaryOnly(
    client: number,
    service: number,
    cport: number,
    sport: number,
    dseq: number,
    dts: number,
    flags: number,
    wscaleP: number,
    wscaleS: number,
  ): boolean;
  primaryOnlyMany(records: Buffer): number;
  released(client: number, service: number, cport: number, sport: number): { segments: number; bytes: number } | null;
  remove(client: number, service: number, cport: number, sport: number): void;
  get(client: number, service: number, cport: number, sport: number): OffloadSeen | null;
  service(addr: number, port: number): boolean;
  counters(): XlateCounters;
  secondarySilentMs(): number | null;
  run(
    program: string,
    packet: Buffer,
    mark: number,
    gsoSize?: number,
    gsoSegs?: number,
  ): { ret: number; packet: Buffer } | null;
  mergeStart(client: number, service: number, cport: number, sport: number, init: KernelMergeInit): boolean;
  mergeResume(client: number, service: number, cport: number, sport: number, init: KernelMergeInit): boolean;
  mergeTake(client: number, service: number, cport: number, sport: number): KernelMergeState | null;
  peer(mac: Buffer): boolean;
  duplicateTo(to: Buffer | null, from?: Buffer): boolean;
  orderDone(done: Uint32Array): boolean;
  orderHold(ms: number): boolean;
  orderQueued(): Uint32Array | null;
  orderMapped(): boolean;
  attach(ifname: string, pinPath?: string): void;
  handshakes(on: boolean): boolean;
  alone(on: boolean): boolean;
  stashedConns(): Buffer;
  drainEvents(): Buffer;
  heldHandshakes(maxAgeMs: number): HeldHandshake[];
  close(): void;
}

interface NativeXlateClass {
  new (objectPath: string, ifname: string, maxEntries: number, pinPath?: string): NativeXlate;
  /** The kernel merge's digest of a range's bytes (native/bpf/digest.h). */
  digest(bytes: Buffer): bigint;
  detach(ifname: string): boolean;
  unpin(path: string): boolean;
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
  /** P's segments of primary-only connections released in the kernel. */
  released: number;
  /** Such segments the egress program could not rewrite, dropped (P's TCP sends them again, through the queue). */
  releaseRefused: number;
  /** Merged in the kernel: P's segment released (S's copy came first), S's copy released (P's came first). */
  mergedP: number;
  mergedS: number;
  /** First arrivals that waited in the kernel for the other side's copy. */
  mergeHeld: number;
  /** Pure ACKs of a server that moved nothing the client needs, not sent. */
  mergeAckDropped: number;
  /** Connections handed from the kernel's merge to the bridge. */
  handover: number;
  /** P's segments stolen as their connection went to the bridge (P's TCP sends them again). */
  handoverStolen: number;
  /** Copies of stolen segments of P's kept for the bridge (the stash). */
  stashed: number;
  /** A server's range sent again while it waited (stolen or dropped again), or S's of bytes released already (dropped). */
  mergeAgain: number;
  /** P's SYN-ACKs held in the kernel for S's. */
  handshakesHeld: number;
  /** Handshakes merged in the kernel. */
  handshakesMerged: number;
  /** S's SYN-ACKs passed to the bridge's queue (it came first, another SYN, another layout, no room). */
  handshakesToBridge: number;
  /** Of the merged, those whose S's SYN-ACK came first: P's left, in S's numbers. */
  handshakesMergedP: number;
  /** Clients' FINs of connections merged in the kernel, translated there. */
  clientFins: number;
  /** Connections whose close (both FINs) passed in the kernel: the bridge told. */
  ended: number;
  /** Connections the client's RST ended in the kernel: the bridge told. */
  clientResets: number;
  /** Events the bridge could not be told (the ring buffer full). */
  eventsLost: number;
  /** Servers' pure ACKs released in the kernel with their lone D-SACK block overwritten with NOPs. */
  dsackCleared: number;
  /** Segments from the service address and the secondary's MAC seen at ingress: they grow while its node runs. */
  fromSecondary: number;
  /** Packets of several segments (GSO) the merge held or released as their segments. */
  mergeGso: number;
  /** Payload bytes the kernel merge sent the client for the first time. */
  mergedBytes: number;
}

/** The size of one `kernel_event` (native/bpf/maps.h). */
export const KERNEL_EVENT_BYTES = 52;
/** kernel_event_kind in native/bpf/maps.h. */
const EV_HANDSHAKE = 1;
const EV_ENDED = 2;
/** end_how: the client's RST ended it (else both FINs). */
const ENDED_RESET = 2;
/** Where a kernel_event's body starts (after the connection's key and the kind). */
const EV_BODY = 16;
/** syn_layout in native/bpf/maps.h. */
const SYNL_SACK = 1;
const SYNL_TS = 2;
const SYNL_WS = 4;

/** What the kernel tells the bridge, in order (kernel_event). */
export type KernelEvent = ({ kind: 'handshake' } & KernelHandshake) | ({ kind: 'ended' } & KernelEnded);

/** The struct conn_key at `at` (native/bpf/maps.h): addresses and ports in network order. */
function connKeyAt(buf: Buffer, at: number): ConnAddr {
  return {
    client: buf.readUInt32BE(at),
    service: buf.readUInt32BE(at + 4),
    clientPort: buf.readUInt16BE(at + 8),
    servicePort: buf.readUInt16BE(at + 10),
  };
}

/**
 * The events in `buf`, a run of `kernel_event`s as the kernel wrote them:
 * the connection's addresses and ports in network order, the rest in the
 * host's (`littleEndian`). An event of a kind this bridge does not know is
 * skipped.
 */
export function parseKernelEvents(buf: Buffer, littleEndian = endianness() === 'LE'): KernelEvent[] {
  const out: KernelEvent[] = [];
  const u32 = (at: number) => (littleEndian ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
  const u16 = (at: number) => (littleEndian ? buf.readUInt16LE(at) : buf.readUInt16BE(at));
  for (let at = 0; at + KERNEL_EVENT_BYTES <= buf.length; at += KERNEL_EVENT_BYTES) {
    const conn = connKeyAt(buf, at);
    const kind = u32(at + 12);
    const b = at + EV_BODY;
    if (kind === EV_ENDED) {
      out.push({ kind: 'ended', ...conn, dseq: u32(b), reset: u32(b + 4) === ENDED_RESET });
      continue;
    }
    if (kind !== EV_HANDSHAKE) continue;
    const layout = buf[b + 34]!;
    const ts = (layout & SYNL_TS) !== 0;
    const ws = (layout & SYNL_WS) !== 0;
    const side = (isn: number, tsval: number, mss: number, win: number, wscale: number): KernelSynAck => ({
      isn,
      mss,
      wscale: ws ? wscale : -1,
      sackOk: (layout & SYNL_SACK) !== 0,
      tsval: ts ? tsval : null,
      window: win,
    });
    out.push({
      kind: 'handshake',
      ...conn,
      ack: u32(b + 8),
      tsecr: u32(b + 20),
      syn: buf[b + 35] === 1,
      p: side(u32(b), u32(b + 12), u16(b + 24), u16(b + 28), buf[b + 32]!),
      s: side(u32(b + 4), u32(b + 16), u16(b + 26), u16(b + 30), buf[b + 33]!),
    });
  }
  return out;
}

export interface ConnAddr {
  client: number;
  service: number;
  clientPort: number;
  servicePort: number;
}

const F_TS = 1;
/** sizeof(struct conn_key) (native/bpf/maps.h). */
const CONN_KEY_BYTES = 12;
/** One record of primaryOnlyMany (native/xlate.cc): the key, dseq, dts, flags, both scales, a pad byte. */
const PRIMARY_ONLY_RECORD = CONN_KEY_BYTES + 12;
/** An Ethernet header before the IP packet: what a socket filter's test run takes. */
const ETH_HLEN = 14;
const ETH_P_IP = 0x0800;

export const XLATE_OBJECT = join(PACKAGE_ROOT, 'build', 'Release', 'xlate.bpf.o');

/** Where BPF objects are pinned (bpffs), and its magic number (statfs). */
const BPF_FS = '/sys/fs/bpf';
const BPF_FS_MAGIC = 0xcafe4a11;

/** Where the primary pins its netfilter match of primary-only connections (iptables `-m bpf --object-pinned`). */
export function matchPinPath(instance: string): string {
  return `${BPF_FS}/tcpfo_${instance}_primary_only`;
}

/** Where it pins, beside that, the match that marks segments queued only to wait their turn (tcpfo_order_only). */
export function orderPinPath(instance: string): string {
  return `${matchPinPath(instance)}_order`;
}

/** Removes every primary's pinned match left on this node (any instance); the paths removed. */
export function removeAllPins(): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(BPF_FS);
  } catch {
    return [];
  }
  return names
    .filter((n) => /^tcpfo_[a-z0-9]+_primary_only(_order)?$/.test(n))
    .map((n) => `${BPF_FS}/${n}`)
    .filter((p) => InboundXlate.unpin(p));
}

/**
 * Makes sure a bpffs is mounted at /sys/fs/bpf (systemd mounts one; a
 * container or `ip netns exec` may not), before the bridge gives up the
 * capability to mount. Returns whether it mounted one.
 */
export async function ensureBpffs(): Promise<boolean> {
  try {
    if (statfsSync(BPF_FS).type === BPF_FS_MAGIC) return false;
  } catch {
    // not there: mount below says why
  }
  await run('mount', ['-t', 'bpf', 'bpf', BPF_FS], { timeoutMs: 5000 });
  return true;
}

function addServices(x: NativeXlate, vip: number, ports: PortSet): void {
  for (const p of ports) {
    const [lo, hi] = typeof p === 'number' ? [p, p] : p;
    for (let port = lo; port <= hi; port++) x.service(vip >>> 0, port);
  }
}

/** A merge state's 32-bit numbers as the addon reads them (unsigned; windows at most 2³² − 1). */
function unsignedInit(init: KernelMergeInit): KernelMergeInit {
  const u = (n: number) => n >>> 0;
  return {
    ...init,
    dseq: u(init.dseq),
    dts: u(init.dts),
    relNxt: u(init.relNxt),
    ackP: u(init.ackP),
    ackS: u(init.ackS),
    winP: Math.min(u(init.winP), 0xffffffff),
    winS: Math.min(u(init.winS), 0xffffffff),
    ackSent: u(init.ackSent),
    edgeSent: u(init.edgeSent),
    tsvalMax: u(init.tsvalMax),
    tsecr: u(init.tsecr),
  };
}

function native(): NativeXlateClass {
  return addon().Xlate;
}

/** The kernel merge's digest of a range's bytes (native/bpf/digest.h). */
export function kernelDigest(bytes: Buffer): bigint {
  return native().digest(bytes);
}

export class InboundXlate {
  private constructor(private readonly x: NativeXlate) {}

  /**
   * Loads and attaches the program on `ifname` (replacing a killed
   * predecessor's), for the service address `vip` and its failover ports.
   * Throws when the kernel refuses it.
   */
  static open(ifname: string, maxEntries: number, vip: number, ports: PortSet, pinPath?: string): InboundXlate {
    const x =
      pinPath === undefined
        ? new (native())(XLATE_OBJECT, ifname, maxEntries)
        : new (native())(XLATE_OBJECT, ifname, maxEntries, pinPath);
    addServices(x, vip, ports);
    return new InboundXlate(x);
  }

  /**
   * Loads the programs now, to attach later (attachTo): a secondary does at
   * its start, as root, for the primary role it may take with fewer
   * capabilities — the verifier of kernels before 6.14 refuses these
   * programs without CAP_PERFMON, which the bridge does not keep.
   */
  static preload(maxEntries: number): InboundXlate {
    return new InboundXlate(new (native())(XLATE_OBJECT, '', maxEntries));
  }

  /** Attaches preloaded programs on `ifname` (and pins the match at `pinPath`), for `vip` and its ports. Throws (and closes them) if the kernel refuses. */
  attachTo(ifname: string, vip: number, ports: PortSet, pinPath?: string): InboundXlate {
    this.x.attach(ifname, pinPath);
    addServices(this.x, vip, ports);
    return this;
  }

  /** Loads the programs without attaching them anywhere: for run() (tests). */
  static loadOnly(maxEntries: number, vip: number, ports: PortSet): InboundXlate {
    return InboundXlate.open('', maxEntries, vip, ports);
  }

  /**
   * Runs one loaded program once on `packet` (BPF_PROG_TEST_RUN): an
   * Ethernet frame for the tc programs, an IP packet for the match. Returns
   * its verdict and the packet as it left.
   */
  run(
    program: 'tcpfo_xlate' | 'tcpfo_sent' | 'tcpfo_primary_only' | 'tcpfo_order_only' | 'tcpfo_skips_queue',
    packet: Buffer,
    mark = 0,
    /** Run it as a GSO packet: `segs` segments of `size` bytes (a test's). */
    gso?: { size: number; segs: number },
  ): { ret: number; packet: Buffer } {
    const r = gso ? this.x.run(program, packet, mark, gso.size, gso.segs) : this.x.run(program, packet, mark);
    if (!r) throw new Error(`no program ${program}`);
    return r;
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
    return this.x.set(
      c.client,
      c.service,
      c.clientPort,
      c.servicePort,
      dseq >>> 0,
      dts >>> 0,
      timestamps ? F_TS : 0,
      wscale,
    );
  }

  /**
   * P's segments of `c` leave in the kernel from now on, moved into the
   * client's spaces (seq − `dseq`, TSval − `dts`, the window from scale
   * `wscaleP` to `wscaleS`); false if the map is full (the queue goes on).
   */
  primaryOnly(c: ConnAddr, dseq: number, dts: number, timestamps: boolean, wscaleP: number, wscaleS: number): boolean {
    return this.x.primaryOnly(
      c.client,
      c.service,
      c.clientPort,
      c.servicePort,
      dseq >>> 0,
      dts >>> 0,
      timestamps ? F_TS : 0,
      wscaleP,
      wscaleS,
    );
  }

  /**
   * primaryOnly for many connections in one system call; how many of the
   * first it took (the map stops at the first it refuses: full).
   */
  primaryOnlyMany(list: readonly PrimaryOnlyEntry[]): number {
    if (!list.length) return 0;
    const b = Buffer.alloc(list.length * PRIMARY_ONLY_RECORD);
    const le = endianness() === 'LE';
    list.forEach((e, i) => {
      const o = i * PRIMARY_ONLY_RECORD;
      // struct conn_key as the map has it (network order), then the value's fields (host order).
      b.writeUInt32BE(e.c.client, o);
      b.writeUInt32BE(e.c.service, o + 4);
      b.writeUInt16BE(e.c.clientPort, o + 8);
      b.writeUInt16BE(e.c.servicePort, o + 10);
      if (le) {
        b.writeUInt32LE(e.dseq >>> 0, o + 12);
        b.writeUInt32LE(e.dts >>> 0, o + 16);
      } else {
        b.writeUInt32BE(e.dseq >>> 0, o + 12);
        b.writeUInt32BE(e.dts >>> 0, o + 16);
      }
      b[o + 20] = e.timestamps ? F_TS : 0;
      b[o + 21] = e.wscaleP;
      b[o + 22] = e.wscaleS;
    });
    return this.x.primaryOnlyMany(b);
  }

  /** What of `c` left in the kernel (null: not primary-only there). */
  released(c: ConnAddr): { segments: number; bytes: number } | null {
    return this.x.released(c.client, c.service, c.clientPort, c.servicePort);
  }

  /** The kernel merges `c` from now on (false: its map is full; the queue merges it). */
  mergeStart(c: ConnAddr, init: KernelMergeInit): boolean {
    return this.x.mergeStart(c.client, c.service, c.clientPort, c.servicePort, unsignedInit(init));
  }

  /** `c`, which the bridge took, returns to the kernel's merge (its entry rewritten under its lock); false: it stays with the queue. */
  mergeResume(c: ConnAddr, init: KernelMergeInit): boolean {
    return this.x.mergeResume(c.client, c.service, c.clientPort, c.servicePort, unsignedInit(init));
  }

  /** The bridge takes `c` from the kernel's merge (atomically); its state then, or null if the kernel did not merge it. */
  mergeTake(c: ConnAddr): KernelMergeState | null {
    return this.x.mergeTake(c.client, c.service, c.clientPort, c.servicePort);
  }

  /** Whether the programs merge handshakes from now on (native/bpf/handshake.h): while merging with a live secondary. */
  mergeHandshakes(on: boolean): void {
    if (!this.x.handshakes(on)) throw new Error('could not switch the kernel merge of handshakes');
  }

  /**
   * Whether the secondary failed (native/bpf/maps.h peer_cfg.alone): P's
   * segments of connections the kernel merges go to the output queue, which
   * turns each primary-only as it comes, instead of being stolen for a copy
   * that will not come.
   */
  setAlone(on: boolean): void {
    if (!this.x.alone(on)) throw new Error('could not tell the kernel the secondary failed');
  }

  /** The connections whose stolen segments of P's the kernel keeps (its stash), each once. */
  stashedConns(): ConnAddr[] {
    const b = this.x.stashedConns();
    const out: ConnAddr[] = [];
    for (let o = 0; o + CONN_KEY_BYTES <= b.length; o += CONN_KEY_BYTES) out.push(connKeyAt(b, o));
    return out;
  }

  /** What the kernel told since the last call (handshakes merged, closes passed), oldest first. */
  kernelEvents(): KernelEvent[] {
    const b = this.x.drainEvents();
    return b.length ? parseKernelEvents(b) : [];
  }

  /** P's SYN-ACKs the kernel holds for S's, held less than `maxAgeMs` ago. */
  heldHandshakes(maxAgeMs: number): HeldHandshake[] {
    return this.x.heldHandshakes(maxAgeMs);
  }

  /** Only frames from `mac` (the secondary's) are merged as its copies. */
  setPeer(mac: Buffer): void {
    if (!this.x.peer(mac)) throw new Error('could not set the secondary’s MAC for the kernel merge');
  }

  /**
   * Whether the kernel releases P's segment `ip` (an IP packet) on its own
   * account — what the netfilter match says of it but for the order of its
   * client's answers (tcpfo_skips_queue).
   */
  skipsQueue(ip: Buffer): boolean {
    // The headers only: the program reads the length from the IP header, and
    // a test run takes at most about a page (a GSO packet is up to 64 KB).
    const ihl = ip.length >= 20 ? (ip[0]! & 0x0f) * 4 : 0;
    if (ihl < 20 || ip.length < ihl + 20) return false;
    const headers = Math.min(ip.length, ihl + (ip[ihl + 12]! >> 4) * 4);
    const frame = Buffer.allocUnsafe(ETH_HLEN + headers);
    frame.fill(0, 0, ETH_HLEN - 2);
    frame.writeUInt16BE(ETH_P_IP, ETH_HLEN - 2);
    ip.copy(frame, ETH_HLEN, 0, headers);
    return this.run('tcpfo_skips_queue', frame).ret === 1;
  }

  /** Writes the bridge's verdict counts by client slot (bridge/primary/order.ts) for the match to compare. */
  setOrderDone(done: Uint32Array): boolean {
    return this.x.orderDone(done);
  }

  /** How long a client slot holds its answers in the queue at most, from the count that set its counts apart (0: for ever). */
  setOrderHold(ms: number): boolean {
    return this.x.orderHold(ms);
  }

  /** Whether the order's counts are written by stores into the mapped map (BPF_F_MMAPABLE), not system calls. */
  orderMapped(): boolean {
    return this.x.orderMapped();
  }

  /** The match's counts of P's segments sent to the queue, by client slot. */
  orderQueued(): Uint32Array | null {
    return this.x.orderQueued();
  }

  /** Removes the pinned matches a killed bridge left at `path` (and the order's beside it); whether there was one. */
  static unpin(path: string): boolean {
    try {
      const order = path.endsWith('_order') ? false : native().unpin(`${path}_order`);
      return native().unpin(path) || order;
    } catch {
      return false;
    }
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

  /** How long ago (ms) the secondary's last segment reached the ingress program; null if none has. */
  secondarySilentMs(): number | null {
    return this.closed ? null : this.x.secondarySilentMs();
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
  private last: XlateCounters = {
    translated: 0,
    synsPassed: 0,
    duplicated: 0,
    outOfWindow: 0,
    released: 0,
    releaseRefused: 0,
    mergedP: 0,
    mergedS: 0,
    mergeHeld: 0,
    mergeAckDropped: 0,
    handover: 0,
    handoverStolen: 0,
    stashed: 0,
    handshakesHeld: 0,
    handshakesMerged: 0,
    handshakesToBridge: 0,
    handshakesMergedP: 0,
    mergeAgain: 0,
    clientFins: 0,
    ended: 0,
    clientResets: 0,
    eventsLost: 0,
    dsackCleared: 0,
    fromSecondary: 0,
    mergeGso: 0,
    mergedBytes: 0,
  };

  /** The counters, also after close (their last values). */
  get stats(): XlateCounters {
    return this.closed ? this.last : this.x.counters();
  }
}

/** The addon's part for the primary's BPF programs (native/xlate.cc). */
export interface XlateNative {
  Xlate: NativeXlateClass;
}
