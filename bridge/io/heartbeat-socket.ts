/**
 * The heartbeat socket (native/heartbeat.cc): bound to this node's address
 * and the heartbeat port, read on a thread of its own that keeps every
 * datagram from the configured peer with the time it arrived. The failure
 * detector takes them all before it judges (`take()`), so a stall of this
 * process's event loop is never taken for the peer's silence. The same
 * thread sends the heartbeats the loop planned (`plan()`), one per interval,
 * each signed as it leaves, so a stall of the loop shorter than the plan is
 * never taken for this node's death either.
 */
import { native } from './native.js';
import { monotonicMs } from '../clock.js';
import { realtimeState, type RealtimeState } from './realtime.js';

interface NativeHeartbeatSocket {
  take(): Array<[Buffer, number, boolean?]>;
  send(msg: Buffer): number;
  plan(heartbeat: Buffer, count: number, intervalMs: number): void;
  sent(): Array<[Buffer, number]>;
  stats(): Omit<HeartbeatSocketStats, 'realtime'> & { rtError: number };
  close(): void;
}

export interface HeartbeatSocketStats {
  /** Datagrams from the peer dropped because this many already waited (4,096). */
  dropped: number;
  /** Datagrams from any other address or port: ignored. */
  foreign: number;
  sendErrors: number;
  /** Planned heartbeats still to be sent (the detector counts those sent). */
  planned: number;
  /** Times the reader paused in a flood (over 64 datagrams within a millisecond). */
  bursts: number;
  /** Whether the reader runs at the configured real-time priority (scheduling.realtime_priority). */
  realtime: RealtimeState;
}

export class HeartbeatSocket {
  private readonly native: NativeHeartbeatSocket;
  private closed = false;

  /**
   * Binds `self`:`port` (throws an Error with `code` EADDRINUSE and the like).
   * `onReadable` runs on the event loop when datagrams wait; it should `take()`.
   * `signer`: how the thread signs what it sends (detector/heartbeat.ts's layout).
   */
  constructor(...args: HeartbeatSocketArgs) {
    this.native = new (native().HeartbeatSocket)(...args);
  }

  /**
   * Every datagram from the peer received so far, oldest first, with its
   * arrival time (monotonicMs) and, for one of the heartbeat's length,
   * whether the thread found its MAC right (`macOk`).
   */
  take(): Array<{ msg: Buffer; at: number; macOk?: boolean }> {
    if (this.closed) return [];
    const now = monotonicMs();
    return this.native
      .take()
      .map(([msg, ageMs, macOk]) => ({ msg, at: Math.min(now, Math.round(now - ageMs)), macOk }));
  }

  /**
   * From now on, `count` heartbeats, one every `intervalMs`: each `heartbeat`
   * with the next sequence number (its own first), signed by the thread as it
   * leaves; in place of the plan before (the cadence goes on). The thread
   * falls silent when the plan runs out.
   */
  plan(heartbeat: Buffer, count: number, intervalMs: number): void {
    if (!this.closed) this.native.plan(heartbeat, count, intervalMs);
  }

  /** The heartbeats sent since the last call: sequence number (bytes 8–15) and when (monotonicMs). */
  sent(): Array<{ seq: bigint; at: number }> {
    if (this.closed) return [];
    const now = monotonicMs();
    return this.native.sent().map(([seq, ageMs]) => ({ seq: seq.readBigUInt64BE(0), at: now - ageMs }));
  }

  /** Sends to the peer; a failure (the peer's host unreachable, say) is counted, not thrown: the detector decides. */
  send(msg: Buffer): void {
    if (!this.closed) this.native.send(msg);
  }

  get stats(): HeartbeatSocketStats {
    if (this.closed) return { dropped: 0, foreign: 0, sendErrors: 0, planned: 0, bursts: 0, realtime: 'off' };
    const { rtError, ...s } = this.native.stats();
    return { ...s, realtime: realtimeState(rtError) };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
  }
}

/** How the thread signs a heartbeat: HMAC-SHA256 under `key` of bytes 0..macAt, at macAt; the sequence number (8 bytes, big-endian) at seqAt. */
export interface HeartbeatSigner {
  key: Buffer;
  seqAt: number;
  macAt: number;
  length: number;
}

/** What a heartbeat socket is opened with (here and in the addon). */
type HeartbeatSocketArgs = [
  self: string,
  port: number,
  peer: string,
  peerPort: number,
  onReadable: () => void,
  signer: HeartbeatSigner,
];

/** The addon's part for heartbeats (native/heartbeat.cc). */
export interface HeartbeatNative {
  HeartbeatSocket: new (...args: HeartbeatSocketArgs) => NativeHeartbeatSocket;
}
