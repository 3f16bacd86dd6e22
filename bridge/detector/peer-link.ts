/**
 * The heartbeat link to the other bridge: a UDP socket bound to this node's
 * own address only, heartbeats every intervalMs, datagrams accepted only from
 * the peer's address and only with a valid HMAC, naming the peer as sender
 * and us as receiver, with a fresh sequence number, echoing our nonce (see
 * bridge/detector/heartbeat.ts). Decisions go to `onDecision`; the detector itself
 * is pure.
 */
import { randomBytes } from 'node:crypto';
import { ipAddr, ipAddrToString, ipv4 } from '../../net/addr.js';
import { readFileSync, statSync } from 'node:fs';
import type { Logger } from '../log.js';
import { serviceAddressList, type Config } from '../../config/config.js';
import { DATA_PROTOCOL, VERSION } from '../version.js';
import { Detector, type Decision } from './detector.js';
import {
  configDifferences,
  decodeConfigNotice,
  decodeHeartbeat,
  decodeNotice,
  decodeSwitch,
  encodeConfigNotice,
  encodeHeartbeat,
  HEARTBEAT_LAYOUT,
  encodeNotice,
  encodeSwitch,
  isConfigNotice,
  isNotice,
  isSwitchMessage,
  noticeParts,
  SeqClock,
  type ConnKey,
  type HeartbeatRole,
  type PeerConfig,
  type SwitchKind,
} from './heartbeat.js';
import { HeartbeatSocket, type HeartbeatSocketStats } from '../io/heartbeat-socket.js';
import { warnUnlessRealtime } from '../io/realtime.js';
import { monotonicMs } from '../clock.js';

export interface PeerLinkOptions {
  self: string;
  peer: string;
  port: number;
  key: Buffer;
  intervalMs: number;
  timeoutMs: number;
  /** A peer never heard from is down after timeoutMs + this (default 5000). */
  startupGraceMs?: number;
  role: HeartbeatRole;
  peerRoles: HeartbeatRole[];
  onDecision: (d: Decision) => void;
  /** Diverged connections the peer (the primary) reported, from an authenticated, fresh notice. */
  onNotice?: (diverged: ConnKey[]) => void;
  /** A planned switchover's message from the peer (authenticated, fresh, answering this link). */
  onSwitch?: (kind: SwitchKind, reason: string) => void;
  /** Our event loop came `lateMs` late (more than an interval) to the link's timer or to a datagram that waited: for a log line. */
  onStall?: (lateMs: number) => void;
  /**
   * How far ahead the loop plans heartbeats for the socket's thread to sign
   * and send, ms: a stall of the event loop shorter than this is not silence to the
   * peer. The bridge's `liveness.loop_stall_ms`, past which its watchdog
   * ends the process anyway (default 1000).
   */
  planAheadMs?: number;
  /** This node's configuration, told to the peer every second; the peer's is checked against it (logged to `log`). Without it, neither. */
  config?: PeerConfig;
  log?: Logger;
}

/** The peer's configuration as last heard, and what differs from ours (empty: it matches). */
export interface ConfigCheck {
  peer: PeerConfig;
  differences: string[];
}

/** How often each node tells the other its configuration, ms. */
const CONFIG_EVERY_MS = 1000;

/**
 * What a bridge logs when its event loop ran late: a stall of half the
 * detector's timeout or more. Heartbeats went on from their thread (planned
 * ahead); the loop's own work waited.
 */
export function stallLogger(log: Logger, timeoutMs: number): (lateMs: number) => void {
  return (late) => {
    const lateMs = Math.round(late);
    if (lateMs >= timeoutMs / 2)
      log.warn(
        { lateMs, timeoutMs },
        `event loop stalled ${lateMs} ms: heartbeats went on from their thread; the bridge's own work waited`,
      );
  };
}

export class KeyError extends Error {
  override readonly name = 'KeyError';
}

