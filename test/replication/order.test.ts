/**
 * The order of one client's answers across the kernel's release and the
 * bridge's queue (bridge/primary/order.ts): a segment set aside leaves only
 * after every earlier packet of its client's slot has its verdict, in arrival
 * order, once; verdict counts are what the kernel compares with.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AnswerOrder, ORDER_SLOTS, orderSlot } from '../../bridge/primary/order.js';
import { ipv4 } from '../../net/addr.js';

const A = ipv4('198.51.100.7');
const B = ipv4('198.51.100.99');

describe('the order of a client’s answers', () => {
  it('hashes a client onto a slot as the kernel does (Fibonacci hashing onto 8 bits)', () => {
    // (client · 2654435761) mod 2^32, top 8 bits: the C in native/bpf/maps.h.
    for (const c of [0, 1, A, B, 0xffffffff, 0x80000000]) {
      const wide = (BigInt(c >>> 0) * 2654435761n) % 2n ** 32n;
      expect(orderSlot(c)).toBe(Number(wide >> 24n));
    }
    expect(orderSlot(A)).not.toBe(orderSlot(B));
  });

  it('a segment behind an open one of its client waits for that verdict; another client’s does not', () => {
    const o = new AnswerOrder<string>();
    expect(o.arrive(1, A)).toBe(false); // the handshake's ACK: the merger holds it
    expect(o.arrive(2, A)).toBe(true); // the control connection's answer: behind it
    o.defer(2, 'answer', 0);
    expect(o.arrive(3, B)).toBe(false);
    o.verdict(3);
    expect(o.ready(0)).toEqual([]);
    expect(o.waitingCount).toBe(1);
    o.verdict(1);
    expect(o.ready(0)).toEqual(['answer']);
    expect(o.ready(0)).toEqual([]);
    o.verdict(2);
    expect(o.done[orderSlot(A)]).toBe(2);
    expect(o.done[orderSlot(B)]).toBe(1);
    expect(o.takeDirty()).toBe(true);
    expect(o.takeDirty()).toBe(false);
    expect(o.hasOpen(orderSlot(A))).toBe(false);
  });

  it('counts only the verdicts of packets the kernel counted; an uncounted one waits and holds its slot the same', () => {
    const o = new AnswerOrder<number>();
    expect(o.arrive(1, A)).toBe(false); // on its own account: counted
    expect(o.arrive(2, A, false)).toBe(true); // marked: only waits
    o.defer(2, 2, 0);
    expect(o.arrive(3, A, false)).toBe(true);
    o.defer(3, 3, 0);
    // A counted verdict changes the counts (the shell writes them to the kernel at once); an uncounted one does not.
    expect(o.verdict(1)).toBe(true);
    expect(o.done[orderSlot(A)]).toBe(1);
    expect(o.ready(0)).toEqual([2]);
    expect(o.verdict(2)).toBe(false);
    expect(o.ready(0)).toEqual([3]);
    expect(o.verdict(3)).toBe(false);
    expect(o.verdict(3)).toBe(false); // given twice: the second is unknown
    expect(o.done[orderSlot(A)]).toBe(1);
    expect(o.hasOpen(orderSlot(A))).toBe(false);
    // Nothing counted is open: a resync may set the slot to the kernel's.
    const queued = new Uint32Array(ORDER_SLOTS);
    queued[orderSlot(A)] = 1;
    expect(o.resync(queued, queued)).toEqual([]);
  });

  it('a counted packet holds the kernel’s rule at most maxWaitMs: then its verdict is counted ahead, once', () => {
    const o = new AnswerOrder<number>(50);
    o.arrive(1, A, true, 1000); // the merger holds it (its secondary lags)
    o.arrive(2, A, false, 1010);
    o.arrive(3, B, true, 1020);
    expect(o.nextDeadline()).toBe(1050);
    expect(o.expireCounted(1049)).toBe(0);
    expect(o.done[orderSlot(A)]).toBe(0);
    o.takeDirty();
    expect(o.expireCounted(1050)).toBe(1);
    expect(o.done[orderSlot(A)]).toBe(1);
    expect(o.takeDirty()).toBe(true);
    expect(o.heldTooLong).toBe(1);
    expect(o.nextDeadline()).toBe(1070);
    // Still open for the bridge's own order: a later packet of its slot waits for it.
    expect(o.hasOpen(orderSlot(A))).toBe(true);
    // Its verdict, when it comes, counts no more; B's counts once, not expired.
    expect(o.verdict(1)).toBe(false);
    expect(o.verdict(3)).toBe(true);
    expect(o.expireCounted(5000)).toBe(0);
    expect(o.done[orderSlot(A)]).toBe(1);
    expect(o.done[orderSlot(B)]).toBe(1);
    expect(o.nextDeadline()).toBe(null);
  });

  it('a later packet does not hold an earlier one that waits', () => {
    const o = new AnswerOrder<number>();
    o.arrive(1, A);
    o.arrive(2, A);
    o.defer(2, 2, 0);
    o.arrive(3, A); // arrived after the one set aside: does not hold it
    o.verdict(1);
    expect(o.ready(0)).toEqual([2]);
  });

  it('waiting segments leave one at a time, each after the previous one’s verdict', () => {
    const o = new AnswerOrder<number>();
    o.arrive(10, A);
    for (const id of [11, 12, 13]) {
      expect(o.arrive(id, A)).toBe(true);
      o.defer(id, id, 0);
    }
    o.verdict(10);
    expect(o.ready(0)).toEqual([11]);
    expect(o.ready(0)).toEqual([]); // 11 has no verdict yet
    o.verdict(11);
    expect(o.ready(0)).toEqual([12]);
    o.verdict(12);
    expect(o.ready(0)).toEqual([13]);
    o.verdict(13);
    expect(o.waitingCount).toBe(0);
    expect(o.done[orderSlot(A)]).toBe(4);
  });

  it('a segment waits its turn at most maxWaitMs: behind an answer held for long, it leaves anyway, counted; the next in line with it', () => {
    const o = new AnswerOrder<number>(50);
    o.arrive(1, A, true, 1010); // held by the merger for seconds (its secondary lags)
    for (const id of [2, 3]) {
      o.arrive(id, A, false, 1000 + id); // marked: the kernel would release them
      o.defer(id, id, 1000 + id);
    }
    expect(o.nextDeadline()).toBe(1052);
    expect(o.ready(1051)).toEqual([]);
    expect(o.ready(1052)).toEqual([2]);
    expect(o.ready(1053)).toEqual([3]);
    expect(o.expired).toBe(2);
    // The held one still holds the kernel's rule, until 1060.
    expect(o.nextDeadline()).toBe(1060);
    o.verdict(2);
    o.verdict(3);
    o.verdict(1);
    expect(o.nextDeadline()).toBeNull();
    expect(o.done[orderSlot(A)]).toBe(1);
  });

  it('refuses to set aside what is not open, and ignores verdicts of packets it never saw (the inbound queue’s)', () => {
    const o = new AnswerOrder<number>();
    expect(() => o.defer(5, 5, 0)).toThrow(/not open/);
    o.verdict(99);
    expect(o.takeDirty()).toBe(false);
  });

  it('resync: a slot whose kernel count stood still for a look with nothing open takes the kernel’s count; not before, not with a packet open', () => {
    const o = new AnswerOrder<number>();
    const queued = new Uint32Array(ORDER_SLOTS);
    queued[orderSlot(A)] = 5; // five counted, none delivered
    queued[orderSlot(B)] = 2;
    o.arrive(1, B); // B has one open
    expect(o.resync(queued, null)).toEqual([]); // the first look
    expect(o.resync(queued, queued.slice())).toEqual([orderSlot(A)]);
    expect(o.done[orderSlot(A)]).toBe(5);
    expect(o.done[orderSlot(B)]).toBe(0);
    const moved = queued.slice();
    moved[orderSlot(B)] = 3;
    o.verdict(1);
    expect(o.resync(moved, queued)).toEqual([]); // B's count moved since the last look
  });

  it('random interleavings: each set-aside packet leaves once, after every earlier packet of its slot had its verdict, in arrival order; done counts the verdicts of the counted ones', () => {
    const clients = [A, B, ipv4('203.0.113.1')];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(2), fc.boolean(), fc.nat(9), fc.boolean()), { minLength: 1, maxLength: 60 }),
        (script) => {
          const o = new AnswerOrder<number>();
          const arrivalOf = new Map<number, number>();
          const slotOf = new Map<number, number>();
          const open: number[] = [];
          const decided = new Set<number>();
          const left: number[] = [];
          const verdicts = new Map<number, number>();
          const counted = new Set<number>();
          let id = 0;
          const give = (v: number) => {
            open.splice(open.indexOf(v), 1);
            decided.add(v);
            if (counted.has(v)) verdicts.set(slotOf.get(v)!, (verdicts.get(slotOf.get(v)!) ?? 0) + 1);
            o.verdict(v);
          };
          const drain = () => {
            for (let r = o.ready(0); r.length; r = o.ready(0)) {
              for (const v of r) {
                // Every earlier packet of its slot has its verdict.
                for (const [w, n] of arrivalOf)
                  if (slotOf.get(w) === slotOf.get(v) && n < arrivalOf.get(v)! && w !== v)
                    expect(decided.has(w)).toBe(true);
                left.push(v);
              }
            }
          };
          for (const [client, deferIt, pick, isCounted] of script) {
            const c = clients[client]!;
            const me = id++;
            arrivalOf.set(me, me);
            slotOf.set(me, orderSlot(c));
            if (isCounted) counted.add(me);
            const ahead = o.arrive(me, c, isCounted);
            open.push(me);
            if (ahead && deferIt) o.defer(me, me, 0);
            // Give a verdict to some open packet that is not waiting.
            const candidates = open.filter((v) => !o['waiting'].get(slotOf.get(v)!)?.some((w) => w.id === v));
            if (candidates.length) give(candidates[pick % candidates.length]!);
            drain();
            if (pick === 9) {
              // Every counted packet still open has held the kernel's rule long enough: counted now, once.
              let held = 0;
              for (const v of open)
                if (counted.delete(v)) {
                  verdicts.set(slotOf.get(v)!, (verdicts.get(slotOf.get(v)!) ?? 0) + 1);
                  held++;
                }
              expect(o.expireCounted(Number.MAX_SAFE_INTEGER)).toBe(held);
            }
          }
          // Settle: verdicts for everything, in arrival order.
          for (let guard = 0; open.length && guard < 1000; guard++) {
            const candidates = open.filter((v) => !o['waiting'].get(slotOf.get(v)!)?.some((w) => w.id === v));
            if (!candidates.length) break;
            give(candidates[0]!);
            drain();
          }
          expect(open).toEqual([]);
          expect(new Set(left).size).toBe(left.length);
          for (let slot = 0; slot < ORDER_SLOTS; slot++) expect(o.done[slot]).toBe(verdicts.get(slot) ?? 0);
          // Expiry after everything had its verdict counts nothing again.
          expect(o.expireCounted(Number.MAX_SAFE_INTEGER)).toBe(0);
          expect(o.waitingCount).toBe(0);
        },
      ),
      { numRuns: 500 },
    );
  });
});
