/**
 * While both nodes answer, a pass of the node's congestion reset every half
 * second over the connections whose client's window reopened after a wait
 * (io/cc-reset.ts CC_REOPENED; the rule: native/ccreset.bpf.c `reopened`).
 *
 * Why: a client that stops reading leaves each server sending only at its
 * window-probe timer; the copy that came first waits at the merge for the
 * other's, and its TCP times out. BBR takes those timeouts for a policer
 * and paces the connection at the probes' rate (tens of kbit/s) for dozens
 * of round trips after the client reads again: a 25 MB rest took up to 45 s
 * instead of 2 (bench/micro/slow-reader.ts). A new start of its congestion
 * control, once the window is open again, models the path as it is.
 *
 * A pass walks the node's TCP sockets: the next waits 20 times as long as
 * this one took (so that at many connections the watch costs about 5 % of a
 * core), at least REOPEN_INTERVAL_MS and at most REOPEN_MAX_INTERVAL_MS, so
 * that a window shut for longer than that is always seen shut by one pass.
 */
import type { Logger } from '../log.js';
import { CC_REOPENED, type CongestionReset } from '../io/cc-reset.js';

/** The shortest time between two passes. */
export const REOPEN_INTERVAL_MS = 500;
/** The longest: a busy machine's slow pass does not spread them further. */
export const REOPEN_MAX_INTERVAL_MS = 2000;

export class ReopenWatch {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private warned = false;

  /** `active`: whether this node merges with a live peer now (a pass is skipped otherwise). */
  constructor(
    private readonly reset: CongestionReset,
    private readonly active: () => boolean,
    private readonly log: Logger,
    private readonly intervalMs = REOPEN_INTERVAL_MS,
  ) {}

  start(): this {
    this.schedule(this.intervalMs);
    return this;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    this.timer = null;
    let next = this.intervalMs;
    if (this.active()) {
      try {
        const r = await this.reset.run(256, CC_REOPENED);
        next = Math.min(REOPEN_MAX_INTERVAL_MS, Math.max(this.intervalMs, 20 * r.ms));
        if (r.reset || r.failed)
          this.log.debug(
            { reset: r.reset, failed: r.failed, firstError: r.firstError, ms: r.ms },
            'congestion state reset: the client’s window reopened',
          );
      } catch (e) {
        // Once: a pass that fails fails again at the next (the iterator's link is gone).
        if (!this.warned)
          this.log.warn(
            { err: (e as Error).message },
            'the window-reopen congestion reset failed: a connection whose client stopped reading may stay slow',
          );
        this.warned = true;
      }
    }
    this.schedule(next);
  }
}
