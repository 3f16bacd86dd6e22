/**
 * Heartbeat messages between the two bridges, authenticated with
 * HMAC-SHA256 under a shared key. Pure: bytes in, message or typed error out.
 *
 * A valid MAC alone proves only that one of the two nodes wrote the bytes,
 * some time. So each heartbeat names its sender and its receiver (a
 * reflected heartbeat names the wrong sender), and carries a random nonce
 * the sender drew at its start together with the last nonce it heard from
 * the receiver: the receiver counts a heartbeat as a sign of life only when
 * it echoes the receiver's own current nonce, which no recording made before
 * the receiver started can do.
 *
 *   0  magic "TFOH"           4
 *   4  version (2)             1
 *   5  role (0 primary, 1 secondary, 2 active-alone)  1
 *   6  reserved                2
 *   8  seq                     8   strictly increasing per sender, across restarts
 *  16  echo seq                8   the last seq received from the peer (for RTT)
 *  24  sender address          4   IPv4, the sender's own node address
 *  28  receiver address        4
 *  32  sender nonce            8   random, drawn when the sender's link opened
 *  40  echoed nonce            8   the receiver's nonce as last heard (0: none yet)
 *  48  HMAC-SHA256             32  over bytes 0..47
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { NodeRole } from '../node/roles.js';
import { ip4Of, ip6Addr, ipAddrBytes, isIp6, type IpAddr } from '../../net/addr.js';

export const HEARTBEAT_LEN = 80;
const MAGIC = 0x54464f48; // "TFOH"
const VERSION = 2;
const HB_ROLE = 5;
const HB_SEQ = 8;
const HB_ECHO = 16;
const HB_FROM = 24;
const HB_TO = 28;
const HB_NONCE = 32;
const HB_ECHO_NONCE = 40;
const HB_MAC = 48;
const MAC_LEN = 32;

/** Where a signer (native/heartbeat.cc, which signs what its thread sends) puts the sequence number and the MAC. */
export const HEARTBEAT_LAYOUT = { seqAt: HB_SEQ, macAt: HB_MAC, length: HEARTBEAT_LEN } as const;

/** The roles a heartbeat carries (node/roles.ts), in their wire order. */
export type HeartbeatRole = Extract<NodeRole, 'primary' | 'secondary' | 'alone'>;
const ROLES: HeartbeatRole[] = ['primary', 'secondary', 'alone'];

export interface Heartbeat {
  role: HeartbeatRole;
  /** 64-bit sequence number as a bigint: millisecond clock × 1000 + counter. */
  seq: bigint;
  echo: bigint;
  /** Sender and receiver node addresses (IPv4 as 32-bit numbers). */
  from: number;
  to: number;
  /** The sender's nonce, and the receiver's as the sender last heard it (0n: not yet). */
  nonce: bigint;
  echoNonce: bigint;
}

export type HeartbeatError = 'bad-length' | 'bad-magic' | 'bad-version' | 'bad-mac' | 'bad-role';

function mac(key: Buffer, b: Buffer, end: number): Buffer {
  return createHmac('sha256', key).update(b.subarray(0, end)).digest();
}

function macValid(key: Buffer, b: Buffer, end: number): boolean {
  return timingSafeEqual(mac(key, b, end), b.subarray(end, end + MAC_LEN));
}

export function encodeHeartbeat(h: Heartbeat, key: Buffer): Buffer {
  const b = Buffer.alloc(HEARTBEAT_LEN);
  b.writeUInt32BE(MAGIC, 0);
  b[4] = VERSION;
  b[HB_ROLE] = ROLES.indexOf(h.role);
  b.writeBigUInt64BE(h.seq, HB_SEQ);
  b.writeBigUInt64BE(h.echo, HB_ECHO);
  b.writeUInt32BE(h.from >>> 0, HB_FROM);
  b.writeUInt32BE(h.to >>> 0, HB_TO);
  b.writeBigUInt64BE(h.nonce, HB_NONCE);
  b.writeBigUInt64BE(h.echoNonce, HB_ECHO_NONCE);
  mac(key, b, HB_MAC).copy(b, HB_MAC);
  return b;
}

/**
 * `macOk`: the MAC as the heartbeat socket's thread checked it under the same
 * key (native/heartbeat.cc); checked here when not given.
 */
