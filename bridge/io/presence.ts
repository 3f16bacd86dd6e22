/**
 * The active node's ARP answers for the service address (and neighbour
 * advertisements for its IPv6 one), and the bridge's
 * watchdog of its own event loop, on a native thread (native/presence.cc):
 * a starved event loop no longer misses the peer's split-brain probe, and a
 * loop stuck for `holdMs` ends the process (exit 4) instead of leaving a
 * bridge that claims the VIP, or heartbeats, without running.
 */
import { ipAddrBytes, type ServiceAddresses } from '../../net/addr.js';
import { native } from './native.js';
import { realtimeState, type RealtimeState } from './realtime.js';

interface NativePresence {
  touch(): void;
  setHold(ms: number): void;
  setAnswering(on: boolean): void;
  stats(): Omit<PresenceStats, 'realtime'> & { rtError: number };
  close(): void;
}

export interface PresenceStats {
  /** ARP requests and neighbour solicitations for the VIPs seen on the interface. */
  requests: number;
  replies: number;
  sendErrors: number;
  answering: boolean;
  /** The longest an answer took, from the kernel's receipt of the request to the reply's send, µs. */
  maxDelayUs: number;
  /** Answers that took over 10 ms (the peer's split-brain probe waits 50 ms). */
  late: number;
  /** Times the thread paused in a flood of requests (over 64 within a millisecond). */
  bursts: number;
  /** Whether the thread runs at the configured real-time priority (scheduling.realtime_priority). */
  realtime: RealtimeState;
}

/** The exit code of a bridge whose event loop (or data path) was stuck. */
export const EXIT_STALLED = 4;

/**
 * The hold while a bridge sets itself up, until `arm()`. Setup verifies and
 * loads BPF programs synchronously; on a machine busy with other work that
 * held the loop past a second, and the watchdog ended a bridge that was
 * merely starting. No connection waits on a bridge still setting up.
 */
export const SETUP_HOLD_MS = 20_000;

export class LanPresence {
  private readonly native: NativePresence;
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  /**
   * `holdMs`: how long the event loop may go without running before the
   * process ends, once `arm()`ed; until then the setup's hold
   * (`SETUP_HOLD_MS`, or `holdMs` if longer). `label`: the logger name on the
   * line the thread writes then.
   */
  constructor(
    ifname: string,
    vips: ServiceAddresses,
    mac: Buffer,
    private readonly holdMs: number,
    label: string,
  ) {
    const vip6 = vips.v6 === null ? null : ipAddrBytes(vips.v6);
    this.native = new (native().Presence)(ifname, vips.v4 >>> 0, mac, Math.max(SETUP_HOLD_MS, holdMs), label, vip6);
    // The loop's sign of life: ten times per hold, from a timer (each wake-up
    // of an idle loop costs it CPU: no more often than that).
    this.timer = setInterval(() => this.native.touch(), Math.max(5, Math.floor(holdMs / 10)));
    this.timer.unref();
  }

  /** Setup is over: from now on the loop may stall `holdMs` at most. */
  arm(): void {
    if (!this.closed) this.native.setHold(this.holdMs);
  }

  /** Whether to answer ARP requests and neighbour solicitations for the VIPs (the active node only). */
  answer(on: boolean): void {
    if (!this.closed) this.native.setAnswering(on);
  }

  get stats(): PresenceStats {
    if (this.closed)
      return {
        requests: 0,
        replies: 0,
        sendErrors: 0,
        answering: false,
        maxDelayUs: 0,
        late: 0,
        bursts: 0,
        realtime: 'off',
      };
    const { rtError, ...s } = this.native.stats();
    return { ...s, realtime: realtimeState(rtError) };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.native.close();
  }
}

/** The addon's part for the service address's presence on the LAN (native/presence.cc). */
export interface PresenceNative {
  Presence: new (
    ifname: string,
    vip: number,
    mac: Buffer,
    holdMs: number,
    label: string,
    vip6: Buffer | null,
  ) => NativePresence;
}
