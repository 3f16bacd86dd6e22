/**
 * A node's role, pure (in the style of bridge/detector/detector.ts): the
 * detector's decisions, ARP answers seen for the service address, timers,
 * the peer's switchover messages and the outcome of long steps go in, with
 * the time; actions come out, which the bridge of the role (primary/daemon.ts,
 * secondary/daemon.ts) executes. No sockets, no clock. One machine per
 * bridge: a secondary that takes the primary role hands on to the primary
 * bridge's, which starts at `primary`.
 *
 * The secondary's half:
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
 *                                                   (the primary bridge runs it)
 *
 *   secondary ──handed over (a planned switchover: the primary stopped
 *               answering for the VIP and says so)──▶ one probe ──unanswered──▶ active
 *                                                        └──answered──▶ refuse, stay secondary
 *
 * The primary's half:
 *
 *   claiming ──left state or connections?──▶ silent while the secondary may
 *      │      (a predecessor died less than    still be deciding to take over
 *      │       a detector timeout ago)              │
 *      ▼                                            ▼
 *   three ARP probes for the VIP (RFC 5227) ◀───────┘
 *      │ unanswered                 │ answered by another station
 *      ▼                            ▼
 *   primary (the VIP claimed)    refuse to start (split brain); the daemon
 *                                makes the node a secondary if it was ours
 *
 *   primary ──peer down──▶ its segments still arrive? ──yes──▶ excused: look again
 *      ▲  ▲                      │ no                          each heartbeat interval
 *      │  │                      ▼
 *      │  │                 going-alone ──steps done──▶ alone
 *      │  │                 (every connection turns      │
 *      │  │                  primary-only, step by step) │
 *      │  └──────── peer up (at once, or once the steps end) ┘
 *      │
 *      └── refused, timed out, peer down ── handing ──peer took it──▶ handed-over
 *          (serves on)                  (a planned switchover:       (the node becomes
 *                                        the VIP not answered)        its secondary)
 *
 * Orders of events the soaks found, each a unit test: the primary coming back
 * while a probe waits; a partition of the heartbeat path only; the other node
 * rejoining (as secondary) while a promotion is still in flight, and twice;
 * a stop during a probe; both nodes started as secondary; the secondary
 * rejoining while the primary's connections still turn primary-only; the
 * secondary dying during a switchover; heartbeats lost while its segments
 * still arrive.
 */
import type { NodeRole } from './roles.js';

/**
 * The machine's steps. The node roles (node/roles.ts) and the steps between
 * them: `claiming` (probing the VIP) before `primary`; `promoting` between `active` and `primary`; `going-alone` before
 * `alone`; `handing` (a switchover asked, the VIP not answered) before
 * `handed-over`, or back to `primary`.
 */
export const ROLE_STATES = [
  'claiming',
  'secondary',
  'active',
  'promoting',
  'primary',
  'going-alone',
  'alone',
  'handing',
  'handed-over',
] as const;
export type RoleState = (typeof ROLE_STATES)[number];

/** The steps that are not node roles themselves: what `tcpfo status` says of each, after the role. */
export const STEP_WORDS: Record<Exclude<RoleState, NodeRole>, string> = {
  claiming: 'probing the service address before serving it',
  promoting: 'taking the primary role',
  'going-alone': 'connections turning primary-only',
  handing: 'handing the service over',
  'handed-over': 'handed over: becoming the secondary',
};

/** The step, for a status: absent where it is the role itself. */
export function stepOf(s: RoleState): Exclude<RoleState, NodeRole> | undefined {
  return s in STEP_WORDS ? (s as Exclude<RoleState, NodeRole>) : undefined;
}

/** The node role (node/roles.ts) a step belongs to. */
export function nodeRoleOf(s: RoleState): NodeRole {
  if (s === 'secondary') return 'secondary';
  if (s === 'active' || s === 'promoting') return 'active';
  if (s === 'going-alone' || s === 'alone') return 'alone';
  return 'primary'; // claiming too: the node starts as the primary
}

