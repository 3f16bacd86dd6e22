/**
 * Connections this node served alone before it became the merging primary
 * (the secondary took over, then the other node rejoined as secondary):
 * their numbers are the client's already, so P's segments pass unchanged.
 */
import type { IpAddr } from '../../../net/addr.js';
import { connKey } from './conn.js';
import type { ConnId } from './types.js';

interface Adopted {
  /** When a segment of it last passed (idle expiry). */
  seen: number;
  /**
   * The secondary's TCP has a socket for it too: its handshake straddled our
   * start (the SYN reached both, P's TCP answered before our rules). That copy
   * is in another sequence space and must never be continued: reported with
   * the diverged connections, so the secondary resets it if it takes over.
   */
  secondaryCopy: boolean;
}

export class AdoptedTable {
  /** client → (client port, service port) → the connection */
  private readonly byClient = new Map<IpAddr, Map<number, Adopted>>();

  /** How many connections are adopted. */
  get size(): number {
    let n = 0;
    for (const m of this.byClient.values()) n += m.size;
    return n;
  }

  /** Adopts `k`; false if it was adopted already (its clock refreshed). */
  add(k: ConnId, now: number): boolean {
    let m = this.byClient.get(k.client);
    if (!m) this.byClient.set(k.client, (m = new Map()));
    const key = connKey(k.clientPort, k.servicePort);
    const a = m.get(key);
    if (a) {
      a.seen = now;
      return false;
    }
    m.set(key, { seen: now, secondaryCopy: false });
    return true;
  }

  /**
   * Whether (client, ports) is adopted; if so, notes that S's TCP has a copy
   * of it, and returns 'first' the first time (for the log).
   */
  copiedByS(client: IpAddr, clientPort: number, servicePort: number): false | 'first' | 'again' {
    const a = this.byClient.get(client)?.get(connKey(clientPort, servicePort));
    if (!a) return false;
    if (a.secondaryCopy) return 'again';
    a.secondaryCopy = true;
    return 'first';
  }

  /** Whether (client, ports) is adopted; refreshes its idle clock, or forgets it at its `end`. */
  seen(client: IpAddr, clientPort: number, servicePort: number, now: number, end: boolean): boolean {
    const m = this.byClient.get(client);
    const key = connKey(clientPort, servicePort);
    const a = m?.get(key);
    if (!a) return false;
    if (end) {
      m!.delete(key);
      if (m!.size === 0) this.byClient.delete(client);
    } else a.seen = now;
    return true;
  }

  /** Forgets connections not in `live` (this node's server has no socket for them any more); how many. */
  retain(live: readonly ConnId[]): number {
    const keep = new Set(live.map((k) => `${k.client}:${connKey(k.clientPort, k.servicePort)}`));
    let gone = 0;
    for (const [client, m] of this.byClient) {
      for (const key of m.keys()) {
        if (keep.has(`${client}:${key}`)) continue;
        m.delete(key);
        gone++;
      }
      if (m.size === 0) this.byClient.delete(client);
    }
    return gone;
  }

  /** Forgets connections idle longer than `idleMs`. */
  expire(now: number, idleMs: number): void {
    for (const [client, m] of this.byClient) {
      for (const [key, a] of m) if (now - a.seen > idleMs) m.delete(key);
      if (m.size === 0) this.byClient.delete(client);
    }
  }

  /** Adopted connections of which S's TCP has a copy of its own. */
  copiedBySecondary(): ConnId[] {
    const out: ConnId[] = [];
    for (const [client, m] of this.byClient) {
      for (const [key, a] of m)
        if (a.secondaryCopy) out.push({ client, clientPort: Math.floor(key / 65536), servicePort: key % 65536 });
    }
    return out;
  }
}
