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
 */
export type Silence = { kind: 'handshake-alone'; waitedMs: number } | { kind: 'degrade'; silentMs: number } | null;

export function silence(cfg: MergerConfig, c: Conn, now: number, alone: boolean): Silence {
  const limit = cfg.secondarySilenceMs;
  if (c.phase === 'handshake') {
    if (alone || !c.heldSyn || c.synS || c.heldSynAt === null || now - c.heldSynAt < limit) return null;
    return { kind: 'handshake-alone', waitedMs: now - c.heldSynAt };
  }
  if (!c.waitsForS()) {
    c.waitingSince = null;
    return null;
  }
  c.waitingSince ??= now;
  const silent = now - Math.max(c.waitingSince, c.sProgressAt);
  return silent < limit ? null : { kind: 'degrade', silentMs: silent };
}