export interface RoleMachineConfig {
  /** How long a probe waits for an ARP answer, ms. */
  probeWaitMs: number;
  /** The primary's start: how many probes, and how long each waits for an answer, ms. */
  claimProbes: number;
  claimWaitMs: number;
  /** After an answer, the next probe (while the primary stays silent), ms. */
  reprobeMs: number;
  /** After a failed promotion, the next attempt at the earliest, ms. */
  promoteRetryMs: number;
  /** The "VIP still answers" warning at most this often, ms. */
  claimLogEveryMs: number;
}

export const DEFAULT_ROLE_MACHINE: RoleMachineConfig = {
  probeWaitMs: 50,
  claimProbes: 3,
  claimWaitMs: 60,
  reprobeMs: 200,
  promoteRetryMs: 10_000,
  claimLogEveryMs: 5000,
};

export type RoleAction =
  /** The primary's start: stay silent (no heartbeats, no ARP), then call `timer()` after `waitMs`. */
  | { do: 'stay-silent'; waitMs: number }
  /** The primary's start: nobody else answers for the VIP; serve it. The machine is `primary` from here. */
  | { do: 'claim' }
  /** The primary's start: `claimer` (a MAC) answers for the VIP; refuse to start. */
  | { do: 'refuse'; claimer: string }
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
  | { do: 'log-both-secondary' }
  /** The secondary fell silent (heard last at `lastHeard`): call `silence()` with whether its segments still arrive. */
  | { do: 'check-silence'; lastHeard: number }
  /** Its segments still arrive: not failed; `log`: the first time (say so). Call `silence()` again after a heartbeat interval. */
  | { do: 'excuse'; lastHeard: number; log: boolean }
  /** Its heartbeats are heard again after an excused silence (which began at `since`): stop looking again. */
  | { do: 'heard-again'; since: number }
  /** The secondary failed (§6): every connection turns primary-only; call `aloneDone()` when all have. */
  | { do: 'go-alone' }
  /** The secondary came back while the connections still turn primary-only: it rejoins once they have (said once). */
  | { do: 'log-rejoin-waits' }
  /** The secondary rejoined: new connections are replicated again. */
  | { do: 'rejoin' }
  /** A switchover that did not happen: answer for the VIP again, and say `why`. */
  | { do: 'resume-service'; why: string }
  /** The other node took the service over: this node becomes its secondary. */
  | { do: 'handed-over'; how: string };

export class RoleMachine {
  state: RoleState;
  /** The bridge is stopping: nothing more is started. */
  private stopped = false;
  /** Whether the detector says the peer (the primary, or for the primary its secondary) is down. */
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

  /** The primary: the secondary's silence is excused while its segments still arrive (since when; null: not excused). */
  private excusedSince: number | null = null;
  /** The primary: the secondary came back while the connections still turn primary-only. */
  private rejoinWaits = false;
  /** A secondary's machine whose node took the primary role: the primary bridge's own machine runs it. */
  private handedOn = false;
  /** The primary's start: silent still; probes sent; who answered one (a MAC). */
  private claimSilent = false;
  private claimProbesSent = 0;
  private claimer: string | null = null;
  /** The primary's start refused (someone else answers): nothing more comes of this machine's start. */
  private claimRefused = false;

  constructor(
    private readonly cfg: RoleMachineConfig = DEFAULT_ROLE_MACHINE,
    start: 'secondary' | 'primary' | 'claiming' = 'secondary',
  ) {
    this.state = start;
  }

  /** The node role this step belongs to. */
  get role(): NodeRole {
    return nodeRoleOf(this.state);
  }

  /** The primary half: the secondary failed and has not rejoined (its connections may still be turning). */
  get alone(): boolean {
    return this.state === 'going-alone' || this.state === 'alone';
  }

  /** A planned switchover is under way, or done (this bridge only waits to be stopped). */
  get switching(): boolean {
    return this.state === 'handing' || this.state === 'handed-over';
  }

  /** The secondary's silence is excused (its segments still arrive). */
  get excused(): boolean {
    return this.excusedSince !== null;
  }

  /** Whether a probe or its back-off is in progress. */
  get probing(): boolean {
    return this.probeSentAt !== null;
  }

