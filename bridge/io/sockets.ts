/**
 * The node's own TCP connections on the service address, from the kernel by
 * netlink sock_diag (native/sockdiag.cc): what an active secondary adopts,
 * untranslated, when it becomes the merging primary for new connections
 * (roles swapped after a failure), what a takeover prompts, and what is
 * aborted (SOCK_DESTROY) when it can no longer be replicated or continued.
 * One dump lists every socket; an abort names each socket by its address
 * and the cookie the dump gave, many requests per system call.
 */
import { ip6Addr, ipAddr, ipAddrBytes, type IpAddr } from '../../net/addr.js';
import { PortMatcher, type PortSet } from '../../net/ports.js';
import { native as addon } from './native.js';

export interface SocketKey {
  client: IpAddr;
  clientPort: number;
  servicePort: number;
}

/** A socket: its key, its state (ESTAB, FIN-WAIT-1, … as `ss` names them) and its Send-Q (bytes written and not yet acknowledged). */
export interface SocketState extends SocketKey {
  state: string;
  sendQueue: number;
}

/**
 * One row per connected socket on an address (LISTEN, TIME-WAIT and
 * SYN-RECV left out, as `ss state connected`), in the family the kernel
 * keeps it in: an IPv4 connection of a server listening on [::] is an
 * AF_INET6 socket, its addresses ::ffff:a.b.c.d.
 */
interface SockColumns {
  /** AF_INET (2) or AF_INET6 (10). */
  family: Uint8Array;
  /** 16 bytes per row, as inet_diag gives them (an AF_INET address in the first 4). */
  local: Uint8Array;
  client: Uint8Array;
  clientPort: Uint16Array;
  port: Uint16Array;
  state: Uint8Array;
  sendQueue: Uint32Array;
  /** Two words per row: the kernel's cookie of the socket, which an abort must name. */
  cookie: Uint32Array;
}

/** The addon's part for sock_diag (native/sockdiag.cc). */
export interface SockDiagNative {
  /** `addr`: 4 or 16 bytes; an IPv4 address is looked for in both families. */
  sockList(addr: Buffer): Promise<SockColumns>;
  sockDestroy(
    family: Uint8Array,
    local: Uint8Array,
    client: Uint8Array,
    clientPort: Uint16Array,
    port: Uint16Array,
    cookie: Uint32Array,
  ): Promise<{ destroyed: number; gone: number; error?: string }>;
}

const native = (): SockDiagNative => addon();
const AF_INET = 2;

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

/** Row `i`'s client as the cores name it: an IPv4 one (also as ::ffff:a.b.c.d) a number. */
function clientOf(cols: SockColumns, i: number): IpAddr {
  const at = 16 * i;
  const c = cols.client;
  if (cols.family[i] === AF_INET) return ((c[at]! << 24) | (c[at + 1]! << 16) | (c[at + 2]! << 8) | c[at + 3]!) >>> 0;
  let mapped = c[at + 10] === 0xff && c[at + 11] === 0xff;
  for (let k = 0; mapped && k < 10; k++) mapped = c[at + k] === 0;
  if (mapped) return ((c[at + 12]! << 24) | (c[at + 13]! << 16) | (c[at + 14]! << 8) | c[at + 15]!) >>> 0;
  return ip6Addr(c, at);
}

/** Every listed socket on each of `vips` (the service's addresses, as text). */
async function listAll(vips: readonly string[]): Promise<SockColumns[]> {
  return Promise.all(vips.map((v) => native().sockList(ipAddrBytes(ipAddr(v)))));
}

/** Every connection of this network namespace on one of `vips` and a failover port, past the handshake. */
export async function existingConnections(vips: readonly string[], ports: PortMatcher): Promise<SocketState[]> {
  const out: SocketState[] = [];
  for (const cols of await listAll(vips))
    for (let i = 0; i < cols.family.length; i++)
      if (ports.has(cols.port[i]!))
        out.push({
          client: clientOf(cols, i),
          clientPort: cols.clientPort[i]!,
          servicePort: cols.port[i]!,
          state: TCP_STATE_NAMES[cols.state[i]!] ?? String(cols.state[i]),
          sendQueue: cols.sendQueue[i]!,
        });
  return out;
}

/** Aborts the rows of `cols` that `keep` keeps; how many were aborted (a socket gone meanwhile is not an error). */
async function abortRows(cols: SockColumns, keep: (i: number) => boolean): Promise<number> {
  const rows: number[] = [];
  for (let i = 0; i < cols.family.length; i++) if (keep(i)) rows.push(i);
  if (!rows.length) return 0;
  const n = rows.length;
  const family = new Uint8Array(n);
  const local = new Uint8Array(16 * n);
  const client = new Uint8Array(16 * n);
  const clientPort = new Uint16Array(n);
  const port = new Uint16Array(n);
  const cookie = new Uint32Array(2 * n);
  rows.forEach((r, j) => {
    family[j] = cols.family[r]!;
    local.set(cols.local.subarray(16 * r, 16 * r + 16), 16 * j);
    client.set(cols.client.subarray(16 * r, 16 * r + 16), 16 * j);
    clientPort[j] = cols.clientPort[r]!;
    port[j] = cols.port[r]!;
    cookie.set(cols.cookie.subarray(2 * r, 2 * r + 2), 2 * j);
  });
  const res = await native().sockDestroy(family, local, client, clientPort, port, cookie);
  if (res.error) throw new Error(`${res.error} (${res.destroyed} of ${n} socket(s) aborted)`);
  return res.destroyed;
}

/**
 * Aborts (SOCK_DESTROY) every connection of this namespace on one of
 * `vips` and a failover port — sockets a previous incarnation left (its
 * server was killed: FIN-WAIT orphans still retransmitting; or its
 * connections can no longer be replicated). Their RSTs must not reach
 * clients: the caller has their output dropped or queued while this runs.
 * Returns how many there were.
 */
export async function destroyConnections(vips: readonly string[], ports: PortSet): Promise<number> {
  const match = new PortMatcher(ports);
  let n = 0;
  for (const cols of await listAll(vips)) n += await abortRows(cols, (i) => match.has(cols.port[i]!));
  return n;
}

/**
 * Aborts (SOCK_DESTROY) this namespace's sockets on one of `vips` for
 * exactly these connections, whatever their sequence numbers: one dump per
 * address, then one request per socket. Returns how many were aborted.
 */
export async function destroySockets(vips: readonly string[], keys: readonly SocketKey[]): Promise<number> {
  if (!keys.length) return 0;
  const want = new Set(keys.map(keyOf));
  let n = 0;
  for (const cols of await listAll(vips))
    n += await abortRows(cols, (i) =>
      want.has(keyOf({ client: clientOf(cols, i), clientPort: cols.clientPort[i]!, servicePort: cols.port[i]! })),
    );
  return n;
}

function keyOf(k: SocketKey): string {
  return `${k.client}:${k.clientPort}:${k.servicePort}`;
}
