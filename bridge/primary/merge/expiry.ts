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
 */
export type Silence = { kind: 'handshake-alone'; waitedMs: number } | { kind: 'degrade'; silentMs: number } | null;

export function silence(cfg: MergerConfig, c: Conn, now: number, alone: boolean, sUnseenAt = -Infinity): Silence {
  const limit = cfg.secondarySilenceMs;
  if (c.phase === 'handshake') {
    if (alone || !c.heldSyn || c.synS || c.heldSynAt === null || now - Math.max(c.heldSynAt, sUnseenAt) < limit) return null;
    return { kind: 'handshake-alone', waitedMs: now - c.heldSynAt };
  }
  if (!c.waitsForS()) {
    c.waitingSince = null;
    return null;
  }
  c.waitingSince ??= now;
  // Silence counts from the last time the bridge could have missed S's segments: its
  // own queue lost some (full under a burst), and S's TCP sends them again.
  const silent = now - Math.max(c.waitingSince, c.sProgressAt, sUnseenAt);
  return silent < limit ? null : { kind: 'degrade', silentMs: silent };
}
