/**
 * Time: when a connection is forgotten (half-open too long, closed and
 * lingered, idle) and when a live secondary that makes no progress on a
 * connection waiting for it has lost it. Decisions only; the merger acts.
 */
import type { Conn } from './conn.js';
import type { MergerConfig } from './types.js';

/** Whether `c` is to be forgotten now: half-open too long, closed and lingered, or idle. */
export function expired(cfg: MergerConfig, c: Conn, now: number): boolean {
  return (
    ((c.phase === 'handshake' || !c.established) && now - c.createdAt > cfg.handshakeTimeoutMs) ||
    (c.closedAt !== null && now - Math.max(c.closedAt, c.lastSeen) > cfg.lingerMs) ||
    now - c.lastSeen > cfg.idleTimeoutMs
  );
}

/**
 * What to do about a secondary silent on `c`:
 *  - 'handshake-alone': S never answered the SYN P's SYN-ACK waits for
 *    (a stale socket on the same ports?): merge the handshake without it;
 *  - 'degrade': S made no progress for secondarySilenceMs on a connection
 *    that waits for it (its socket vanished): primary-only.
 * Either way the connection counts as diverged: the secondary resets it if
 * it takes over, since it cannot continue it. Null: nothing to do (the
 * waiting clock on `c` is started or cleared as a side effect).
 * `sUnseenAt`: when the bridge last lost segments of S's before the merger
 * saw them (its input queue overrun): no silence is judged across that.
 * `seenUntil`: the merger has seen every segment S sent before this time.
 */
export type Silence = { kind: 'handshake-alone'; waitedMs: number } | { kind: 'degrade'; silentMs: number } | null;

export function silence(
  cfg: MergerConfig,
  c: Conn,
  now: number,
  alone: boolean,
  sUnseenAt = -Infinity,
  seenUntil = Infinity,
): Silence {
  const limit = cfg.secondarySilenceMs;
  // Silence is judged up to the moment before which the merger has seen every
  // segment S sent (the bridge's queue may hold a backlog), and from the last
  // time the bridge lost some of S's segments (its queue full under a burst:
  // S's TCP sends them again).
  const upTo = Math.min(now, seenUntil);
  if (c.phase === 'handshake') {
    if (alone || !c.heldSyn || c.synS || c.heldSynAt === null || upTo - Math.max(c.heldSynAt, sUnseenAt) < limit)
      return null;
    return { kind: 'handshake-alone', waitedMs: now - c.heldSynAt };
  }
  // Merged in the kernel, the record's ACKs and held segments stand still (those of when it
  // went there, a return from the bridge's included): the kernel's own bound on waiting
  // (MERGE_MAX_WAIT_MS) and the detector judge it there.
  if (c.inKernel || !c.waitsForS()) {
    c.waitingSince = null;
    return null;
  }
  c.waitingSince ??= now;
  const silent = upTo - Math.max(c.waitingSince, c.sProgressAt, sUnseenAt);
  return silent < limit ? null : { kind: 'degrade', silentMs: silent };
}
