/**
 * The merger sees one id space for the packets it holds; the primary's two
 * queues each have their own. NFQUEUE packet ids are per-queue 32-bit
 * counters that grow for the life of the binding (and wrap), so every value
 * 0 … 2^32 − 1 occurs on either queue: an inbound id is tagged by adding
 * 2^32, which no outbound id reaches. (Tagging with bit 31 sent verdicts to
 * the wrong queue once a queue had seen 2^31 packets.)
 */
export const INBOUND_TAG = 2 ** 32;

/**
 * Ids of P's segments the merger took from the kernel's stash (no queue
 * holds them: released through the raw socket, if at all).
 */
export const STASH_TAG = 2 ** 33;

/** The merger's id for packet `id` of the inbound queue. */
export function inboundId(id: number): number {
  return id + INBOUND_TAG;
}

/** Which queue a merger id belongs to, and the queue's own id. */
export function queueOf(id: number): { inbound: boolean; id: number } {
  return id >= INBOUND_TAG ? { inbound: true, id: id - INBOUND_TAG } : { inbound: false, id };
}
