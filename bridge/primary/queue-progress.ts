/**
 * What the merger has seen of the secondary's segments, from the kernel's
 * counts of the primary's input queue (pure: counts and time in, a verdict
 * out; the daemon reads /proc/net/netfilter/nfnetlink_queue every 100 ms).
 *
 *  - A loss (the queue full under a burst): S's TCP sends those segments
 *    again, and the merger must not take the gap for a secondary that lost
 *    its socket.
 *  - A backlog: segments S sent before now wait unread in the queue. The
 *    merger has seen all of S's only up to the last look whose latest id the
 *    bridge has read since: silences are judged up to that moment.
 */
import type { KernelQueueCounts } from '../io/nfqueue.js';

export interface QueueView {
  /** Packets lost since the last look (0: none). */
  lost: number;
  /** Every segment queued before this time has been handled (Infinity: caught up). */
  seenUntil: number;
}

/** Whether queue id `a` is at or past `b` (ids count up from 1 and wrap at 2^32). */
const atOrPast = (a: number, b: number) => ((a - b) | 0) >= 0;

/** Looks kept while behind: a minute of them at one a 100 ms. */
const MAX_MARKS = 600;

export class QueueProgress {
  private lost = 0;
  /** The id of the latest packet handled, or lost. */
  private read = 0;
  /** Looks the bridge had not yet read up to: (time, the kernel's latest id then). */
  private marks: Array<[number, number]> = [];
  private seen = 0;

  /** The bridge handled the packet with this id. */
  handled(id: number): void {
    this.read = id;
  }

  look(now: number, k: KernelQueueCounts): QueueView {
    const total = k.queueDropped + k.userDropped;
    const lost = Math.max(0, total - this.lost);
    this.lost = Math.max(this.lost, total);
    // A packet the socket had no room for took an id that is never read:
    // every id so far counts as read (a loss restarts every silence anyway).
    if (lost && atOrPast(k.lastId, this.read)) this.read = k.lastId;
    if (atOrPast(this.read, k.lastId)) {
      this.marks.length = 0;
      this.seen = now;
      return { lost, seenUntil: Infinity };
    }
    this.marks.push([now, k.lastId]);
    while (this.marks.length && atOrPast(this.read, this.marks[0]![1])) this.seen = this.marks.shift()![0];
    if (this.marks.length > MAX_MARKS) this.marks.splice(0, this.marks.length - MAX_MARKS);
    return { lost, seenUntil: this.seen };
  }
}
