/** The kernel's counts of a queue, read from /proc/net/netfilter/nfnetlink_queue (bridge/io/nfqueue.ts). */
import { describe, expect, it } from 'vitest';
import { parseQueueCounts } from '../../bridge/io/nfqueue.js';

// Two bound queues as the kernel prints them: number, port id, waiting, copy mode,
// copy range, dropped (queue full), dropped (socket full), last id, 1.
const TEXT = `    0  12345     3 2 65531    17     2     9876  1
    1  12345     0 2 65531     0    40    12000  1
`;

describe('nfnetlink_queue counts', () => {
  it('reads the named queue’s waiting and dropped counts', () => {
    expect(parseQueueCounts(TEXT, 0)).toEqual({ waiting: 3, queueDropped: 17, userDropped: 2, lastId: 9876 });
    expect(parseQueueCounts(TEXT, 1)).toEqual({ waiting: 0, queueDropped: 0, userDropped: 40, lastId: 12000 });
  });

  it('null for a queue not bound, and for text that is not the table', () => {
    expect(parseQueueCounts(TEXT, 2)).toBeNull();
    expect(parseQueueCounts('', 0)).toBeNull();
    expect(parseQueueCounts('0 a b c d e f\n', 0)).toBeNull();
  });
});
