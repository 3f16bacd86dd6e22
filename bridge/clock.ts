/**
 * The bridges' time. Every timer and every decision — heartbeats and the
 * failure detector, the merger's expiry and silence, the liveness guard, a
 * takeover's steps — runs on a monotonic clock, which an NTP step or an
 * operator's `date -s` never moves: a wall-clock step of a few seconds
 * would otherwise look like silence (a peer declared dead, a connection
 * degraded) or delay a takeover by its size. Wall-clock time appears only in
 * logs and in what status shows a person.
 */
import { performance } from 'node:perf_hooks';

/** Monotonic whole milliseconds (arbitrary origin: compare, never show), as Date.now() counts them. */
export function monotonicMs(): number {
  return Math.floor(performance.now());
}

/** A monotonic instant as wall-clock milliseconds since the epoch, for display. */
export function wallTimeOf(monoMs: number): number {
  return Math.round(Date.now() - (monotonicMs() - monoMs));
}
