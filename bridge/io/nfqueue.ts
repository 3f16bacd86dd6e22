/**
 * NFQUEUE from TypeScript: a thin typed layer over the native addon
 * (native/nfqueue.cc). Packets arrive in batches — one contiguous Buffer and
 * a Uint32Array of metadata — and are read through a PacketBatch view, so the
 * hot path allocates nothing per packet unless the program asks for a copy;
 * with `reuseBuffer`, nothing per batch either.
 */
import { readFileSync } from 'node:fs';
import { native } from './native.js';

interface NativeQueue {
  verdict(id: number, verdict: number, mark?: number, buf?: Buffer, off?: number, len?: number): boolean;
  verdictBatch(maxId: number, verdict: number, mark?: number): boolean;
  stats(): QueueStats;
  readable(): boolean;
  deafen(): void;
  close(): void;
}

/** The addon's part for NFQUEUE (native/nfqueue.cc). */
export interface QueueNative {
  NfQueue: new (
    num: number,
    opts: object,
    onBatch: (data: Buffer, meta: Uint32Array, count: number) => void,
  ) => NativeQueue;
  META_WORDS: number;
}

export const NF_DROP = 0;
export const NF_ACCEPT = 1;
/** skbinfo flags (linux/netfilter/nfnetlink_queue.h). */
export const SKB_CSUMNOTREADY = 1 << 0;
export const SKB_GSO = 1 << 1;
export const SKB_CSUM_NOTVERIFIED = 1 << 2;

/** Netfilter hooks, as reported per packet. */
export const HOOK_PRE_ROUTING = 0;
export const HOOK_LOCAL_IN = 1;
export const HOOK_FORWARD = 2;
export const HOOK_LOCAL_OUT = 3;
export const HOOK_POST_ROUTING = 4;

const M_ID = 0;
const M_OFF = 1;
const M_LEN = 2;
const M_MARK = 3;
const M_HOOK = 4;
const M_INDEV = 5;
const M_OUTDEV = 6;
const M_SKBINFO = 7;
const M_HWLEN = 8;
const M_MAC_A = 9;
const M_MAC_B = 10;

export interface QueueStats {
  received: number;
  batches: number;
  /** Times the kernel overran the socket (messages lost: their packets were dropped, or accepted with failOpen). */
  enobufs: number;
  recvErrors: number;
  verdictErrors: number;
  /** Times the poll reported an error (an overrun), after which reading went on. */
  pollErrors: number;
  /** Exceptions that escaped a batch callback (each is the process's uncaught exception). */
  callbackErrors: number;
  /** With reuseBuffer: packets past the buffer's slots in one drain, dropped (one packet per message: never expected). */
  overflow: number;
}

export interface QueueOptions {
  /** Bytes of each packet copied to user space (default: whole packets). */
  copyRange?: number;
  /** Packets the kernel holds for us before it drops (or accepts, with failOpen). */
  maxLen?: number;
  /** Receive unsegmented GSO packets (NFQA_CFG_F_GSO): up to 64 KB, checksum possibly partial. */
  gso?: boolean;
  /** When the queue is full, accept instead of drop (NFQA_CFG_F_FAIL_OPEN). */
  failOpen?: boolean;
  /** Netlink socket receive buffer, bytes. */
  rcvbuf?: number;
  /**
   * Netlink messages drained per JS call at most (default 64, one recvmmsg). Each verdict
   * runs the rest of the kernel's path in its system call (the TCP stack for
   * a client's segment, the egress and the LAN for an answer), tens of µs
   * under load: 1,024 at a time held a primary's event loop 50–150 ms during
   * a storm of connections, and the heartbeats read before such a turn looked
   * a detector timeout old after it (a live secondary declared dead).
   */
  maxBatch?: number;
  /**
   * Read every batch into one buffer made at the start (maxBatch slots of
   * 68 KB, touched as used) instead of a new copy per batch: no allocation per
   * batch, which at 1 Gbit/s spared V8 most of its full collections. A view
   * of a packet is then valid only during its batch's callback: whatever is
   * kept for later must be copied (Buffer.from).
   */
  reuseBuffer?: boolean;
  /**
   * With reuseBuffer: overwrite each packet's bytes after its batch, so that a
   * view kept by mistake reads garbage. Default: on when the environment has
   * TCPFO_TEST_POISON=1 (the rig sets it for the bridges it starts in tests).
   */
  poison?: boolean;
}

