/**
 * P's D-SACK ACK given back to the kernel (bridge/primary/merge/dsack.ts):
 * the option and the two NOPs before it cut out, both checksums whole, every
 * other byte as it was; anything else left alone.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clearLoneDsack } from '../../../bridge/primary/merge/dsack.js';
import { checksum, pseudoHeaderSum } from '../../../bridge/wire/checksum.js';
import { WireError } from '../../../bridge/wire/error.js';
import { buildIpv4Tcp, parseIpv4Tcp, TCP_ACK_FLAG, TCP_FIN, TCP_PSH } from '../../../bridge/wire/tcp.js';
import { ipv4 } from '../../../net/addr.js';
import { refill } from './fixtures.js';

const SRC = ipv4('192.0.2.100');
const DST = ipv4('198.51.100.7');
const ACK = 0xfffffff0; // near the wrap: the comparison is modulo 2^32
const NOP = 1;
const TS = [NOP, NOP, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];

/** The option bytes Linux sends: NOP NOP SACK with these blocks (after NOP NOP TS, if `ts`). */
function linuxOptions(blocks: [number, number][], ts = true): number[] {
  const sack = Buffer.alloc(2 + 8 * blocks.length);
  sack[0] = 5;
  sack[1] = sack.length;
  blocks.forEach(([l, r], i) => {
    sack.writeUInt32BE(l >>> 0, 2 + 8 * i);
    sack.writeUInt32BE(r >>> 0, 6 + 8 * i);
  });
  return [...(ts ? TS : []), ...(blocks.length ? [NOP, NOP, ...sack] : [])];
}

/** An IPv4 packet of P's: an ACK of `ack` with these option bytes. */
function ackWith(opts: number[], extra: { ack?: number; flags?: number; payload?: string } = {}): Buffer {
  const bare = buildIpv4Tcp(
    { src: SRC, dst: DST },
    {
      srcPort: 6379,
      dstPort: 40000,
      seq: 123,
      ack: extra.ack ?? ACK,
      flags: extra.flags ?? TCP_ACK_FLAG,
      window: 500,
      urgent: 0,
      options: [],
      payload: Buffer.from(extra.payload ?? ''),
    },
  );
  const pkt = Buffer.concat([bare.subarray(0, 40), Buffer.from(opts), bare.subarray(40)]);
  pkt.writeUInt16BE(pkt.length, 2);
  pkt[32] = ((20 + opts.length) / 4) << 4;
  refill(pkt);
  return pkt;
}

function sumsOk(pkt: Buffer): boolean {
  const len = pkt.length - 20;
  return checksum(pkt, 0, 20) === 0 && checksum(pkt, 20, len, pseudoHeaderSum(SRC, DST, 6, len)) === 0;
}

describe('P’s D-SACK ACK, cleared for the kernel', () => {
  it('one block at or below the ACK: cut out with its NOPs, the ACK as Linux sends one without it, both sums whole', () => {
    for (const right of [ACK, (ACK - 1) >>> 0, (ACK - 100) >>> 0]) {
      for (const ts of [true, false]) {
        const pkt = ackWith(linuxOptions([[(right - 10) >>> 0, right]], ts));
        expect(sumsOk(pkt)).toBe(true);
        const out = clearLoneDsack(pkt);
        expect(out).not.toBeNull();
        expect(out!.equals(ackWith(ts ? TS : []))).toBe(true);
        expect(sumsOk(out!)).toBe(true);
        const p = parseIpv4Tcp(out!);
        if (p instanceof WireError) throw p;
        expect(p.tcp.options()).toEqual(ts ? [{ kind: 'timestamp', tsval: 1, tsecr: 2 }] : []);
      }
    }
  });

  it('leaves alone: a block above the ACK, two blocks, data, a FIN, no SACK, a SACK without its NOPs', () => {
    expect(clearLoneDsack(ackWith(linuxOptions([[ACK, (ACK + 10) >>> 0]])))).toBeNull();
    expect(
      clearLoneDsack(
        ackWith(
          linuxOptions([
            [(ACK - 20) >>> 0, (ACK - 10) >>> 0],
            [(ACK + 10) >>> 0, (ACK + 20) >>> 0],
          ]),
        ),
      ),
    ).toBeNull();
    const dsack = linuxOptions([[(ACK - 10) >>> 0, ACK]]);
    expect(clearLoneDsack(ackWith(dsack, { payload: 'x', flags: TCP_ACK_FLAG | TCP_PSH }))).toBeNull();
    expect(clearLoneDsack(ackWith(dsack, { flags: TCP_ACK_FLAG | TCP_FIN }))).toBeNull();
    expect(clearLoneDsack(ackWith(TS))).toBeNull();
    expect(clearLoneDsack(ackWith([...dsack.slice(14), NOP, NOP]))).toBeNull();
    expect(clearLoneDsack(Buffer.alloc(10))).toBeNull();
  });

  it('random blocks and ACKs: cleared exactly when one block ends at or below the ACK', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: -5000, max: 5000 }),
        fc.integer({ min: 1, max: 3 }),
        fc.boolean(),
        (ack, offset, nblocks, ts) => {
          const right = (ack + offset) >>> 0;
          const blocks = Array.from(
            { length: nblocks },
            (_, i) => [(right - 10 - i * 20) >>> 0, (right - i * 20) >>> 0] as [number, number],
          );
          const out = clearLoneDsack(ackWith(linuxOptions(blocks, ts), { ack }));
          expect(out !== null).toBe(nblocks === 1 && offset <= 0);
          if (out) expect(out.equals(ackWith(ts ? TS : [], { ack }))).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });
});
