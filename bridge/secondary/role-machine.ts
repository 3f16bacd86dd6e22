/**
 * The secondary's role, pure (in the style of bridge/detector/detector.ts): the
 * detector's decisions, ARP answers seen for the service address, timers
 * and the outcome of long steps go in, with the time; actions come out,
 * which the bridge (secondary/daemon.ts) executes. No sockets, no clock.
 *
 *   secondary ──peer down──▶ probe the VIP (ARP, RFC 5227)
 *        ▲                     │ answered: a live primary (partitioned
 *        │                     │ heartbeats, or starved): back off, probe
 *        │                     │ again while it stays silent
 *        │                     │ unanswered: take over (§5)
 *        │                     ▼
 *        │                  active ──peer up, calling itself secondary──▶ promoting
 *        │                     ▲  (the other node rejoined as our          │
 *        │                     │   secondary: roles swapped)               │
 *        │                     └──────── failed (retried after a pause) ───┤
 *        │                                                                  ▼
 *        └───────────────────────────────────────────────────────────── primary
 *                                                   (the PrimaryBridge runs it)
 *
 *   secondary ──handed over (a planned switchover: the primary stopped
 *               answering for the VIP and says so)──▶ one probe ──unanswered──▶ active
 *                                                        └──answered──▶ refuse, stay secondary
 *
 * Orders of events the soaks found, each a unit test: the primary coming back
 * while a probe waits; a partition of the heartbeat path only; the other node
 * rejoining (as secondary) while a promotion is still in flight, and twice;
 * a stop during a probe; both nodes started as secondary.
 */

/** The machine's steps: the node roles `secondary`, `active` and `primary` (node/roles.ts), and `promoting` between the last two. */
export type RoleState = 'secondary' | 'active' | 'promoting' | 'primary';

export interface RoleMachineConfig {
  /** How long a probe waits for an ARP answer, ms. */
  probeWaitMs: number;
  /** After an answer, the next probe (while the primary stays silent), ms. */
  reprobeMs: number;
  /** After a failed promotion, the next attempt at the earliest, ms. */
  promoteRetryMs: number;
  /** The "VIP still answers" warning at most this often, ms. */
  claimLogEveryMs: number;
}

export const DEFAULT_ROLE_MACHINE: RoleMachineConfig = {
  probeWaitMs: 50,
  reprobeMs: 200,
  promoteRetryMs: 10_000,
  claimLogEveryMs: 5000,
};

export type RoleAction =
  /** Send an ARP probe for the VIP, then call `timer()` after `waitMs`. */
  | { do: 'probe'; waitMs: number }
  /** The VIP answered: call `timer()` after `waitMs` (the next probe). `log`: warn that the primary is silent but alive. */
  | { do: 'wait'; waitMs: number; log: boolean }
  /** Take over the service (§5): the machine is `active` from here. */
  | { do: 'take-over' }
  /** A planned switchover's probe found the VIP still answered: refuse it (the primary answers again). */
  | { do: 'refuse-handover' }
  /** Take the primary role (roles swapped); call `promoted(ok)` when done. */
  | { do: 'promote' }
  /** Both nodes call themselves secondary: an operator's mistake, logged. */
  | { do: 'log-both-secondary' };

export class RoleMachine {
  state: RoleState = 'secondary';
  /** The bridge is stopping: nothing more is started. */
  private stopped = false;
  /** Whether the detector says the primary is down. */
  private peerDown = false;
  /** A probe in flight: when it was sent; null when none. */
  private probeSentAt: number | null = null;
  /** Whether the timer pending is a probe's wait (else a back-off before the next probe). */
  private probeWaiting = false;
  private vipClaimedAt = -Infinity;
  private claimLoggedAt = -Infinity;
  private promoteFailedAt = -Infinity;
  /** The probe in flight is a planned switchover's (the primary handed over; it is not down). */
  private handover = false;
  /** When the takeover under way was decided: the detector's decision, or the handover (the takeover's clock starts here). */
  decidedAt = 0;

