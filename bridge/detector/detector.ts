/**
 * The failure detector, pure: authenticated heartbeats and the time go in,
 * decisions come out. The bridge process itself sends and receives the
 * heartbeats, so a dead bridge is a dead node.
 *
 * The peer is 'up' after its first valid heartbeat and 'down' once no valid
 * heartbeat arrived for timeoutMs. A peer never heard from is declared down
 * after timeoutMs + startupGraceMs. Valid means: authenticated, from the
 * configured peer to this node (a reflected heartbeat names the wrong
 * sender), a sequence number above the last accepted one (replays), and
 * echoing this detector's own nonce (a recording made before this node
 * started cannot). A heartbeat that passes all but the last only teaches us
 * the peer's nonce, to echo: the first one of each side, after each start.
 */
import type { Heartbeat, HeartbeatError } from './heartbeat.js';

export type PeerState = 'unknown' | 'up' | 'down';

export interface DetectorConfig {
  intervalMs: number;
  timeoutMs: number;
  /** Extra time the peer gets to appear after we start. */
  startupGraceMs: number;
  /** This node's and the peer's own addresses (IPv4 as 32-bit numbers), as heartbeats name them. */
  self: number;
  peer: number;
  /** This node's nonce (random, nonzero), which the peer's heartbeats must echo. */
  nonce: bigint;
}

export interface Decision {
  at: number;
  peer: PeerState;
  /** ms since the last valid heartbeat (or since start). */
  silentMs: number;
  reason: string;
}

export type Rejection =
  HeartbeatError | 'replay' | 'wrong-peer-role' | 'wrong-sender' | 'wrong-receiver' | 'stale-nonce';

export interface DetectorStats {
  received: number;
  sent: number;
  rejected: Record<Rejection, number>;
  lastRttMs: number | null;
}

/** After a peer comes back or is first heard, how long its silence is judged leniently (GRACE_TIMEOUTS × timeout), ms. */
export const REJOIN_GRACE_MS = 2000;
/** How many timeouts of silence mean "down" during that grace. */
export const GRACE_TIMEOUTS = 3;

export class Detector {
  peer: PeerState = 'unknown';
  peerRole: Heartbeat['role'] | null = null;
  private lastHeard: number;
  private lastSeq = -1n;
  /** seq → send time, for RTT from echoes (a few entries). */
  private readonly sent = new Map<bigint, number>();
  /** The last of our sequence numbers whose echo was timed. */
  private timedEcho = -1n;
  readonly decisions: Decision[] = [];
  readonly stats: DetectorStats = {
    received: 0,
    sent: 0,
    rejected: {
      'bad-length': 0,
      'bad-magic': 0,
      'bad-version': 0,
      'bad-mac': 0,
      'bad-role': 0,
      replay: 0,
      'wrong-peer-role': 0,
      'wrong-sender': 0,
      'wrong-receiver': 0,
      'stale-nonce': 0,
    },
    lastRttMs: null,
  };

  /** When the peer was last declared up (it came back, or was first heard): its rejoin grace runs from here. */
  private upSince: number | null = null;
  /** The peer's nonce as last heard (0n: none yet), echoed in our heartbeats. */
  peerNonce = 0n;

  constructor(
    readonly cfg: DetectorConfig,
    startedAt: number,
    /** The roles a genuine peer may announce (changed when this node changes role). */
    public peerRoles: ReadonlyArray<Heartbeat['role']>,
  ) {
    this.lastHeard = startedAt;
  }

