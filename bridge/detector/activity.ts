/**
 * Whether a peer whose heartbeats fell silent still runs: its segments (the
 * secondary's diverted answers, timed by the kernel and the bridge as they
 * arrive) still reach us. Pure: the times go in, nothing is sampled.
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
  constructor(
    /** The heartbeat interval, ms: segments within two of them count as still arriving. */
    private readonly intervalMs: number,
    /** The longest silence excused so, ms (liveness.loop_stall_ms: the heartbeats a live peer signs ahead). */
    private readonly maxExcuseMs: number,
  ) {}

  /**
   * At a decision "down" at `now`, the peer's last segment having arrived at
   * `lastSegmentAt` (null: none yet) and the peer heard last at `lastHeard`:
   * whether its segments arrived within the last two intervals, and the
   * silence is still short enough to excuse.
   */
  stillSends(now: number, lastSegmentAt: number | null, lastHeard: number): boolean {
    if (now - lastHeard >= this.maxExcuseMs || lastSegmentAt === null) return false;
    return now - lastSegmentAt <= 2 * this.intervalMs;
  }
}
