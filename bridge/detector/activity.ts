/**
 * Whether a peer whose heartbeats fell silent still runs: its segments (the
 * secondary's diverted answers, counted by the kernel and the bridge) still
 * reach us. Pure: counts and the time go in.
 *
 * The primary declares a silent secondary failed and turns every connection
 * primary-only for good; a false alarm costs every connection of the moment
 * its replica. At 100,000 connections on two cores, one did: no heartbeat
 * came for 111 ms while the secondary's event loop ran, and its answers kept
 * arriving. Heartbeats lost on the way (a full receive backlog, a partition
 * of their path) are not the secondary's death when its segments still come:
 * the decision waits, an interval at a time, up to `maxExcuseMs` of silence.
 * A dead node sends nothing: the decision is not delayed then.
 */
export class PeerActivity {
  /** The last few samples of the count, oldest first. */
  private readonly samples: Array<{ at: number; n: number }> = [];

  constructor(
    /** How often the count is sampled (the heartbeat interval), ms. */
    private readonly intervalMs: number,
    /** The longest silence excused so, ms (liveness.loop_stall_ms: the heartbeats a live peer signs ahead). */
    private readonly maxExcuseMs: number,
  ) {}

  sample(now: number, n: number): void {
    this.samples.push({ at: now, n });
    if (this.samples.length > 4) this.samples.shift();
  }

  /**
   * At a decision "down" at `now`, the count being `n` and the peer heard
   * last at `lastHeard`: whether its segments arrived within the last interval
   * or two (the count grew since the newest sample at least an interval old),
   * and the silence is still short enough to excuse.
   */
  stillSends(now: number, n: number, lastHeard: number): boolean {
    if (now - lastHeard >= this.maxExcuseMs) return false;
    for (let i = this.samples.length - 1; i >= 0; i--) {
      const s = this.samples[i]!;
      if (now - s.at >= this.intervalMs) return n > s.n;
    }
    return false;
  }
}
