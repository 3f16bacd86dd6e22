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

export type HeartbeatRole = 'primary' | 'secondary' | 'alone';
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

export function decodeHeartbeat(b: Buffer, key: Buffer): Heartbeat | HeartbeatError {
  if (b.length !== HEARTBEAT_LEN) return 'bad-length';
  if (b.readUInt32BE(0) !== MAGIC) return 'bad-magic';
  if (b[4] !== VERSION) return 'bad-version';
  if (!macValid(key, b, HB_MAC)) return 'bad-mac';
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
 *   5  reserved                1
 *   6  count                   2   ≤ NOTICE_MAX_ENTRIES
 *   8  seq                     8   from the sender's SeqClock (replays are refused)
 *  16  sender address          4
 *  20  receiver address        4
 *  24  echoed nonce            8   the receiver's nonce as the sender last heard it
 *  32  entries                 8 × count: client address 4, client port 2, service port 2
 *  ..  HMAC-SHA256             32  over everything before it
 */
export const NOTICE_MAX_ENTRIES = 150;
const NOTICE_MAGIC = 0x54464f4e; // "TFON"
const N_COUNT = 6;
const N_SEQ = 8;
const N_FROM = 16;
const N_TO = 20;
const N_ECHO_NONCE = 24;
const N_ENTRIES = 32;
const N_ENTRY_LEN = 8;

export interface ConnKey {
  client: number;
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

export function encodeNotice(n: Notice, key: Buffer): Buffer {
  if (n.diverged.length > NOTICE_MAX_ENTRIES) throw new RangeError(`at most ${NOTICE_MAX_ENTRIES} entries per notice`);
  const body = N_ENTRIES + N_ENTRY_LEN * n.diverged.length;
  const b = Buffer.alloc(body + MAC_LEN);
  b.writeUInt32BE(NOTICE_MAGIC, 0);
  b[4] = VERSION;
  b.writeUInt16BE(n.diverged.length, N_COUNT);
  b.writeBigUInt64BE(n.seq, N_SEQ);
  b.writeUInt32BE(n.from >>> 0, N_FROM);
  b.writeUInt32BE(n.to >>> 0, N_TO);
  b.writeBigUInt64BE(n.echoNonce, N_ECHO_NONCE);
  n.diverged.forEach((k, i) => {
    const at = N_ENTRIES + N_ENTRY_LEN * i;
    b.writeUInt32BE(k.client >>> 0, at);
    b.writeUInt16BE(k.clientPort, at + 4);
    b.writeUInt16BE(k.servicePort, at + 6);
  });
  mac(key, b, body).copy(b, body);
  return b;
}

export function decodeNotice(b: Buffer, key: Buffer): Notice | NoticeError {
  if (b.length < N_ENTRIES + MAC_LEN) return 'bad-length';
  if (b.readUInt32BE(0) !== NOTICE_MAGIC) return 'bad-magic';
  if (b[4] !== VERSION) return 'bad-version';
  const count = b.readUInt16BE(N_COUNT);
  const body = N_ENTRIES + N_ENTRY_LEN * count;
  if (count > NOTICE_MAX_ENTRIES || b.length !== body + MAC_LEN) return 'bad-length';
  if (!macValid(key, b, body)) return 'bad-mac';
  const diverged: ConnKey[] = [];
  for (let i = 0; i < count; i++) {
    const at = N_ENTRIES + N_ENTRY_LEN * i;
    diverged.push({ client: b.readUInt32BE(at), clientPort: b.readUInt16BE(at + 4), servicePort: b.readUInt16BE(at + 6) });
  }
  return { seq: b.readBigUInt64BE(N_SEQ), from: b.readUInt32BE(N_FROM), to: b.readUInt32BE(N_TO), echoNonce: b.readBigUInt64BE(N_ECHO_NONCE), diverged };
}
