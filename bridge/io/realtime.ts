/**
 * Real-time priority for the bridge's two time-critical threads, the ARP
 * answers for the service address (io/presence.ts) and the heartbeat thread
 * (io/heartbeat-socket.ts); native/realtime.h says why. `allowRealtime` runs
 * once at start; the bridge keeps CAP_SYS_NICE while a priority is set, so a
 * thread started later (a role change) enters it too.
 */
import { constants } from 'node:os';
import type { Logger } from '../log.js';
import { native } from './native.js';

/** The addon's part for real-time scheduling (native/realtime.cc). */
export interface RealtimeNative {
  allowRealtime(priority: number): string;
}

/**
 * Sets the priority (1–99; 0: none) later threads take, and the process's
 * RLIMIT_RTTIME (200 ms soft, 400 ms hard) unless one is set already.
 * Throws if that limit could not be set: then no thread enters the priority.
 * Each thread reports whether it could (CAP_SYS_NICE, systemd's RestrictRealtime=).
 */
export function allowRealtime(priority: number): void {
  const err = native().allowRealtime(priority);
  if (err) throw new Error(err);
}

/** Whether a thread runs at real-time priority: 'on', 'off' (none configured), or why not (an errno name). */
export type RealtimeState = 'on' | 'off' | `failed: ${string}`;

/** A thread's state from its native result: -1 none configured, 0 entered, else an errno. */
export function realtimeState(rtError: number): RealtimeState {
  if (rtError < 0) return 'off';
  if (rtError === 0) return 'on';
  const name = Object.entries(constants.errno).find(([, v]) => v === rtError)?.[0];
  return `failed: ${name ?? `errno ${rtError}`}`;
}

const warned = new Set<string>();

/** Logs, once per process and thread, a thread that could not enter the configured priority. */
export function warnUnlessRealtime(log: Logger, thread: 'arp' | 'heartbeat', state: RealtimeState): void {
  if (!state.startsWith('failed') || warned.has(thread)) return;
  warned.add(thread);
  log.warn(
    { thread, why: state.slice('failed: '.length) },
    'a time-critical thread runs without real-time priority: under load it waits for a core (scheduling.realtime_priority)',
  );
}
