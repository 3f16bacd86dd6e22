/**
 * Which part a node plays next, pure: the node shell (daemon.ts) runs one
 * bridge at a time — the primary's, the secondary's (which may have taken
 * over, or taken the primary role), or none in standby — and replaces it when
 * the node changes part. What decides the change is here; the role
 * machine (role-machine.ts) decides the steps within a part.
 *
 *   start ──in standby──▶ standby ◀──tcpfo standby── secondary
 *     │                     │ tcpfo unstandby           ▲
 *     │                     └───────────────────────────┤
 *     ├──primary──▶ primary ──switchover done──────────▶│ (or standby, if asked so)
 *     │               └─the service address answered by the secondary
 *     │                 (it took over while this node was down)──▶ secondary, roles swapped
 *     └──secondary──────────────────────────────────────┘
 */
import type { Command } from './control.js';

/** What runs on the node, as the operator's commands see it. */
export type RunningPart =
  /** Nothing yet: the first bridge is starting. */
  | 'starting'
  | 'primary'
  /** The secondary, replicating. */
  | 'secondary'
  /** A secondary that took over and serves alone. */
  | 'active'
  /** A secondary that took over, then the primary role (the other node rejoined as its secondary). */
  | 'promoted'
  | 'standby';

/** The part a node starts in. */
export function partAtStart(role: 'primary' | 'secondary', standby: boolean): 'primary' | 'secondary' | 'standby' {
  return standby ? 'standby' : role;
}

/**
 * The primary's start found the service address answered. By the
 * configured secondary — it took over while this node was down and serves
 * still — this node joins it as its secondary (roles swapped), unless
 * `failover.rejoin: refuse`; by anyone else, it refuses to start.
 */
export function onClaimAtStart(bySecondary: boolean, rejoin: 'swap-roles' | 'refuse'): 'join-as-secondary' | 'refuse' {
  return bySecondary && rejoin === 'swap-roles' ? 'join-as-secondary' : 'refuse';
}

/** What an operator's command does, given what runs. */
export type CommandPlan =
  | { do: 'refuse'; message: string }
  /** Out of standby: start as the pair's secondary. */
  | { do: 'rejoin' }
  /** Ask the running bridge for a planned switchover. */
  | { do: 'switchover' }
  /** Leave the pair at once (a secondary: the primary goes on alone, its connections intact). */
  | { do: 'leave' }
  /** Hand the service over first, then standby. */
  | { do: 'hand-over-then-standby' };

export function commandPlan(cmd: Command, running: RunningPart): CommandPlan {
  if (cmd === 'unstandby')
    return running === 'standby' ? { do: 'rejoin' } : { do: 'refuse', message: 'this node is not in standby' };
  if (running === 'standby') return { do: 'refuse', message: 'this node is in standby: tcpfo unstandby first' };
  if (running === 'starting') return { do: 'refuse', message: 'this node is still starting' };
  if (cmd === 'switchover') return { do: 'switchover' };
  if (running === 'secondary') return { do: 'leave' };
  if (running === 'active')
    return {
      do: 'refuse',
      message: 'this node serves alone: standby would leave no node serving (start the other node first)',
    };
  return { do: 'hand-over-then-standby' };
}