export function decodeHeartbeat(b: Buffer, key: Buffer, macOk?: boolean): Heartbeat | HeartbeatError {
  if (b.length !== HEARTBEAT_LEN) return 'bad-length';
  if (b.readUInt32BE(0) !== MAGIC) return 'bad-magic';
  if (b[4] !== VERSION) return 'bad-version';
  if (!(macOk ?? macValid(key, b, HB_MAC))) return 'bad-mac';
  const role = ROLES[b[HB_ROLE]!];
  if (!role) return 'bad-role';
  return {
    role,
    seq: b.readBigUInt64BE(HB_SEQ),
    echo: b.readBigUInt64BE(HB_ECHO),
    from: b.readUInt32BE(HB_FROM),
    to: b.readUInt32BE(HB_TO),
    nonce: b.readBigUInt64BE(HB_NONCE),
    echoNonce: b.readBigUInt64BE(HB_ECHO_NONCE),
  };
}

/** Sequence numbers that keep increasing across restarts: clock in ms × 1000 + a counter. */
export class SeqClock {
  private last = 0n;
  next(nowMs: number): bigint {
    const base = BigInt(Math.floor(nowMs)) * 1000n;
    this.last = base > this.last ? base : this.last + 1n;
    return this.last;
  }
}

/**
 * Notices from the primary to the secondary on the heartbeat socket: the
 * connections that diverged (degraded to primary-only), which the secondary
 * must close rather than continue after a takeover. Same key, own magic;
 * bound to sender, receiver and the receiver's nonce like heartbeats.
 *
 *   0  magic "TFON"           4
 *   4  version (2)             1
 *   5  count6                  1   IPv6 entries (0 from a node that serves IPv4 only: the
 *                                  layout of a node that knew none)
 *   6  count                   2   IPv4 entries
 *   8  seq                     8   from the sender's SeqClock (replays are refused)
 *  16  sender address          4
 *  20  receiver address        4
 *  24  echoed nonce            8   the receiver's nonce as the sender last heard it
 *  32  entries                 8 × count: client address 4, client port 2, service port 2
 *  ..                          20 × count6: client address 16, client port 2, service port 2
 *  ..  HMAC-SHA256             32  over everything before it
 *
 * The entries take at most NOTICE_MAX_ENTRY_BYTES, so a notice fits one 1500-byte frame.
 */
export const NOTICE_MAX_ENTRY_BYTES = 1200;
/** IPv4 entries a notice holds at most. */
export const NOTICE_MAX_ENTRIES = NOTICE_MAX_ENTRY_BYTES / 8;
const NOTICE_MAGIC = 0x54464f4e; // "TFON"
const N_COUNT6 = 5;
const N_COUNT = 6;
const N_SEQ = 8;
const N_FROM = 16;
const N_TO = 20;
const N_ECHO_NONCE = 24;
const N_ENTRIES = 32;
const N_ENTRY_LEN = 8;
const N_ENTRY6_LEN = 20;

export interface ConnKey {
  client: IpAddr;
  clientPort: number;
  servicePort: number;
}

export interface Notice {
  seq: bigint;
  from: number;
  to: number;
  echoNonce: bigint;
  diverged: ConnKey[];
}

export type NoticeError = 'bad-length' | 'bad-magic' | 'bad-version' | 'bad-mac';

export function isNotice(b: Buffer): boolean {
  return b.length >= 4 && b.readUInt32BE(0) === NOTICE_MAGIC;
}

/** The bytes `k` takes in a notice. */
function entryBytes(k: ConnKey): number {
  return isIp6(k.client) ? N_ENTRY6_LEN : N_ENTRY_LEN;
}

/** `keys` in notices' worth: each part's entries fit NOTICE_MAX_ENTRY_BYTES. At least one part. */
export function noticeParts(keys: readonly ConnKey[]): ConnKey[][] {
  const parts: ConnKey[][] = [[]];
  let bytes = 0;
  for (const k of keys) {
    if (bytes + entryBytes(k) > NOTICE_MAX_ENTRY_BYTES) {
      parts.push([]);
      bytes = 0;
    }
    parts.at(-1)!.push(k);
    bytes += entryBytes(k);
  }
  return parts;
}