  constructor(private readonly cfg: RoleMachineConfig = DEFAULT_ROLE_MACHINE) {}

  /** Whether a probe or its back-off is in progress. */
  get probing(): boolean {
    return this.probeSentAt !== null;
  }

  /**
   * The detector decided: the peer is up or down; `peerRole` is the role its heartbeats carry;
   * `at`: when the detector decided (`now` unless earlier).
   */
  decision(peer: 'up' | 'down' | 'unknown', peerRole: string | null, now: number, at = now): RoleAction[] {
    this.peerDown = peer === 'down';
    if (this.stopped) return [];
    if (peer === 'up' && peerRole === 'secondary') {
      if (this.state === 'active') {
        if (now - this.promoteFailedAt < this.cfg.promoteRetryMs) return [];
        this.state = 'promoting';
        return [{ do: 'promote' }];
      }
      return this.state === 'secondary' ? [{ do: 'log-both-secondary' }] : [];
    }
    if (this.peerDown && this.state === 'secondary' && !this.probing) {
      this.decidedAt = at;
      return this.probe(now);
    }
    return [];
  }

  /**
   * Someone else answered ARP for the VIP (noted only while we are the
   * secondary). A claim in the same millisecond as a probe counts as its
   * answer, whichever came first: the safe side (no takeover).
   */
  vipClaimed(now: number): void {
    if (this.state === 'secondary') this.vipClaimedAt = now;
  }

  /** The timer a 'probe' or 'wait' action asked for has fired. */
  timer(now: number): RoleAction[] {
    if (this.probeSentAt === null) return [];
    if (this.state !== 'secondary' || !(this.peerDown || this.handover) || this.stopped) {
      // The primary came back (or we stopped): no takeover.
      this.probeSentAt = null;
      this.handover = false;
      return [];
    }
    if (!this.probeWaiting) return this.probe(now);
    if (this.vipClaimedAt >= this.probeSentAt && this.handover) {
      // Handed over, yet someone answers for the VIP: not now.
      this.probeSentAt = null;
      this.probeWaiting = false;
      this.handover = false;
      return [{ do: 'refuse-handover' }];
    }
    if (this.vipClaimedAt >= this.probeSentAt) {
      // Alive but silent: a partitioned heartbeat path, or a starved primary
      // (its ARP answers come from a thread of their own). A primary whose
      // event loop is stuck ends itself: then the next probe finds the VIP free.
      this.probeWaiting = false;
      const log = now - this.claimLoggedAt >= this.cfg.claimLogEveryMs;
      if (log) this.claimLoggedAt = now;
      return [{ do: 'wait', waitMs: this.cfg.reprobeMs, log }];
    }
    this.probeSentAt = null;
    this.state = 'active';
    return [{ do: 'take-over' }];
  }

  /**
   * The primary handed the service over (a planned switchover, switchover.ts):
   * take it over now. Only from the secondary state: a node already serving,
   * or stopping, refuses (the caller says why).
   */
  handedOver(now: number): RoleAction[] {
    if (this.stopped || this.state !== 'secondary') return [];
    // The split-brain guard still holds: one probe, and the VIP must be
    // silent. The primary stopped answering before it handed over; the
    // merge goes on meanwhile, so the probe costs the clients nothing.
    this.handover = true;
    this.decidedAt = now;
    return this.probe(now);
  }

  /** A promotion ended: the primary role taken, or not (serving alone again, retried later). */
  promoted(ok: boolean, now: number): void {
    if (this.state !== 'promoting') return;
    if (ok) this.state = 'primary';
    else {
      this.state = 'active';
      this.promoteFailedAt = now;
    }
  }

  /** The bridge stops: nothing more is started (the state stays, for the shell's teardown). */
  stop(): void {
    this.stopped = true;
  }

  private probe(now: number): RoleAction[] {
    this.probeSentAt = now;
    this.probeWaiting = true;
    return [{ do: 'probe', waitMs: this.cfg.probeWaitMs }];
  }
}