  /**
   * The detector decided: the peer is up or down; `peerRole` is the role its heartbeats carry;
   * `at`: when the detector decided (`now` unless earlier); `lastHeard`: when the peer was
   * heard last (the primary's silence check starts from it).
   */
  decision(
    peer: 'up' | 'down' | 'unknown',
    peerRole: string | null,
    now: number,
    at = now,
    lastHeard = at,
  ): RoleAction[] {
    this.peerDown = peer === 'down';
    // A secondary's machine that took the primary role: the primary bridge's machine decides from here.
    if (this.handedOn) return [];
    if (this.isPrimaryHalf()) return this.primaryDecision(peer, lastHeard);
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
   * Someone else (`by`, a MAC) answered ARP for the VIP: noted while we are
   * the secondary, or while a starting primary probes. A claim in the same
   * millisecond as a probe counts as its answer, whichever came first: the
   * safe side (no takeover).
   */
  vipClaimed(now: number, by = 'another station'): void {
    if (this.state === 'secondary') this.vipClaimedAt = now;
    if (this.state === 'claiming' && !this.claimSilent && !this.stopped) this.claimer ??= by;
  }

  /**
   * The primary's start (a machine made `claiming`): `leftovers` — a
   * predecessor left state or connections here, killed or stopped less than
   * a detector timeout ago, and the secondary may still be deciding to take
   * over; it would not, once our heartbeats start, and its connections
   * would hang. So stay silent first for `silentMs`, as long as the
   * secondary may take to decide and take over; the probes then find it
   * serving. A promoted secondary (roles swapped) has no predecessor to
   * wait out.
   */
  startClaim(leftovers: boolean, silentMs: number, now: number): RoleAction[] {
    if (this.state !== 'claiming' || this.stopped || this.claimRefused) return [];
    this.claimProbesSent = 0;
    this.claimer = null;
    if (leftovers) {
      this.claimSilent = true;
      return [{ do: 'stay-silent', waitMs: silentMs }];
    }
    return this.claimProbe(now);
  }

  private claimProbe(now: number): RoleAction[] {
    this.claimProbesSent++;
    this.probeSentAt = now;
    return [{ do: 'probe', waitMs: this.cfg.claimWaitMs }];
  }

  /** The primary's start: the silence ended, or a probe's wait did. */
  private claimTimer(now: number): RoleAction[] {
    if (this.stopped || this.claimRefused) return [];
    if (this.claimSilent) {
      this.claimSilent = false;
      return this.claimProbe(now);
    }
    if (this.claimer !== null) {
      this.probeSentAt = null;
      this.claimRefused = true;
      return [{ do: 'refuse', claimer: this.claimer }];
    }
    if (this.claimProbesSent < this.cfg.claimProbes) return this.claimProbe(now);
    this.probeSentAt = null;
    this.state = 'primary';
    return [{ do: 'claim' }];
  }

  /** The timer a 'probe', 'wait' or 'stay-silent' action asked for has fired. */
  timer(now: number): RoleAction[] {
    if (this.state === 'claiming') return this.claimTimer(now);
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
    if (ok) {
      this.state = 'primary';
      this.handedOn = true;
    } else {
      this.state = 'active';
      this.promoteFailedAt = now;
    }
  }

  /**
   * The bridge stops: nothing more is started (the state stays, for the
   * shell's teardown). A switchover in flight ends, the service resumed.
   */
  stop(): RoleAction[] {
    this.stopped = true;
    if (this.state !== 'handing') return [];
    this.state = 'primary';
    return [{ do: 'resume-service', why: 'this node is stopping' }];
  }

  // --- the primary's half ------------------------------------------------------

  private isPrimaryHalf(): boolean {
    return this.state !== 'secondary' && this.state !== 'active' && this.state !== 'promoting';
  }

  private primaryDecision(peer: 'up' | 'down' | 'unknown', lastHeard: number): RoleAction[] {
    // Handed over: the other node serves; nothing here is ours to continue.
    if (this.state === 'handed-over') return [];
    const out: RoleAction[] = [];
    if (peer === 'down') {
      if (this.state === 'handing') {
        this.state = 'primary';
        out.push({ do: 'resume-service', why: 'the secondary went down during the switchover' });
      }
      this.rejoinWaits = false;
      if (this.state === 'primary' && !this.stopped) out.push({ do: 'check-silence', lastHeard });
    } else if (peer === 'up') {
      if (this.excusedSince !== null) out.push({ do: 'heard-again', since: this.excusedSince });
      this.excusedSince = null;
      out.push(...this.rejoined());
    }
    return out;
  }

  /**
   * What a 'check-silence' or 'excuse' action asked: whether the secondary's
   * segments still arrive (detector/activity.ts). They do: its heartbeats
   * were lost on the way, and the merge goes on with its copies. They do
   * not: it failed.
   */
  silence(lastHeard: number, stillSends: boolean, now: number): RoleAction[] {
    if (this.state !== 'primary' || this.stopped || !this.peerDown) return [];
    if (stillSends) {
      const first = this.excusedSince === null;
      if (first) this.excusedSince = now;
      return [{ do: 'excuse', lastHeard, log: first }];
    }
    this.excusedSince = null;
    this.state = 'going-alone';
    return [{ do: 'go-alone' }];
  }

  /**
   * The secondary was found down as this bridge started (the heartbeat link
   * a promoted secondary handed on had decided so already): it failed.
   */
  peerGone(): RoleAction[] {
    this.peerDown = true;
    this.rejoinWaits = false;
    if (this.state !== 'primary' || this.stopped) return [];
    this.excusedSince = null;
    this.state = 'going-alone';
    return [{ do: 'go-alone' }];
  }

  /** Every connection turned primary-only: alone, or — the secondary came back meanwhile — it rejoins now. */
  aloneDone(): RoleAction[] {
    if (this.state !== 'going-alone') return [];
    this.state = 'alone';
    return this.rejoinWaits && !this.stopped ? this.rejoined() : [];
  }

  /** The secondary's heartbeats are heard (again). */
  private rejoined(): RoleAction[] {
    if (this.stopped) return [];
    if (this.state === 'going-alone') {
      // Finishing the steps at once would hold the event loop for the whole
      // table: the steps go on, and the rejoin follows the last.
      const log = !this.rejoinWaits;
      this.rejoinWaits = true;
      return log ? [{ do: 'log-rejoin-waits' }] : [];
    }
    if (this.state !== 'alone') return [];
    this.rejoinWaits = false;
    this.state = 'primary';
    return [{ do: 'rejoin' }];
  }

  /**
   * A planned switchover passed its checks (node/switchover.ts): the VIP is
   * no longer answered, and the secondary is told to take it. Only from
   * `primary`; false otherwise (switchRefusal says why).
   */
  beginHandover(): boolean {
    if (this.state !== 'primary' || this.stopped) return false;
    this.state = 'handing';
    return true;
  }

  /**
   * The switchover's wait ended with no word of the secondary's: it took over
   * if its heartbeats say it serves (`peerRole` alone), else the service
   * resumes here.
   */
  handoverTimedOut(peerRole: string | null, waitMs: number): RoleAction[] {
    if (this.state !== 'handing') return [];
    if (peerRole === 'alone') return this.peerTook('its heartbeats say it serves');
    this.state = 'primary';
    return [{ do: 'resume-service', why: `the secondary did not take over within ${waitMs} ms` }];
  }

  /** The secondary refused the handover. */
  handoverRefused(reason: string): RoleAction[] {
    if (this.state !== 'handing') return [];
    this.state = 'primary';
    return [{ do: 'resume-service', why: `the secondary refused: ${reason}` }];
  }

  /**
   * The secondary serves the VIP now (it said so, or its heartbeats do):
   * also after this node's wait ended and it answered again — two nodes must
   * not both serve, and the other one took the connections on.
   */
  peerTook(how: string): RoleAction[] {
    if (!this.isPrimaryHalf() || this.state === 'handed-over') return [];
    this.state = 'handed-over';
    return [{ do: 'handed-over', how }];
  }

  private probe(now: number): RoleAction[] {
    this.probeSentAt = now;
    this.probeWaiting = true;
    return [{ do: 'probe', waitMs: this.cfg.probeWaitMs }];
  }
}