export function encodeNotice(n: Notice, key: Buffer): Buffer {
  const v4 = n.diverged.filter((k) => !isIp6(k.client));
  const v6 = n.diverged.filter((k) => isIp6(k.client));
  const entries = N_ENTRY_LEN * v4.length + N_ENTRY6_LEN * v6.length;
  if (entries > NOTICE_MAX_ENTRY_BYTES)
    throw new RangeError(`at most ${NOTICE_MAX_ENTRY_BYTES} bytes of entries per notice (noticeParts)`);
  const body = N_ENTRIES + entries;
  const b = Buffer.alloc(body + MAC_LEN);
  b.writeUInt32BE(NOTICE_MAGIC, 0);
  b[4] = VERSION;
  b[N_COUNT6] = v6.length;
  b.writeUInt16BE(v4.length, N_COUNT);
  b.writeBigUInt64BE(n.seq, N_SEQ);
  b.writeUInt32BE(n.from >>> 0, N_FROM);
  b.writeUInt32BE(n.to >>> 0, N_TO);
  b.writeBigUInt64BE(n.echoNonce, N_ECHO_NONCE);
  v4.forEach((k, i) => {
    const at = N_ENTRIES + N_ENTRY_LEN * i;
    b.writeUInt32BE(ip4Of(k.client) >>> 0, at);
    b.writeUInt16BE(k.clientPort, at + 4);
    b.writeUInt16BE(k.servicePort, at + 6);
  });
  v6.forEach((k, i) => {
    const at = N_ENTRIES + N_ENTRY_LEN * v4.length + N_ENTRY6_LEN * i;
    ipAddrBytes(k.client).copy(b, at);
    b.writeUInt16BE(k.clientPort, at + 16);
    b.writeUInt16BE(k.servicePort, at + 18);
  });
  mac(key, b, body).copy(b, body);
  return b;
}

export function decodeNotice(b: Buffer, key: Buffer): Notice | NoticeError {
  if (b.length < N_ENTRIES + MAC_LEN) return 'bad-length';
  if (b.readUInt32BE(0) !== NOTICE_MAGIC) return 'bad-magic';
  if (b[4] !== VERSION) return 'bad-version';
  const count = b.readUInt16BE(N_COUNT);
  const count6 = b[N_COUNT6]!;
  const entries = N_ENTRY_LEN * count + N_ENTRY6_LEN * count6;
  const body = N_ENTRIES + entries;
  if (entries > NOTICE_MAX_ENTRY_BYTES || b.length !== body + MAC_LEN) return 'bad-length';
  if (!macValid(key, b, body)) return 'bad-mac';
  const diverged: ConnKey[] = [];
  for (let i = 0; i < count; i++) {
    const at = N_ENTRIES + N_ENTRY_LEN * i;
    diverged.push({
      client: b.readUInt32BE(at),
      clientPort: b.readUInt16BE(at + 4),
      servicePort: b.readUInt16BE(at + 6),
    });
  }
  for (let i = 0; i < count6; i++) {
    const at = N_ENTRIES + N_ENTRY_LEN * count + N_ENTRY6_LEN * i;
    diverged.push({
      client: ip6Addr(b, at),
      clientPort: b.readUInt16BE(at + 16),
      servicePort: b.readUInt16BE(at + 18),
    });
  }
  return {
    seq: b.readBigUInt64BE(N_SEQ),
    from: b.readUInt32BE(N_FROM),
    to: b.readUInt32BE(N_TO),
    echoNonce: b.readBigUInt64BE(N_ECHO_NONCE),
    diverged,
  };
}

/**
 * The sender's configuration, on the heartbeat socket (what both nodes must
 * agree on, and what they may differ in), so that a mismatched pair is said
 * plainly instead of running connections unprotected in silence. Same key,
 * own magic; bound to sender, receiver and the receiver's nonce like
 * heartbeats. A node of an older version, which knows no such datagram,
 * counts it as a rejected heartbeat (bad-magic) and pairs as before.
 *
 *   0  magic "TFOC"           4
 *   4  version (2)             1
 *   5  reserved                1
 *   6  body length             2   ≤ CONFIG_MAX_BODY
 *   8  seq                     8   from the sender's SeqClock (replays are refused)
 *  16  sender address          4
 *  20  receiver address        4
 *  24  echoed nonce            8   the receiver's nonce as the sender last heard it
 *  32  body                    JSON of PeerConfig
 *  ..  HMAC-SHA256             32  over everything before it
 */