/**
 * A view over one batch of queued packets, valid during the batch callback
 * only (with reuseBuffer the next batch overwrites it).
 */
export class PacketBatch {
  constructor(
    readonly data: Buffer,
    readonly meta: Uint32Array,
    private readonly words: number,
    readonly count: number = meta.length / words,
  ) {}
  id(i: number): number {
    return this.meta[i * this.words + M_ID]!;
  }
  offset(i: number): number {
    return this.meta[i * this.words + M_OFF]!;
  }
  length(i: number): number {
    return this.meta[i * this.words + M_LEN]!;
  }
  /** The packet's bytes (from the IP header), a view into the batch buffer. */
  packet(i: number): Buffer {
    const o = this.offset(i);
    return this.data.subarray(o, o + this.length(i));
  }
  mark(i: number): number {
    return this.meta[i * this.words + M_MARK]!;
  }
  hook(i: number): number {
    return this.meta[i * this.words + M_HOOK]!;
  }
  indev(i: number): number {
    return this.meta[i * this.words + M_INDEV]!;
  }
  outdev(i: number): number {
    return this.meta[i * this.words + M_OUTDEV]!;
  }
  skbInfo(i: number): number {
    return this.meta[i * this.words + M_SKBINFO]!;
  }
  /** True when the transport checksum is not yet computed (CHECKSUM_PARTIAL). */
  checksumPartial(i: number): boolean {
    return (this.skbInfo(i) & SKB_CSUMNOTREADY) !== 0;
  }
  /**
   * What the kernel says of the transport checksum: 'partial' (offload
   * pending), 'unverified' (an inbound packet no NIC or stack has checked:
   * the kernel reports it for PREROUTING and INPUT only), or 'verified'
   * (checked on the way in, or computed by this node's own stack).
   */
  checksumState(i: number): 'partial' | 'verified' | 'unverified' {
    const info = this.skbInfo(i);
    if (info & SKB_CSUMNOTREADY) return 'partial';
    return info & SKB_CSUM_NOTVERIFIED ? 'unverified' : 'verified';
  }
  /** Source MAC of an inbound packet as 48-bit number, or −1 when the kernel gave none. */
  srcMac(i: number): number {
    const base = i * this.words;
    if (this.meta[base + M_HWLEN] !== 6) return -1;
    return this.meta[base + M_MAC_A]! * 0x10000 + this.meta[base + M_MAC_B]!;
  }
  /** Highest packet id in the batch (ids increase within a queue). */
  lastId(): number {
    return this.id(this.count - 1);
  }
}

/**
 * Whether buffers given back are overwritten (TCPFO_TEST_POISON=1, which the
 * rig sets for the bridges it starts under vitest): a view of a packet kept
 * past its batch, or a merger's copy read after it went back, reads garbage.
 */
export function poisonInTests(): boolean {
  return process.env.TCPFO_TEST_POISON === '1';
}

/** MAC text → the 48-bit number PacketBatch.srcMac returns. */
export function macToNumber(mac: string): number {
  return parseInt(mac.replace(/:/g, ''), 16);
}

/**
 * Per-packet handling of a queue. `onPacket` must give packet `i` a verdict,
 * now or later. If it throws, the packet is dropped (fail closed), onError
 * is told, and the rest of the batch is handled as usual.
 */
export interface PacketHandler {
  onPacket(batch: PacketBatch, i: number, queue: PacketQueue): void;
  /** Before each batch (what must be known before its packets). */
  onBatchStart?(queue: PacketQueue): void;
  /** After each batch (timers, flushing). */
  onBatchEnd?(queue: PacketQueue): void;
  onError(e: unknown, batch: PacketBatch, i: number): void;
}

export class PacketQueue {
  private readonly q: NativeQueue;
  private closed = false;
  /** Packets onPacket threw on (each dropped). */
  handlerErrors = 0;

  /**
   * `handler`: a PacketHandler, or one function per batch (tests, benches),
   * whose exceptions are the process's uncaught exceptions.
   */
  constructor(
    readonly queueNum: number,
    opts: QueueOptions,
    handler: PacketHandler | ((batch: PacketBatch, queue: PacketQueue) => void),
  ) {
    if (!Number.isInteger(queueNum) || queueNum < 0 || queueNum > 65535)
      throw new RangeError(`bad queue number ${queueNum}`);
    const mod = native();
    const words = mod.META_WORDS;
    const onBatch =
      typeof handler === 'function'
        ? (data: Buffer, meta: Uint32Array, count: number) => handler(new PacketBatch(data, meta, words, count), this)
        : (data: Buffer, meta: Uint32Array, count: number) =>
            this.dispatch(new PacketBatch(data, meta, words, count), handler);
    const poison = opts.poison ?? poisonInTests();
    this.q = new mod.NfQueue(queueNum, { ...opts, poison }, onBatch);
  }

