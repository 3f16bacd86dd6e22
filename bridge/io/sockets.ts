/**
 * The node's own TCP connections on the service address, from the kernel by
 * netlink sock_diag (native/sockdiag.cc): what an active secondary adopts,
 * untranslated, when it becomes the merging primary for new connections
 * (roles swapped after a failure), what a takeover prompts, and what is
 * aborted (SOCK_DESTROY) when it can no longer be replicated or continued.
 * One dump lists every socket; an abort names each socket by its address
 * and the cookie the dump gave, many requests per system call.
 */
import { ipv4 } from '../../net/addr.js';
import { PortMatcher, type PortSet } from '../../net/ports.js';
import { native as addon } from './native.js';

export interface SocketKey {
  client: number;
  clientPort: number;
  servicePort: number;
}

/** A socket: its key, its state (ESTAB, FIN-WAIT-1, … as `ss` names them) and its Send-Q (bytes written and not yet acknowledged). */
export interface SocketState extends SocketKey {
  state: string;
  sendQueue: number;
}

/** One row per connected socket on an address (LISTEN, TIME-WAIT and SYN-RECV left out, as `ss state connected`). */
interface SockColumns {
  client: Uint32Array;
  clientPort: Uint16Array;
  port: Uint16Array;
  state: Uint8Array;
  sendQueue: Uint32Array;
  /** Two words per row: the kernel's cookie of the socket, which an abort must name. */
  cookie: Uint32Array;
}

/** The addon's part for sock_diag (native/sockdiag.cc). */
export interface SockDiagNative {
  sockList(addr: number): Promise<SockColumns>;
  sockDestroy(
    addr: number,
    client: Uint32Array,
    clientPort: Uint16Array,
    port: Uint16Array,
    cookie: Uint32Array,
  ): Promise<{ destroyed: number; gone: number; error?: string }>;
}

const native = (): SockDiagNative => addon();

/** Linux's TCP states (include/net/tcp_states.h), named as `ss` names them. */
export const TCP_STATE_NAMES = [
  '?',
  'ESTAB',
  'SYN-SENT',
  'SYN-RECV',
  'FIN-WAIT-1',
  'FIN-WAIT-2',
  'TIME-WAIT',
  'UNCONN',
  'CLOSE-WAIT',
  'LAST-ACK',
  'LISTEN',
  'CLOSING',
] as const;

/** The rows of `cols` that `keep` keeps. */
function rowsOf(cols: SockColumns, keep: (i: number) => boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < cols.client.length; i++) if (keep(i)) out.push(i);
  return out;
}

/** Every connection of this network namespace on `vip` and a failover port, past the handshake. */
export async function existingConnections(vip: string, ports: PortMatcher): Promise<SocketState[]> {
  const cols = await native().sockList(ipv4(vip));
  return rowsOf(cols, (i) => ports.has(cols.port[i]!)).map((i) => ({
    client: cols.client[i]!,
    clientPort: cols.clientPort[i]!,
    servicePort: cols.port[i]!,
    state: TCP_STATE_NAMES[cols.state[i]!] ?? String(cols.state[i]),
    sendQueue: cols.sendQueue[i]!,
  }));
}

/** Aborts these rows of `cols`; how many were aborted (a socket gone meanwhile is not an error). */
async function abortRows(addr: number, cols: SockColumns, rows: readonly number[]): Promise<number> {
  if (!rows.length) return 0;
  const pick = <T extends Uint32Array | Uint16Array>(col: T, make: (n: number) => T): T => {
    const out = make(rows.length);
    rows.forEach((r, j) => (out[j] = col[r]!));
    return out;
  };
  const cookie = new Uint32Array(2 * rows.length);
  rows.forEach((r, j) => cookie.set(cols.cookie.subarray(2 * r, 2 * r + 2), 2 * j));
  const res = await native().sockDestroy(
    addr,
    pick(cols.client, (n) => new Uint32Array(n)),
    pick(cols.clientPort, (n) => new Uint16Array(n)),
    pick(cols.port, (n) => new Uint16Array(n)),
    cookie,
  );
  if (res.error) throw new Error(`${res.error} (${res.destroyed} of ${rows.length} socket(s) aborted)`);
  return res.destroyed;
}

/**
 * Aborts (SOCK_DESTROY) every connection of this namespace on `vip` and a
 * failover port — sockets a previous incarnation left (its server was
 * killed: FIN-WAIT orphans still retransmitting; or its connections can no
 * longer be replicated). Their RSTs must not reach clients: the caller has
 * their output dropped or queued while this runs. Returns how many there
 * were.
 */
export async function destroyConnections(vip: string, ports: PortSet): Promise<number> {
  const addr = ipv4(vip);
  const match = new PortMatcher(ports);
  const cols = await native().sockList(addr);
  return abortRows(
    addr,
    cols,
    rowsOf(cols, (i) => match.has(cols.port[i]!)),
  );
}

/**
 * Aborts (SOCK_DESTROY) this namespace's sockets on `vip` for exactly these
 * connections, whatever their sequence numbers: one dump, then one request
 * per socket. Returns how many were aborted.
 */
export async function destroySockets(vip: string, keys: readonly SocketKey[]): Promise<number> {
  if (!keys.length) return 0;
  const addr = ipv4(vip);
  const want = new Set(keys.map(keyOf));
  const cols = await native().sockList(addr);
  return abortRows(
    addr,
    cols,
    rowsOf(cols, (i) =>
      want.has(keyOf({ client: cols.client[i]!, clientPort: cols.clientPort[i]!, servicePort: cols.port[i]! })),
    ),
  );
}

function keyOf(k: SocketKey): string {
  return `${k.client}:${k.clientPort}:${k.servicePort}`;
}
