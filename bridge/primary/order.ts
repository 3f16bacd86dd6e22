/**
 * The order of answers across one client's connections, where two paths
 * carry them: the kernel releases most of P's segments at once, the bridge's
 * output queue the rest a little later (a handshake, a close, a connection
 * merged in user space). Without care an answer the kernel releases overtakes
 * one the servers produced before it on another connection of the same
 * client, which the queue still holds: a client that infers one connection's
 * state from another's sees the wrong order (curl in FTP active mode gives up
 * when the `150` or `226` on the control connection comes before the data
 * connection's handshake is complete).
 *
 * The rule (native/bpf/maps.h `order`): the netfilter match counts, by
 * client slot, each of P's segments it sends to the queue on its own account
 * (one the kernel cannot release); the bridge counts each verdict it gives
 * them and writes its counts back. While a slot's counts differ, the match
 * sends that client's segments to the queue even where the kernel would
 * release them, marked (ORDER_WAIT_MARK) and not counted: the queue's own lag
 * must not keep the counts apart, or under a steady stream of answers every
 * one would take the queue. Pure ACKs the queue takes of connections the
 * kernel releases (a D-SACK, say) are not counted either: nothing a client
 * orders its connections by (the last ACK of a server-initiated handshake,
 * which the client's accept() waits for, is of no such connection yet). Here they wait their turn: a segment of a
 * connection the kernel releases, with an earlier segment of its client
 * still open in the queue, is set aside until every such earlier one has its
 * verdict, and then goes on — back to the kernel, or to the merger.
 *
 * What is kept: no answer the kernel releases overtakes an earlier one of its
 * client that the queue took on its own account (a handshake, a close, bytes
 * the merger holds). Two answers the kernel releases may still cross by the
 * bridge's turn, when the first had to wait in the queue and the counts
 * caught up before the bridge read it — as two connections' segments cross
 * whenever one of them is resent.
 *
 * The order is kept as long as it costs little: a segment waits at most
 * `maxWaitMs` (an earlier answer the merger holds for seconds — its
 * connection's secondary lagging, a close waiting for the other server's —
 * must not stall the client's other connections), then leaves anyway. For
 * the same reason a counted segment holds the kernel's rule at most
 * `maxWaitMs`: then its verdict is counted ahead of time (expireCounted), and
 * its client's later answers leave past it in the kernel again rather than
 * all through the queue.
 *
 * Pure: no I/O; time comes as an argument. The shell feeds it each packet of
 * the output queue (arrive), each deferral (defer) and each verdict
 * (verdict), and takes back the deferred packets whose turn came (ready),
 * also at nextDeadline().
 */

/**
 * The mark the match gives P's segments it sends to the queue uncounted: those
 * the kernel would release, there only to wait their turn, and pure ACKs of
 * connections the kernel releases.
 */
export const ORDER_WAIT_MARK = 0x00800000;

/** How long a segment waits for an earlier answer of its client at most, by default. */
export const ORDER_MAX_WAIT_MS = 50;

/** Slots of the kernel's `order` map (ORDER_SLOTS in native/bpf/maps.h). */
export const ORDER_SLOTS = 256;

/** The slot of a client (its IPv4 address as a number), as the kernel computes it (order_slot). */
export function orderSlot(client: number): number {
  return Math.imul(client | 0, 0x9e3779b1 | 0) >>> 24;
}

interface Open {
  slot: number;
  /** Arrival number: the order the queue delivered it in. */
  n: number;
  deferred: boolean;
  /** Counted by the kernel's match: its verdict counts in `done`. */
  counted: boolean;
}

export class AnswerOrder<T> {
  /** Verdicts given, by slot: what the kernel's ORDER_DONE entry must say. */
  readonly done = new Uint32Array(ORDER_SLOTS);
  /** `done` changed since takeDirty(). */
  private dirty = false;
  private arrivals = 0;
  /** Packets of the output queue without a verdict yet, by queue id. */
  private readonly open = new Map<number, Open>();
  /** By slot: arrival numbers of the open packets not set aside, oldest first. */
  private readonly undecided = new Map<number, number[]>();
  /** By slot: the packets set aside, in arrival order, with when. */
  private readonly waiting = new Map<number, { id: number; n: number; item: T; at: number }[]>();
  /** Slots whose set-aside packets may have become ready. */
  private readonly touched = new Set<number>();
  /** Counted packets without a verdict, oldest first: when each arrived, by queue id. */
  private readonly countedOpen = new Map<number, number>();
  /** Packets set aside so far, and those that left before their turn (waited maxWaitMs): counters for metrics. */
  deferrals = 0;
  expired = 0;
  /** Counted packets whose verdict was counted ahead of time (held maxWaitMs): a counter for metrics. */
  heldTooLong = 0;

  constructor(readonly maxWaitMs = ORDER_MAX_WAIT_MS) {}

  /**
   * Packet `id` of the output queue, to client `client`, arrived at `now`;
   * `counted`: the kernel's match counted it (it came unmarked). Returns
   * whether an earlier packet of its client's slot is still open (undecided
   * or waiting): a packet the kernel would release must then wait (defer).
   */
  arrive(id: number, client: number, counted = true, now = 0): boolean {
    const slot = orderSlot(client);
    const n = this.arrivals++;
    const ahead = this.hasOpen(slot);
    this.open.set(id, { slot, n, deferred: false, counted });
    if (counted) this.countedOpen.set(id, now);
    let u = this.undecided.get(slot);
    if (!u) this.undecided.set(slot, (u = []));
    u.push(n);
    return ahead;
  }