  /** A datagram from the peer's address, decoded (or not). Returns a decision if the state changed. */
  onMessage(m: Heartbeat | HeartbeatError, now: number): Decision | null {
    if (typeof m === 'string') {
      this.stats.rejected[m]++;
      return null;
    }
    if (m.from !== this.cfg.peer) {
      this.stats.rejected['wrong-sender']++;
      return null;
    }
    if (m.to !== this.cfg.self) {
      this.stats.rejected['wrong-receiver']++;
      return null;
    }
    if (m.seq <= this.lastSeq) {
      this.stats.rejected.replay++;
      return null;
    }
    if (!this.peerRoles.includes(m.role)) {
      this.stats.rejected['wrong-peer-role']++;
      return null;
    }
    this.lastSeq = m.seq;
    this.peerNonce = m.nonce;
    if (m.echoNonce !== this.cfg.nonce) {
      // Authentic and new, but not (yet) an answer to this incarnation of us.
      this.stats.rejected['stale-nonce']++;
      return null;
    }
    this.stats.received++;
    this.lastHeard = now;
    this.peerRole = m.role;
    // Timed at its first echo only: the peer echoes what it heard last when
    // it plans its heartbeats, and sends that plan for a while.
    const t = m.echo !== this.timedEcho ? this.sent.get(m.echo) : undefined;
    if (t !== undefined) {
      this.timedEcho = m.echo;
      this.stats.lastRttMs = now - t;
    }
    if (this.peer !== 'up') {
      const back = this.peer === 'down';
      const d = this.decide('up', now, 0, back ? 'heartbeats resumed' : 'first heartbeat');
      // The rejoin grace: for a peer that comes back (a restarted process
      // warms up), and for one we just met that serves alone — it takes the
      // primary role the moment we appear (roles swapped), and its event loop
      // is busy doing so. A primary or secondary met as a pair forms is judged
      // normally at once: a failure in its first seconds costs one timeout.
      this.upSince = back || m.role === 'alone' ? now : null;
      return d;
    }
    return null;
  }

  /** A heartbeat of ours left (its thread sent it at `now`): kept a while, for the round-trip time of its echo. */
  markSent(seq: bigint, now: number): void {
    this.stats.sent++;
    this.sent.set(seq, now);
    if (this.sent.size > 16) this.sent.delete(this.sent.keys().next().value as bigint);
  }

  /** The last sequence number accepted from the peer (echoed in our heartbeats). */
  get echo(): bigint {
    return this.lastSeq < 0n ? 0n : this.lastSeq;
  }

  /**
   * The silence that means "down" now: longer for a peer never heard from
   * (startup grace), and three timeouts during the first REJOIN_GRACE_MS
   * after a peer came back, or was first heard serving alone — a process
   * that just (re)started stalls while it warms up, a node takes the primary
   * role as its secondary appears, and a flap would send every connection of
   * that moment to primary-only.
   */
  private limit(now: number): number {
    if (this.peer === 'unknown') return this.cfg.timeoutMs + this.cfg.startupGraceMs;
    if (this.upSince !== null && now - this.upSince < REJOIN_GRACE_MS) return GRACE_TIMEOUTS * this.cfg.timeoutMs;
    return this.cfg.timeoutMs;
  }

  /** Checks the timeout. Returns a decision if the peer just went down. */
  tick(now: number): Decision | null {
    if (this.peer === 'down') return null;
    const silent = now - this.lastHeard;
    const limit = this.limit(now);
    if (silent < limit) return null;
    return this.decide(
      'down',
      now,
      silent,
      this.peer === 'unknown' ? 'never heard from the peer' : `no valid heartbeat for ${silent} ms`,
    );
  }

  /** When tick() next needs to run: when the peer's silence would mean "down" (never while it is down already). */
  nextDeadline(): number {
    if (this.peer === 'down') return Infinity;
    return this.lastHeard + this.limit(this.lastHeard);
  }

  private decide(peer: PeerState, at: number, silentMs: number, reason: string): Decision {
    if (peer !== 'up') this.upSince = null; // onMessage sets it when the grace applies
    this.peer = peer;
    const d = { at, peer, silentMs, reason };
    this.decisions.push(d);
    if (this.decisions.length > 100) this.decisions.shift();
    return d;
  }
}