  private dispatch(batch: PacketBatch, h: PacketHandler): void {
    try {
      h.onBatchStart?.(this);
    } catch (e) {
      h.onError(e, batch, -1);
    }
    for (let i = 0; i < batch.count; i++) {
      try {
        h.onPacket(batch, i, this);
      } catch (e) {
        this.handlerErrors++;
        this.q.verdict(batch.id(i), NF_DROP);
        h.onError(e, batch, i);
      }
    }
    try {
      h.onBatchEnd?.(this);
    } catch (e) {
      h.onError(e, batch, -1);
    }
  }

  accept(id: number, mark?: number): boolean {
    return mark === undefined ? this.q.verdict(id, NF_ACCEPT) : this.q.verdict(id, NF_ACCEPT, mark);
  }
  drop(id: number): boolean {
    return this.q.verdict(id, NF_DROP);
  }
  /** Accepts the packet with new bytes (the whole IP packet). */
  acceptModified(id: number, packet: Buffer, mark?: number): boolean {
    return this.q.verdict(id, NF_ACCEPT, mark, packet, 0, packet.length);
  }
  /** One verdict for every packet queued with an id ≤ maxId. */
  acceptAll(maxId: number): boolean {
    return this.q.verdictBatch(maxId, NF_ACCEPT);
  }
  dropAll(maxId: number): boolean {
    return this.q.verdictBatch(maxId, NF_DROP);
  }
  stats(): QueueStats {
    return this.q.stats();
  }
  /** Packets the kernel dropped from this queue (it was full, or the socket was): 0 if it cannot tell. */
  kernelDropped(): number {
    const k = kernelQueueCounts(this.queueNum);
    return k ? k.queueDropped + k.userDropped : 0;
  }
  /** Whether messages (or an error) wait in the socket, unread, right now. */
  readable(): boolean {
    return !this.closed && this.q.readable();
  }
  /** Stops reading the socket for good: a fault for tests of the liveness guard (see native/nfqueue.cc). */
  deafen(): void {
    this.q.deafen();
  }
  /** Unbinds the queue; packets still queued get the kernel's default (drop, or accept with bypass). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.q.close();
  }
}

/** What the kernel counts of a queue (/proc/net/netfilter/nfnetlink_queue, this namespace). */
export interface KernelQueueCounts {
  /** Packets waiting for a verdict now. */
  waiting: number;
  /** Packets dropped because the queue held maxLen already. */
  queueDropped: number;
  /** Packets dropped because the netlink socket was full (the ENOBUFS a reader sees). */
  userDropped: number;
  /** The id the kernel gave the queue's latest packet (ids count up from 1, wrapping at 2^32). */
  lastId: number;
}

/**
 * The kernel's counts for queue `num` in the text of
 * /proc/net/netfilter/nfnetlink_queue (a line per bound queue: number, port
 * id, waiting, copy mode, copy range, queue-dropped, user-dropped, last id,
 * 1); null when the queue is not bound.
 */
export function parseQueueCounts(text: string, num: number): KernelQueueCounts | null {
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length >= 8 && f[0] === num && f.every(Number.isFinite))
      return { waiting: f[2]!, queueDropped: f[5]!, userDropped: f[6]!, lastId: f[7]! };
  }
  return null;
}

/** The kernel's counts for queue `num` now; null when it is not bound or the file is not there. */
export function kernelQueueCounts(num: number): KernelQueueCounts | null {
  try {
    return parseQueueCounts(readFileSync('/proc/net/netfilter/nfnetlink_queue', 'utf8'), num);
  } catch {
    return null;
  }
}

/** A queue's counts for status and metrics (zeros before it is bound). */
export function queueStatus(q: PacketQueue | undefined): { received: number; enobufs: number; dropped: number } {
  if (!q) return { received: 0, enobufs: 0, dropped: 0 };
  const s = q.stats();
  return { received: s.received, enobufs: s.enobufs, dropped: q.kernelDropped() };
}
