/**
 * The liveness guard (never silent): a bridge whose data path is stuck must
 * not go on heartbeating, or its peer never takes over. Each bridge watches
 * its own queues — messages waiting in a queue's socket and none read for
 * `stallMs` means the queue is deaf — and then stops: heartbeats and ARP
 * answers end, the process exits with EXIT_STALLED, its rules stay (fail
 * closed) for the next start to undo. Its event loop is watched by the
 * presence thread (io/presence.ts).
 */
import type { PacketQueue } from '../io/nfqueue.js';
import { EXIT_STALLED } from '../io/presence.js';
import type { Logger } from '../log.js';
import { monotonicMs } from '../clock.js';

/** What the guard samples of one queue. */
export interface QueueProbe {
  name: string;
  /** Packets read so far. */
  received(): number;
  /** Whether messages wait unread in its socket right now. */
  readable(): boolean;
}

export function probeOf(name: string, q: PacketQueue): QueueProbe {
  return { name, received: () => q.stats().received, readable: () => q.readable() };
}

/**
 * Pure: samples in, a verdict out. A queue is stuck when it was readable at
 * every sample for `stallMs` without one packet read in between.
 */
export class QueueWatch {
  private lastReceived = -1;
  private since: number | null = null;

  constructor(readonly stallMs: number) {}

  /** One sample at `now`: how long the queue has been stuck (0 if it is not), in ms. */
  sample(now: number, received: number, readable: boolean): number {
    const progressed = received !== this.lastReceived;
    this.lastReceived = received;
    if (!readable || progressed) {
      this.since = null;
      return 0;
    }
    this.since ??= now;
    return now - this.since;
  }

  stuck(stuckMs: number): boolean {
    return stuckMs >= this.stallMs;
  }
}

/** How often the guard samples, ms. */
const SAMPLE_MS = 100;

export interface Guard {
  stop(): void;
  /** A new bound (SIGHUP). */
  setStallMs(ms: number): void;
}

/**
 * Samples `queues` every SAMPLE_MS; when one is stuck, logs it and calls
 * `stopNow` (which must end heartbeats and ARP answers at once), then exits.
 */
export function startLivenessGuard(
  queues: readonly QueueProbe[],
  stallMs: number,
  log: Logger,
  stopNow: () => void,
): Guard {
  let watches = queues.map(() => new QueueWatch(stallMs));
  const timer = setInterval(() => {
    const now = monotonicMs();
    queues.forEach((q, i) => {
      const w = watches[i]!;
      const stuckMs = w.sample(now, q.received(), q.readable());
      if (!w.stuck(stuckMs)) return;
      log.error(
        { queue: q.name, stuckMs, received: q.received() },
        `data path stuck: packets wait in queue ${q.name} and none was read for ${stuckMs} ms: exiting so the peer takes over`,
      );
      try {
        stopNow();
      } finally {
        process.exit(EXIT_STALLED);
      }
    });
  }, SAMPLE_MS);
  timer.unref();
  return {
    stop: () => clearInterval(timer),
    setStallMs: (ms) => {
      watches = queues.map(() => new QueueWatch(ms));
    },
  };
}
