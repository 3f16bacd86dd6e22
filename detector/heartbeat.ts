/**
 * Heartbeat messages between the two bridges, authenticated with
 * HMAC-SHA256 under a shared key. Pure: bytes in, message or typed error out.
 *
 *   0  magic "TFOH"          4
 *   4  version (1)            1
 *   5  role (0 primary, 1 secondary, 2 active-alone)  1
 *   6  reserved               2
 *   8  seq                    8   strictly increasing per sender, across restarts
 *  16  echo seq               8   the last seq received from the peer (for RTT)
 *  24  HMAC-SHA256            32  over bytes 0..23
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const HEARTBEAT_LEN = 56;
const MAGIC = 0x54464f48; // "TFOH"
const VERSION = 1;
const MAC_AT = 24;

export type HeartbeatRole = 'primary' | 'secondary' | 'alone';
const ROLES: HeartbeatRole[] = ['primary', 'secondary', 'alone'];

export interface Heartbeat {
  role: HeartbeatRole;
  /** 64-bit sequence number as a bigint: millisecond clock × 1000 + counter. */
  seq: bigint;
  echo: bigint;
}

export type HeartbeatError = 'bad-length' | 'bad-magic' | 'bad-version' | 'bad-mac' | 'bad-role';

export function encodeHeartbeat(h: Heartbeat, key: Buffer): Buffer {
  const b = Buffer.alloc(HEARTBEAT_LEN);
  b.writeUInt32BE(MAGIC, 0);
  b[4] = VERSION;
  b[5] = ROLES.indexOf(h.role);
  b.writeBigUInt64BE(h.seq, 8);
  b.writeBigUInt64BE(h.echo, 16);
  createHmac('sha256', key).update(b.subarray(0, MAC_AT)).digest().copy(b, MAC_AT);
  return b;
}

export function decodeHeartbeat(b: Buffer, key: Buffer): Heartbeat | HeartbeatError {
  if (b.length !== HEARTBEAT_LEN) return 'bad-length';
  if (b.readUInt32BE(0) !== MAGIC) return 'bad-magic';
  if (b[4] !== VERSION) return 'bad-version';
  const mac = createHmac('sha256', key).update(b.subarray(0, MAC_AT)).digest();
  if (!timingSafeEqual(mac, b.subarray(MAC_AT, MAC_AT + 32))) return 'bad-mac';
  const role = ROLES[b[5]!];
  if (!role) return 'bad-role';
  return { role, seq: b.readBigUInt64BE(8), echo: b.readBigUInt64BE(16) };
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
 * must close rather than continue after a takeover. Same key, own magic.
 *
 *   0  magic "TFON"          4
 *   4  version (1)            1
 *   5  reserved               1
 *   6  count                  2   ≤ NOTICE_MAX_ENTRIES
 *   8  seq                    8   from the sender's SeqClock (replays are refused)
 *  16  entries                8 × count: client address 4, client port 2, service port 2
 *  ..  HMAC-SHA256            32  over everything before it
 */
export const NOTICE_MAX_ENTRIES = 150;
const NOTICE_MAGIC = 0x54464f4e; // "TFON"

export interface ConnKey {
  client: number;
  clientPort: number;
  servicePort: number;
}

export interface Notice {
  seq: bigint;
  diverged: ConnKey[];
}

export type NoticeError = 'bad-length' | 'bad-magic' | 'bad-version' | 'bad-mac';

export function isNotice(b: Buffer): boolean {
  return b.length >= 4 && b.readUInt32BE(0) === NOTICE_MAGIC;
}

export function encodeNotice(n: Notice, key: Buffer): Buffer {
  if (n.diverged.length > NOTICE_MAX_ENTRIES) throw new RangeError(`at most ${NOTICE_MAX_ENTRIES} entries per notice`);
  const body = 16 + 8 * n.diverged.length;
  const b = Buffer.alloc(body + 32);
  b.writeUInt32BE(NOTICE_MAGIC, 0);
  b[4] = VERSION;
  b.writeUInt16BE(n.diverged.length, 6);
  b.writeBigUInt64BE(n.seq, 8);
  n.diverged.forEach((k, i) => {
    b.writeUInt32BE(k.client >>> 0, 16 + 8 * i);
    b.writeUInt16BE(k.clientPort, 20 + 8 * i);
    b.writeUInt16BE(k.servicePort, 22 + 8 * i);
  });
  createHmac('sha256', key).update(b.subarray(0, body)).digest().copy(b, body);
  return b;
}

export function decodeNotice(b: Buffer, key: Buffer): Notice | NoticeError {
  if (b.length < 48) return 'bad-length';
  if (b.readUInt32BE(0) !== NOTICE_MAGIC) return 'bad-magic';
  if (b[4] !== VERSION) return 'bad-version';
  const count = b.readUInt16BE(6);
  if (count > NOTICE_MAX_ENTRIES || b.length !== 16 + 8 * count + 32) return 'bad-length';
  const body = 16 + 8 * count;
  const mac = createHmac('sha256', key).update(b.subarray(0, body)).digest();
  if (!timingSafeEqual(mac, b.subarray(body, body + 32))) return 'bad-mac';
  const diverged: ConnKey[] = [];
  for (let i = 0; i < count; i++) {
    diverged.push({ client: b.readUInt32BE(16 + 8 * i), clientPort: b.readUInt16BE(20 + 8 * i), servicePort: b.readUInt16BE(22 + 8 * i) });
  }
  return { seq: b.readBigUInt64BE(8), diverged };
}