/** Reads the shared heartbeat key: a regular file owned by root, mode 0600 (or stricter), at least 16 bytes. */
export function readKey(file: string): Buffer {
  let key: Buffer;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new KeyError(`${file}: not a regular file`);
    if (st.mode & 0o077)
      throw new KeyError(
        `${file}: mode ${(st.mode & 0o777).toString(8)}: readable or writable by others than its owner (chmod 600 it)`,
      );
    if (st.uid !== 0) throw new KeyError(`${file}: owned by uid ${st.uid}, not root (chown root it)`);
    key = readFileSync(file);
  } catch (e) {
    if (e instanceof KeyError) throw e;
    throw new KeyError(
      `${file}: cannot read the heartbeat key: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  const trimmed = Buffer.from(key.toString('latin1').trim(), 'latin1');
  if (trimmed.length < 16) throw new KeyError(`${file}: the heartbeat key must be at least 16 bytes`);
  return trimmed;
}

export class PeerLink {
  readonly detector: Detector;
  /** Read on a thread of its own (io/heartbeat-socket.ts); only the configured peer's datagrams are kept. */
  private readonly sock: HeartbeatSocket;
  private readonly clock = new SeqClock();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastNoticeSeq = -1n;
  private lastConfigSeq = -1n;
  private lastSwitchSeq = -1n;
  private configSentAt = -Infinity;
  private configSentTo = 0n;
  /** The peer's configuration and how it differs from ours, once heard (null: not yet, or an older peer that does not tell). */
  configCheck: ConfigCheck | null = null;

  /** Whether the peer's configuration differs from ours where it must agree (null: not heard yet). */
  get configMismatch(): boolean | null {
    return this.configCheck ? this.configCheck.differences.length > 0 : null;
  }
  /** When the next loop() is due; a later run means our event loop stalled. */
  private dueAt = monotonicMs();
  noticesRejected = 0;
  /** Times our own event loop was late by more than a heartbeat interval. */
  stalls = 0;
  /** Times the link's timer ran (each a wake-up of an idle event loop). */
  timerTurns = 0;
  private heartbeatRole: HeartbeatRole;

  /** The role our heartbeats carry; a change reaches the peer with the next heartbeat. */
  get role(): HeartbeatRole {
    return this.heartbeatRole;
  }

  set role(r: HeartbeatRole) {
    if (r === this.heartbeatRole) return;
    this.heartbeatRole = r;
    if (!this.closed && this.plannedAt > -Infinity) this.planAhead(monotonicMs());
  }

  private readonly self: number;
  private readonly peer: number;
  /** Drawn once per link: a heartbeat counts only if it echoes it. */
  private readonly nonce: bigint;

  private constructor(private readonly opts: PeerLinkOptions) {
    this.heartbeatRole = opts.role;
    this.self = ipv4(opts.self);
    this.peer = ipv4(opts.peer);
    this.nonce = randomBytes(8).readBigUInt64BE(0) | 1n;
    this.detector = new Detector(
      {
        intervalMs: opts.intervalMs,
        timeoutMs: opts.timeoutMs,
        startupGraceMs: opts.startupGraceMs ?? 5000,
        self: this.self,
        peer: this.peer,
        nonce: this.nonce,
      },
      monotonicMs(),
      opts.peerRoles,
    );
    this.sock = new HeartbeatSocket(opts.self, opts.port, opts.peer, opts.port, () => this.drain(), {
      key: opts.key,
      ...HEARTBEAT_LAYOUT,
    });
    if (opts.log) warnUnlessRealtime(opts.log, 'heartbeat', this.sock.stats.realtime);
  }

  /** The heartbeat socket's thread: datagrams dropped or foreign, heartbeats still waiting, its priority. */
  get socketStats(): HeartbeatSocketStats {
    return this.sock.stats;
  }

  static async open(opts: PeerLinkOptions): Promise<PeerLink> {
    const l = new PeerLink(opts);
    // The first turn after the caller holds the link: heartbeats the reader
    // thread already holds would otherwise reach onDecision first (a bridge
    // restarted into a live pair failed its start so: 'reading detector of
    // undefined').
    setImmediate(() => l.loop());
    return l;
  }

  /**
   * Every datagram the peer sent that arrived so far, each at its arrival
   * time; run when the socket's thread says some wait, and by loop(). A
   * heartbeat heard makes a new plan, at most every replanMs, so that ours
   * echo it (the round-trip time: the detector times each echo once); a
   * datagram that waited more than an interval for this turn means our event
   * loop stalled.
   */
  private drain(now = monotonicMs()): void {
    if (this.closed) return;
    const taken = this.sock.take();
    if (!taken.length) return;
    this.noteLate(now, now - taken[0]!.at);
    // Our heartbeats sent so far first: a datagram echoing one times the round trip.
    this.markSent();
    for (const { msg, at, macOk } of taken) {
      if (this.closed) return;
      this.onDatagram(msg, at, macOk);
    }
    if (this.closed) return;
    this.sendConfig(now);
    if (
      this.detector.peerNonce !== this.plannedEcho ||
      (this.detector.echo !== this.plannedSeqEcho && now - this.plannedAt >= this.replanMs)
    )
      this.planAhead(now);
  }

  /** The heartbeats the socket's thread sent since the last look, to the detector (for round-trip times). */
  private markSent(): void {
    for (const { seq, at } of this.sock.sent()) this.detector.markSent(seq, at);
  }

  /** The end of the last stall counted (monotonicMs): one stall seen by both a late timer and a late datagram counts once. */
  private lastStallEnd = -Infinity;

  /** Our event loop came to work `lateMs` late at `now`: more than an interval is a stall, counted and logged. */
  private noteLate(now: number, lateMs: number): void {
    if (lateMs <= this.opts.intervalMs || now - lateMs < this.lastStallEnd) return;
    this.lastStallEnd = now;
    this.stalls++;
    this.opts.onStall?.(lateMs);
  }

  /** `macOk`: a heartbeat-length datagram's MAC, as the socket's thread checked it. */
  private onDatagram(msg: Buffer, at: number, macOk?: boolean): void {
    const opts = this.opts;
    if (isConfigNotice(msg)) {
      this.onConfigNotice(msg);
      return;
    }
    if (isSwitchMessage(msg)) {
      const m = decodeSwitch(msg, opts.key);
      if (typeof m === 'string' || !this.fromPeerToUs(m, this.lastSwitchSeq)) {
        this.noticesRejected++;
        return;
      }
      this.lastSwitchSeq = m.seq;
      opts.onSwitch?.(m.kind, m.reason);
      return;
    }
    if (isNotice(msg)) {
      const n = decodeNotice(msg, opts.key);
      if (typeof n === 'string' || !this.fromPeerToUs(n, this.lastNoticeSeq)) {
        this.noticesRejected++;
        return;
      }
      this.lastNoticeSeq = n.seq;
      opts.onNotice?.(n.diverged);
      return;
    }
    const d = this.detector.onMessage(decodeHeartbeat(msg, opts.key, macOk), at);
    if (d) opts.onDecision(d);
  }

  /** Whether an authenticated datagram is the peer's, to us, answers this link (echoes our nonce), and is newer than `lastSeq`. */
  private fromPeerToUs(n: { from: number; to: number; echoNonce: bigint; seq: bigint }, lastSeq: bigint): boolean {
    return n.from === this.peer && n.to === this.self && n.echoNonce === this.nonce && n.seq > lastSeq;
  }

  /** The peer's configuration: checked against ours; a change in what differs is logged. */
  private onConfigNotice(msg: Buffer): void {
    const n = decodeConfigNotice(msg, this.opts.key);
    if (typeof n === 'string' || !this.fromPeerToUs(n, this.lastConfigSeq)) {
      this.noticesRejected++;
      return;
    }
    this.lastConfigSeq = n.seq;
    if (!this.opts.config) return;
    const differences = configDifferences(this.opts.config, n.config);
    const before = this.configCheck;
    this.configCheck = { peer: n.config, differences };
    if (before && before.differences.join('\n') === differences.join('\n')) return;
    if (differences.length)
      this.opts.log?.error(
        { differences, peer: n.config },
        `the peer’s configuration differs: ${differences.join('; ')}`,
      );
    else
      this.opts.log?.info(
        { peerVersion: n.config.version, peerDatapath: n.config.datapath, peerInbound: n.config.inbound },
        'the peer’s configuration matches',
      );
  }

  /** Tells the peer our configuration: every second, and at once when it changed incarnation (a new nonce). */
  private sendConfig(now: number): void {
    if (!this.opts.config) return;
    const echo = this.detector.peerNonce;
    if (now - this.configSentAt < CONFIG_EVERY_MS && echo === this.configSentTo) return;
    this.configSentAt = now;
    this.configSentTo = echo;
    const msg = encodeConfigNotice(
      { seq: this.clock.next(Date.now()), from: this.self, to: this.peer, echoNonce: echo, config: this.opts.config },
      this.opts.key,
    );
    this.sock.send(msg);
  }

  /**
   * The link's timer: at the peer's deadline (when its silence would mean
   * down), and while it is silent often enough to keep our plan of
   * heartbeats ahead of the thread and the configuration told. A live peer's
   * heartbeats are taken as they come (drain), so the timer wakes the event
   * loop a few times per timeout, not every interval.
   */
  private loop(): void {
    if (this.closed) return;
    this.timerTurns++;
    const now = monotonicMs();
    // Our own event loop stalled (this timer fired late): counted and
    // logged. The peer is judged on what it sent all the same: the
    // heartbeats that arrived meanwhile are taken, at their arrival times,
    // just before (a busy node once declared a live peer dead).
    this.noteLate(now, now - this.dueAt);
    this.drain(now);
    if (this.closed) return;
    this.sendConfig(now);
    this.markSent();
    if (now - this.plannedAt >= 2 * this.replanMs || this.detector.peerNonce !== this.plannedEcho) this.planAhead(now);
    const d = this.detector.tick(now);
    if (d) this.opts.onDecision(d);
    if (this.closed) return;
    const due = Math.min(
      this.detector.nextDeadline(),
      this.plannedAt + 2 * this.replanMs,
      this.opts.config ? this.configSentAt + CONFIG_EVERY_MS : Infinity,
    );
    const next = Math.max(1, due - monotonicMs());
    this.dueAt = monotonicMs() + next;
    this.timer = setTimeout(() => this.loop(), next);
  }

  /**
   * How often a heartbeat heard makes a new plan, so that ours echo it (a
   * tenth of the plan, at least an interval). While the peer is silent the
   * timer makes one when the plan is twice that old: a stall of the loop
   * that begins just before still leaves four fifths of it to send. (The
   * timer at the same age as the drains would run on a cycle of its own
   * beside the deadline's, twice as often.)
   */
  private get replanMs(): number {
    return Math.max(this.opts.intervalMs, (this.opts.planAheadMs ?? 1000) / 10);
  }

  /** When the heartbeats were last planned (monotonicMs), and the peer's nonce they echo. */
  private plannedAt = -Infinity;
  private plannedEcho = 0n;
  /** The peer's sequence number the plan echoes. */
  private plannedSeqEcho = -1n;

  /**
   * Plans the next heartbeats, `planAheadMs` of them, in place of those the
   * socket's thread still has to send: it sends one per interval, signing
   * each. Each carries the peer's last sequence number and nonce as heard
   * now; the plan's sequence numbers are taken from SeqClock, so they grow
   * from plan to plan and the peer sees them in order whichever were sent.
   */
  private planAhead(now: number): void {
    this.plannedAt = now;
    this.plannedEcho = this.detector.peerNonce;
    this.plannedSeqEcho = this.detector.echo;
    const n = Math.ceil((this.opts.planAheadMs ?? 1000) / this.opts.intervalMs) + 1;
    const wall = Date.now(); // wall time: sequence numbers grow across restarts too (SeqClock is monotonic within a process)
    const first = this.clock.next(wall);
    // The plan's other n − 1: within one millisecond of wall time, the clock counts up by one.
    for (let i = 1; i < n; i++) this.clock.next(wall);
    const heartbeat = encodeHeartbeat(
      {
        role: this.heartbeatRole,
        seq: first,
        echo: this.detector.echo,
        from: this.self,
        to: this.peer,
        nonce: this.nonce,
        echoNonce: this.detector.peerNonce,
      },
      this.opts.key,
    );
    this.sock.plan(heartbeat, n, this.opts.intervalMs);
  }

  /**
   * Hands the link over to another role in the same process (a secondary
   * that takes the primary role): the socket and the detector's state stay,
   * so heartbeats never pause — a pause would make the peer probe for the
   * service address in the middle of the handover.
   */
  retarget(to: {
    role: HeartbeatRole;
    peerRoles: HeartbeatRole[];
    onDecision: (d: Decision) => void;
    onNotice?: (diverged: ConnKey[]) => void;
    onSwitch?: (kind: SwitchKind, reason: string) => void;
  }): void {
    this.detector.peerRoles = to.peerRoles;
    this.opts.onDecision = to.onDecision;
    this.opts.onNotice = to.onNotice;
    this.opts.onSwitch = to.onSwitch;
    this.role = to.role;
  }

  /** Sends a planned switchover's message to the peer (switchover.ts). */
  sendSwitch(kind: SwitchKind, reason = ''): void {
    if (this.closed) return;
    const msg = encodeSwitch(
      {
        seq: this.clock.next(Date.now()),
        from: this.self,
        to: this.peer,
        echoNonce: this.detector.peerNonce,
        kind,
        reason,
      },
      this.opts.key,
    );
    this.sock.send(msg);
  }

  /** The peer's tcpfo version as its configuration notice said (null: not heard yet). */
  get peerVersion(): string | null {
    return this.configCheck?.peer.version ?? null;
  }

  /** Sends the list of diverged connections to the peer (several datagrams if long). */
  sendNotice(diverged: readonly ConnKey[]): void {
    if (this.closed) return;
    for (const part of noticeParts(diverged)) {
      const msg = encodeNotice(
        {
          seq: this.clock.next(Date.now()),
          from: this.self,
          to: this.peer,
          echoNonce: this.detector.peerNonce,
          diverged: part,
        },
        this.opts.key,
      );
      this.sock.send(msg);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.sock.close();
  }
}

/** This node's configuration as the peer is told it (bridge/detector/heartbeat.ts, PeerConfig): the same on both nodes of a well-configured pair, whichever role each plays. */
export function peerConfigOf(cfg: Config): PeerConfig {
  return {
    protocol: DATA_PROTOCOL,
    version: VERSION,
    // An IPv4-only service as ever; a dual-stack one "a.b.c.d,x:y::z" (RFC 5952, so two spellings agree).
    service: serviceAddressList(cfg)
      .map((a) => ipAddrToString(ipAddr(a)))
      .join(','),
    ports: cfg.service.ports.map((p) => (typeof p === 'number' ? String(p) : `${p[0]}-${p[1]}`)).join(','),
    lanMode: cfg.lan.mode,
    instance: cfg.instance,
    datapath: cfg.datapath,
    inbound: cfg.inbound,
  };
}
