/**
 * The node's own TCP connections on the service address, from the kernel
 * (`ss`): what an active secondary adopts, untranslated, when it becomes the
 * merging primary for new connections (roles swapped after a failure).
 */
import { ipv4, ipv4ToString } from '../wire/addr.js';
import { run } from './run.js';
import type { PortMatcher, PortSet } from '../ports.js';

export interface SocketKey {
  client: number;
  clientPort: number;
  servicePort: number;
}

/** Parses `ss -Htn` lines: "STATE RECVQ SENDQ LOCAL:PORT PEER:PORT". */
export function parseSs(text: string, vip: string, ports: PortMatcher): SocketKey[] {
  const out: SocketKey[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    const [local, peer] = [f[3]!, f[4]!];
    const li = local.lastIndexOf(':');
    const pi = peer.lastIndexOf(':');
    if (li < 0 || pi < 0 || local.slice(0, li) !== vip) continue;
    const servicePort = Number(local.slice(li + 1));
    const clientPort = Number(peer.slice(pi + 1));
    if (!ports.has(servicePort) || !(clientPort > 0)) continue;
    try {
      out.push({ client: ipv4(peer.slice(0, pi)), clientPort, servicePort });
    } catch {
      // not an IPv4 peer
    }
  }
  return out;
}

/**
 * `ss` over this namespace's connections on `vip` (not TIME-WAIT: nothing to
 * carry on or abort there), with `extra` arguments; its output lines.
 */
async function ssConnections(vip: string, extra: { before?: string[]; after?: string[]; pastHandshake?: boolean } = {}, timeoutMs = 5000): Promise<string> {
  const args = [...(extra.before ?? []), '-Htn', 'state', 'connected', 'exclude', 'time-wait', ...(extra.pastHandshake ? ['exclude', 'syn-recv'] : []), 'src', vip, ...(extra.after ?? [])];
  return run('ss', args, { timeoutMs, maxBuffer: 64 << 20 });
}

/**
 * Every connection of this network namespace on `vip` and a failover port;
 * `pastHandshake`: not those still in SYN-RECV (a segment that prompts one
 * draws a RST, which could land in the client's window).
 */
export async function existingConnections(vip: string, ports: PortMatcher, pastHandshake = false): Promise<SocketKey[]> {
  return parseSs(await ssConnections(vip, { pastHandshake }), vip, ports);
}

/** The `ss` filter expression for source ports in `ports` (single ports and ranges). */
export function ssPortFilter(ports: PortSet): string {
  const terms = ports.map((p) => (typeof p === 'number' ? `sport = :${p}` : `( sport >= :${p[0]} and sport <= :${p[1]} )`));
  return `( ${terms.join(' or ')} )`;
}

/**
 * Aborts (SOCK_DESTROY, `ss -K`) every connection of this namespace on `vip`
 * and a failover port — sockets a previous incarnation left (its server was
 * killed: FIN-WAIT orphans still retransmitting; or its connections can no
 * longer be replicated). Their RSTs must not reach clients: the caller has
 * their output dropped or queued while this runs. Returns how many there
 * were (`ss -K` lists each socket it aborts).
 */
export async function destroyConnections(vip: string, ports: PortSet): Promise<number> {
  return ssAbort(vip, ssPortFilter(ports));
}

/** `ss -K` over this namespace's connections on `vip` that match `filter`; how many it aborted (it lists each). */
async function ssAbort(vip: string, filter: string): Promise<number> {
  const out = await ssConnections(vip, { before: ['-K'], after: [filter] }, 10_000);
  return out.split('\n').filter((l) => l.trim()).length;
}

/**
 * Aborts (SOCK_DESTROY, `ss -K`) this namespace's sockets on `vip` for exactly
 * these connections, whatever their sequence numbers. Returns how many were
 * aborted.
 */
export async function destroySockets(vip: string, keys: readonly SocketKey[]): Promise<number> {
  let n = 0;
  for (let i = 0; i < keys.length; i += 64) {
    const terms = keys.slice(i, i + 64).map((k) => `( dst ${ipv4ToString(k.client)}:${k.clientPort} and sport = :${k.servicePort} )`);
    n += await ssAbort(vip, `( ${terms.join(' or ')} )`);
  }
  return n;
}