export interface PeerConfig {
  /** The data plane's protocol (the divert option, the kernel paths' marks): nodes must agree. */
  protocol: number;
  /** The tcpfo version (a minor difference pairs: a rolling upgrade). */
  version: string;
  service: string;
  ports: string;
  lanMode: string;
  instance: string;
  /** This node's own choices (they may differ between the nodes). */
  datapath: string;
  inbound: string;
}

export interface ConfigNotice {
  seq: bigint;
  from: number;
  to: number;
  echoNonce: bigint;
  config: PeerConfig;
}

export const CONFIG_MAX_BODY = 1024;
const CONFIG_MAGIC = 0x54464f43; // "TFOC"
const CONFIG_KEYS = ['protocol', 'version', 'service', 'ports', 'lanMode', 'instance', 'datapath', 'inbound'] as const;

export function isConfigNotice(b: Buffer): boolean {
  return b.length >= 4 && b.readUInt32BE(0) === CONFIG_MAGIC;
}

export function encodeConfigNotice(n: ConfigNotice, key: Buffer): Buffer {
  const body = Buffer.from(JSON.stringify(Object.fromEntries(CONFIG_KEYS.map((k) => [k, n.config[k]]))));
  if (body.length > CONFIG_MAX_BODY) throw new RangeError(`configuration notice over ${CONFIG_MAX_BODY} bytes`);
  return encodeAddressed(CONFIG_MAGIC, 0, n, body, key);
}

export function decodeConfigNotice(b: Buffer, key: Buffer): ConfigNotice | NoticeError | 'bad-body' {
  const m = decodeAddressed(b, CONFIG_MAGIC, CONFIG_MAX_BODY, key);
  if (typeof m === 'string') return m;
  let parsed: unknown;
  try {
    parsed = JSON.parse(m.body.toString('utf8'));
  } catch {
    return 'bad-body';
  }
  if (typeof parsed !== 'object' || parsed === null) return 'bad-body';
  const o = parsed as Record<string, unknown>;
  if (typeof o.protocol !== 'number' || CONFIG_KEYS.some((k) => k !== 'protocol' && typeof o[k] !== 'string'))
    return 'bad-body';
  const config = Object.fromEntries(CONFIG_KEYS.map((k) => [k, o[k]])) as unknown as PeerConfig;
  return { ...m.head, config };
}

/**
 * What differs between two nodes' configurations that must agree, in words
 * (empty: they match): the protocol, the service address and ports, the LAN
 * mode, the instance, the major.minor version's major part.
 */
export function configDifferences(mine: PeerConfig, peer: PeerConfig): string[] {
  const out: string[] = [];
  if (mine.protocol !== peer.protocol)
    out.push(`data-plane protocol ${mine.protocol} here, ${peer.protocol} on the peer`);
  if (mine.service !== peer.service) out.push(`service.address ${mine.service} here, ${peer.service} on the peer`);
  if (mine.ports !== peer.ports)
    out.push(
      `service.ports ${mine.ports} here, ${peer.ports} on the peer: connections on a port only one node lists are not protected`,
    );
  if (mine.lanMode !== peer.lanMode) out.push(`lan.mode ${mine.lanMode} here, ${peer.lanMode} on the peer`);
  if (mine.instance !== peer.instance) out.push(`instance ${mine.instance} here, ${peer.instance} on the peer`);
  const major = (v: string) => v.split('.')[0];
  if (major(mine.version) !== major(peer.version))
    out.push(`tcpfo ${mine.version} here, ${peer.version} on the peer: only versions of one major release pair`);
  return out;
}

/**
 * A planned switchover between the two bridges (`tcpfo switchover`), on the
 * heartbeat socket: same key, own magic, bound to sender, receiver and the
 * receiver's nonce like heartbeats, replays refused by the sequence number.
 *
 *   request   secondary → primary: an operator (or failover.preferred) asks
 *             on the secondary; the primary checks and hands over, or refuses
 *   handover  primary → secondary: the primary has stopped answering for the
 *             service address: take it over now, without a detector timeout
 *   taken     secondary → primary: taken over (gratuitous ARP sent)
 *   refused   either way: not now, and why (reason)
 *
 *   0  magic "TFOS"           4
 *   4  version (2)             1
 *   5  kind                    1   0 request, 1 handover, 2 taken, 3 refused
 *   6  reason length           2   ≤ SWITCH_MAX_REASON
 *   8  seq                     8
 *  16  sender address          4
 *  20  receiver address        4
 *  24  echoed nonce            8
 *  32  reason                  UTF-8
 *  ..  HMAC-SHA256             32  over everything before it
 */
