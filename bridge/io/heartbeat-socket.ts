/**
 * The heartbeat socket (native/heartbeat.cc): bound to this node's address
 * and the heartbeat port, read on a thread of its own that keeps every
 * datagram from the configured peer with the time it arrived. The failure
 * detector takes them all before it judges (`take()`), so a stall of this
 * process's event loop is never taken for the peer's silence. The same
 * thread sends the heartbeats the loop signed ahead (`schedule()`), one per
 * interval, so a stall of the loop shorter than what it signed is never taken
 * for this node's death either.
 */
import { native } from './native.js';
import { monotonicMs } from '../clock.js';
import { realtimeState, type RealtimeState } from './realtime.js';

interface NativeHeartbeatSocket {
  take(): Array<[Buffer, number]>;
  send(msg: Buffer): number;
  schedule(heartbeats: Buffer[], intervalMs: number): void;
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
  /** Signed heartbeats still waiting to be sent (the detector counts those sent). */
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
   */
  constructor(self: string, port: number, peer: string, peerPort: number, onReadable: () => void) {
    this.native = new (native().HeartbeatSocket)(self, port, peer, peerPort, onReadable);
  }

  /** Every datagram from the peer received so far, oldest first, with its arrival time (monotonicMs). */
  take(): Array<{ msg: Buffer; at: number }> {
    if (this.closed) return [];
    const now = monotonicMs();
    return this.native.take().map(([msg, ageMs]) => ({ msg, at: Math.min(now, Math.round(now - ageMs)) }));
  }

  /**
   * The heartbeats to send from now on, one every `intervalMs`, in place of
   * those still waiting (the cadence goes on). The thread falls silent when
   * they run out.
   */
  schedule(heartbeats: Buffer[], intervalMs: number): void {
    if (!this.closed) this.native.schedule(heartbeats, intervalMs);
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

/** The addon's part for heartbeats (native/heartbeat.cc). */
export interface HeartbeatNative {
  HeartbeatSocket: new (
    self: string,
    port: number,
    peer: string,
    peerPort: number,
    onReadable: () => void,
  ) => NativeHeartbeatSocket;
}
