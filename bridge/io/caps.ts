/**
 * Capability limiting. After setup a bridge only still needs
 * CAP_NET_ADMIN (rules, addresses, promiscuous mode at takeover and stop),
 * CAP_NET_RAW (raw sockets) and CAP_BPF (the primary's tc program, loaded
 * again when a secondary takes the primary role); every other capability leaves its permitted,
 * effective and bounding sets, the kept two become ambient for the `ip` and
 * `iptables` children, and no_new_privs is set. The sockets, queues and
 * captures opened during setup stay usable.
 */
import { native } from './native.js';

export const CAP_NET_ADMIN = 12;
export const CAP_NET_RAW = 13;
/** A secondary that takes the primary role later loads the translation program (io/xlate.ts) then. */
export const CAP_BPF = 39;
/** Kept while `scheduling.realtime_priority` is set: a thread started after setup (a role change) enters it (io/realtime.ts). */
export const CAP_SYS_NICE = 23;

const NAMES: Record<number, string> = {
  [CAP_NET_ADMIN]: 'CAP_NET_ADMIN',
  [CAP_NET_RAW]: 'CAP_NET_RAW',
  [CAP_SYS_NICE]: 'CAP_SYS_NICE',
  [CAP_BPF]: 'CAP_BPF',
};

/** What a bridge keeps after setup: with real-time threads, CAP_SYS_NICE too. */
export function keptCapabilities(realtime: boolean): number[] {
  return realtime ? [CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, CAP_SYS_NICE] : [CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF];
}

/** "CAP_NET_ADMIN, CAP_NET_RAW, …", for the log. */
export function capabilityNames(caps: readonly number[]): string {
  return caps.map((c) => NAMES[c] ?? `capability ${c}`).join(', ');
}

export interface CapabilityReport {
  /** Hex masks, as in /proc/PID/status. */
  permitted: string;
  bounding: string;
  /** Whether the bounding set could be reduced too (needs CAP_SETPCAP, absent in some containers). */
  boundingLimited: boolean;
}

export function limitCapabilities(keep: readonly number[] = [CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF]): CapabilityReport {
  const r = native().limitCapabilities([...keep]);
  const want = keep.reduce((m, c) => m | (1n << BigInt(c)), 0n);
  return { permitted: r.permitted, bounding: r.bounding, boundingLimited: (BigInt(`0x${r.bounding}`) & ~want) === 0n };
}

/** The addon's part for capabilities (native/caps.cc). */
export interface CapsNative {
  limitCapabilities(keep: number[]): { permitted: string; effective: string; bounding: string };
}
