/**
 * What the primary's merger has seen of the secondary's segments, from the
 * kernel's counts of its input queue (bridge/primary/queue-progress.ts).
 */
import { describe, expect, it } from 'vitest';
import { QueueProgress } from '../../bridge/primary/queue-progress.js';

const counts = (lastId: number, queueDropped = 0, userDropped = 0) => ({
  waiting: 0,
  queueDropped,
  userDropped,
  lastId,
});

describe('the input queue’s progress', () => {
  it('caught up: everything seen, nothing lost', () => {
    const q = new QueueProgress();
    expect(q.look(0, counts(0))).toEqual({ lost: 0, seenUntil: Infinity });
    q.handled(5);
    expect(q.look(100, counts(5))).toEqual({ lost: 0, seenUntil: Infinity });
  });

  it('a backlog: seen up to the last look the bridge has read past, however long it lasts', () => {
    const q = new QueueProgress();
    q.handled(10);
    expect(q.look(0, counts(10)).seenUntil).toBe(Infinity);
    // A burst: the kernel has queued up to 1000, the bridge read 10.
    expect(q.look(100, counts(1000)).seenUntil).toBe(0);
    q.handled(500);
    expect(q.look(200, counts(3000)).seenUntil).toBe(0); // not yet past the 100 ms look's 1000
    q.handled(1000);
    expect(q.look(300, counts(5000)).seenUntil).toBe(100);
    q.handled(4000);
    expect(q.look(2500, counts(6000)).seenUntil).toBe(200); // 3000 read, 5000 not: seen up to the 200 ms look
    q.handled(6000);
    expect(q.look(2600, counts(6000)).seenUntil).toBe(Infinity);
  });

  it('losses are reported once each, and ids the socket never delivered count as read', () => {
    const q = new QueueProgress();
    q.handled(100);
    expect(q.look(0, counts(100))).toEqual({ lost: 0, seenUntil: Infinity });
    // 40 dropped for the full socket (their ids 101…140 never arrive), 7 for the full queue.
    expect(q.look(100, counts(140, 7, 40))).toEqual({ lost: 47, seenUntil: Infinity });
    expect(q.look(200, counts(140, 7, 40))).toEqual({ lost: 0, seenUntil: Infinity });
  });

  it('ids wrap at 2^32', () => {
    const q = new QueueProgress();
    q.handled(0xffff_fff0);
    expect(q.look(0, counts(0xffff_fff0)).seenUntil).toBe(Infinity);
    expect(q.look(100, counts(5)).seenUntil).toBe(0);
    q.handled(5);
    expect(q.look(200, counts(5)).seenUntil).toBe(Infinity);
  });
});
