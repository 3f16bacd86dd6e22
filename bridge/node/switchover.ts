/**
 * A planned switchover (`tcpfo switchover`): the secondary takes the service
 * address over on the primary's word, without waiting for a detector
 * timeout, and the primary joins it as its secondary. Pure: whether the pair
 * may switch now, and why not, from what the primary knows.
 *
 * Every connection the primary merges lives in both servers: the secondary's
 * TCP carries it on after the takeover, as after a failure, and nothing waits
 * for a timeout. A connection that lives in one server only (primary-only
 * since the secondary failed, adopted after roles swapped, or diverged)
 * would be lost with the primary's copy: while there is one, the switchover
 * is refused, with the count.
 */

/** What the primary knows when asked to hand over. */
export interface SwitchState {
  /** The detector's view of the secondary. */
  peer: 'up' | 'down' | 'unknown';
  /** The role the secondary's heartbeats carry. */
  peerRole: string | null;
  /** The primary runs alone (the secondary failed and has not rejoined). */
  alone: boolean;
  /** Connections only this node's server carries: primary-only (degraded) and adopted. */
  unreplicated: number;
  /** Connections whose two copies diverged. */
  diverged: number;
  /** The peer's configuration differs where it must agree (null: not heard yet). */
  configMismatch: boolean | null;
  /** The peer's tcpfo version, from its configuration notice (null: not heard yet). */
  peerVersion: string | null;
  /** A switchover is already in progress. */
  inProgress: boolean;
  /** The node is stopping. */
  stopping: boolean;
}

/** The first version that knows the switchover messages. */
export const SWITCHOVER_SINCE = '0.4.0';

/** Compares dotted versions numerically (missing parts are 0; a pre-release suffix is ignored). */
export function versionAtLeast(v: string, min: string): boolean {
  const parts = (x: string) =>
    x
      .split('-')[0]!
      .split('.')
      .map((n) => Number.parseInt(n, 10) || 0);
  const a = parts(v);
  const b = parts(min);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d) return d > 0;
  }
  return true;
}

/** Why the pair may not switch now, in words for the operator; null: it may. */
export function switchRefusal(s: SwitchState): string | null {
  if (s.stopping) return 'this node is stopping';
  if (s.inProgress) return 'a switchover is already in progress';
  if (s.alone || s.peer !== 'up') return 'the secondary is down: no node to hand the service to';
  if (s.peerRole !== 'secondary') return `the peer calls itself ${s.peerRole ?? 'nothing yet'}, not secondary`;
  if (s.configMismatch === null || s.peerVersion === null)
    return 'the secondary’s configuration has not been heard yet: try again in a second';
  if (s.configMismatch) return 'the secondary’s configuration differs from this node’s (see tcpfo status)';
  if (!versionAtLeast(s.peerVersion, SWITCHOVER_SINCE))
    return `the secondary runs tcpfo ${s.peerVersion}, which cannot take a planned switchover (${SWITCHOVER_SINCE} on): upgrade it first`;
  if (s.diverged > 0)
    return `${s.diverged} connection(s) diverged between the servers: they would be reset; wait until they end`;
  if (s.unreplicated > 0)
    return `${s.unreplicated} connection(s) live only in this node’s server (begun while it served alone, or adopted when roles swapped): the secondary could not carry them; wait until they end`;
  return null;
}