  /** Sets packet `id` (arrived, no verdict yet) aside, at `now`, until its turn; `item` is what ready() gives back. */
  defer(id: number, item: T, now: number): void {
    const o = this.open.get(id);
    if (!o || o.deferred) throw new Error(`packet ${id} is not open, or deferred already`);
    o.deferred = true;
    this.removeUndecided(o);
    let w = this.waiting.get(o.slot);
    if (!w) this.waiting.set(o.slot, (w = []));
    w.push({ id, n: o.n, item, at: now });
    this.deferrals++;
  }

  /**
   * Packet `id` got its verdict (any verdict). Unknown ids (the inbound
   * queue's) are ignored. Returns whether `done` changed: the kernel's copy
   * must then be written before the client can answer what just left.
   */
  verdict(id: number): boolean {
    const o = this.open.get(id);
    if (!o) return false;
    this.open.delete(id);
    const counted = o.counted;
    if (counted) this.count(o, id);
    if (!o.deferred) this.removeUndecided(o);
    this.touched.add(o.slot);
    return counted;
  }

  /**
   * The set-aside packets whose turn came at `now`: each has no undecided
   * packet of its slot that arrived before it, and leaves after those set
   * aside before it — or it waited maxWaitMs. Each leaves once; its verdict
   * is still to be given (and told).
   */
  ready(now: number): T[] {
    const out: T[] = [];
    const slots = new Set(this.touched);
    for (const [slot, w] of this.waiting) if (w.length && now - w[0]!.at >= this.maxWaitMs) slots.add(slot);
    for (const slot of slots) {
      const w = this.waiting.get(slot);
      if (!w) continue;
      while (w.length) {
        const head = w[0]!;
        const turn = head.n < (this.undecided.get(slot)?.[0] ?? Infinity);
        const late = now - head.at >= this.maxWaitMs;
        if (!turn && !late) break;
        w.shift();
        if (!turn) this.expired++;
        // Still open until its verdict, but no longer waiting: it counts as undecided again.
        const o = this.open.get(head.id);
        if (o) {
          o.deferred = false;
          this.insertUndecided(o);
        }
        out.push(head.item);
        // In its turn, one at a time per slot: the next waits for this one's verdict.
        if (turn) break;
      }
      if (!w.length) this.waiting.delete(slot);
    }
    this.touched.clear();
    return out;
  }

  /**
   * Counts ahead of time the verdict of each counted packet open for
   * maxWaitMs at `now` (its own verdict will not count again): the kernel's
   * rule lets its client's later answers pass again. Returns how many.
   */
  expireCounted(now: number): number {
    let n = 0;
    for (const [id, at] of this.countedOpen) {
      if (now - at < this.maxWaitMs) break;
      const o = this.open.get(id)!;
      this.count(o, id);
      this.heldTooLong++;
      n++;
    }
    return n;
  }

  /** When the longest-waiting packet must leave anyway, or the oldest counted one stops holding the kernel's rule; null if neither. */
  nextDeadline(): number | null {
    let t: number | null = null;
    for (const w of this.waiting.values())
      if (w.length && (t === null || w[0]!.at + this.maxWaitMs < t)) t = w[0]!.at + this.maxWaitMs;
    for (const at of this.countedOpen.values()) {
      if (t === null || at + this.maxWaitMs < t) t = at + this.maxWaitMs;
      break;
    }
    return t;
  }

  /** Whether `done` changed since the last call (then the kernel's copy must be written). */
  takeDirty(): boolean {
    const d = this.dirty;
    this.dirty = false;
    return d;
  }

  /** Packets waiting their turn now. */
  get waitingCount(): number {
    let n = 0;
    for (const w of this.waiting.values()) n += w.length;
    return n;
  }

  /** Whether slot `slot` has a packet without a verdict. */
  hasOpen(slot: number): boolean {
    return (this.undecided.get(slot)?.length ?? 0) > 0 || (this.waiting.get(slot)?.length ?? 0) > 0;
  }

  /**
   * Counts the kernel made that no verdict will match — segments the queue
   * never delivered (it was full, or the bridge restarted) — would hold a
   * slot's order for ever: a slot with nothing open here whose count stood
   * still since the last look is set to the kernel's. Returns the slots set.
   */
  resync(queued: Uint32Array, last: Uint32Array | null): number[] {
    const fixed: number[] = [];
    for (let s = 0; s < ORDER_SLOTS; s++) {
      if (queued[s] === this.done[s] || this.hasOpen(s)) continue;
      if (last === null || last[s] !== queued[s]) continue;
      this.done[s] = queued[s]!;
      this.dirty = true;
      fixed.push(s);
    }
    return fixed;
  }

  /** Counts open packet `id`'s verdict for its slot, once. */
  private count(o: Open, id: number): void {
    o.counted = false;
    this.countedOpen.delete(id);
    this.done[o.slot] = (this.done[o.slot]! + 1) >>> 0;
    this.dirty = true;
  }

  private removeUndecided(o: Open): void {
    const u = this.undecided.get(o.slot);
    if (!u) return;
    const i = u.indexOf(o.n);
    if (i >= 0) u.splice(i, 1);
    if (!u.length) this.undecided.delete(o.slot);
  }

  private insertUndecided(o: Open): void {
    let u = this.undecided.get(o.slot);
    if (!u) this.undecided.set(o.slot, (u = []));
    let i = u.length;
    while (i > 0 && u[i - 1]! > o.n) i--;
    u.splice(i, 0, o.n);
  }
}