export type SwitchKind = 'request' | 'handover' | 'taken' | 'refused';
const SWITCH_KINDS: SwitchKind[] = ['request', 'handover', 'taken', 'refused'];
export const SWITCH_MAX_REASON = 400;
const SWITCH_MAGIC = 0x54464f53; // "TFOS"

export interface SwitchMessage {
  seq: bigint;
  from: number;
  to: number;
  echoNonce: bigint;
  kind: SwitchKind;
  /** Why a switchover is refused (empty for the other kinds). */
  reason: string;
}

export function isSwitchMessage(b: Buffer): boolean {
  return b.length >= 4 && b.readUInt32BE(0) === SWITCH_MAGIC;
}

export function encodeSwitch(m: SwitchMessage, key: Buffer): Buffer {
  let reason = Buffer.from(m.reason, 'utf8');
  // Cut on a character boundary: a reason is for a person, never refused for its length.
  if (reason.length > SWITCH_MAX_REASON)
    reason = Buffer.from(
      reason
        .subarray(0, SWITCH_MAX_REASON)
        .toString('utf8')
        .replace(/\uFFFD$/, ''),
      'utf8',
    );
  return encodeAddressed(SWITCH_MAGIC, SWITCH_KINDS.indexOf(m.kind), m, reason, key);
}

export function decodeSwitch(b: Buffer, key: Buffer): SwitchMessage | NoticeError | 'bad-kind' {
  const m = decodeAddressed(b, SWITCH_MAGIC, SWITCH_MAX_REASON, key);
  if (typeof m === 'string') return m;
  const kind = SWITCH_KINDS[m.tag];
  if (!kind) return 'bad-kind';
  return { ...m.head, kind, reason: m.body.toString('utf8') };
}

/** What the configuration notice and the switchover message both carry ahead of their body. */
interface Addressed {
  seq: bigint;
  from: number;
  to: number;
  echoNonce: bigint;
}

// Their common layout (above): magic, version, a tag byte, the body's length,
// the addressed head, the body, the MAC over everything before it.
const A_TAG = 5;
const A_LEN = 6;
const A_SEQ = 8;
const A_FROM = 16;
const A_TO = 20;
const A_ECHO_NONCE = 24;
const A_BODY = 32;

function encodeAddressed(magic: number, tag: number, h: Addressed, body: Buffer, key: Buffer): Buffer {
  const end = A_BODY + body.length;
  const b = Buffer.alloc(end + MAC_LEN);
  b.writeUInt32BE(magic, 0);
  b[4] = VERSION;
  b[A_TAG] = tag;
  b.writeUInt16BE(body.length, A_LEN);
  b.writeBigUInt64BE(h.seq, A_SEQ);
  b.writeUInt32BE(h.from >>> 0, A_FROM);
  b.writeUInt32BE(h.to >>> 0, A_TO);
  b.writeBigUInt64BE(h.echoNonce, A_ECHO_NONCE);
  body.copy(b, A_BODY);
  mac(key, b, end).copy(b, end);
  return b;
}

function decodeAddressed(
  b: Buffer,
  magic: number,
  maxBody: number,
  key: Buffer,
): { head: Addressed; tag: number; body: Buffer } | NoticeError {
  if (b.length < A_BODY + MAC_LEN) return 'bad-length';
  if (b.readUInt32BE(0) !== magic) return 'bad-magic';
  if (b[4] !== VERSION) return 'bad-version';
  const len = b.readUInt16BE(A_LEN);
  const end = A_BODY + len;
  if (len > maxBody || b.length !== end + MAC_LEN) return 'bad-length';
  if (!macValid(key, b, end)) return 'bad-mac';
  return {
    head: {
      seq: b.readBigUInt64BE(A_SEQ),
      from: b.readUInt32BE(A_FROM),
      to: b.readUInt32BE(A_TO),
      echoNonce: b.readBigUInt64BE(A_ECHO_NONCE),
    },
    tag: b[A_TAG]!,
    body: b.subarray(A_BODY, end),
  };
}
