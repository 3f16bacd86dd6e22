/**
 * The TCP segment's option views and raw writes, against the option codec:
 * whatever a view reads or writes in place must be what parsing the bytes
 * afterwards says, with the header length unchanged and the other options
 * untouched.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WireError } from '../../bridge/wire/error.js';
import type { TcpOption } from '../../bridge/wire/tcp-options.js';
import type { TcpSegment } from '../../bridge/wire/tcp.js';
import { buildIpv4Tcp, parseIpv4Tcp, TCP_ACK_FLAG, TCP_ECE, TCP_SYN } from '../../bridge/wire/tcp.js';
import { tcpOptions as anyOptions, u16, u32 } from './arbitraries.js';

/** Option lists with at most one option of each kind the views look at (a segment has one of each; the views read the first). */
const tcpOptions = anyOptions.filter((opts) => {
  const kinds = opts.map((o) => o.kind).filter((k) => k !== 'unknown' && k !== 'divert');
  return new Set(kinds).size === kinds.length;
});

function segment(options: TcpOption[], flags = TCP_ACK_FLAG): TcpSegment {
  const pkt = buildIpv4Tcp(
    { src: 1, dst: 2 },
    { srcPort: 3, dstPort: 4, seq: 5, ack: 6, flags, window: 7, urgent: 0, options, payload: Buffer.from('data') },
  );
  const r = parseIpv4Tcp(pkt);
  if (r instanceof WireError) throw r;
  return r.tcp;
}

function parsed(seg: TcpSegment): TcpOption[] {
  const o = seg.options();
  if (o instanceof WireError) throw o;
  return o;
}

const first = <K extends TcpOption['kind']>(opts: TcpOption[], kind: K) =>
  opts.find((o) => o.kind === kind) as Extract<TcpOption, { kind: K }> | undefined;
const others = (opts: TcpOption[], ...kinds: Array<TcpOption['kind']>) => opts.filter((o) => !kinds.includes(o.kind));

describe('TCP segment views', () => {
  it('timestamp() and sackBlocks() read what the codec parses', () => {
    fc.assert(
      fc.property(tcpOptions, (opts) => {
        const seg = segment(opts);
        const ts = first(opts, 'timestamp');
        expect(seg.timestamp()).toEqual(ts ? { tsval: ts.tsval, tsecr: ts.tsecr } : null);
        expect(seg.sackBlocks()).toEqual(first(opts, 'sack')?.blocks ?? []);
        expect(seg.hasSack()).toBe(first(opts, 'sack') !== undefined);
        const mss = first(opts, 'mss');
        expect(seg.mss()).toBe(mss ? mss.mss : null);
      }),
      { numRuns: 500 },
    );
  });

  it('writeSackBlocks: the blocks that fit, the rest NOPs, other options untouched', () => {
    fc.assert(
      fc.property(tcpOptions, fc.array(fc.tuple(u32, u32), { maxLength: 5 }), (opts, blocks) => {
        const seg = segment(opts);
        const room = first(opts, 'sack')?.blocks.length ?? 0;
        const hl = seg.headerLength;
        seg.writeSackBlocks(blocks);
        expect(seg.headerLength).toBe(hl);
        const after = parsed(seg);
        const want = blocks.slice(0, room);
        expect(first(after, 'sack')?.blocks ?? []).toEqual(want);
        if (room === 0 || want.length === 0) expect(first(after, 'sack')).toBeUndefined();
        expect(others(after, 'sack')).toEqual(others(opts, 'sack'));
        seg.fillChecksum();
        expect(seg.checksumValid()).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('shiftSackBlocks moves both edges of every block by delta, mod 2^32', () => {
    fc.assert(
      fc.property(tcpOptions, u32, (opts, delta) => {
        const seg = segment(opts);
        seg.shiftSackBlocks(delta);
        const want = (first(opts, 'sack')?.blocks ?? []).map(([l, r]) => [(l + delta) >>> 0, (r + delta) >>> 0]);
        expect(seg.sackBlocks()).toEqual(want);
        expect(others(parsed(seg), 'sack')).toEqual(others(opts, 'sack'));
      }),
      { numRuns: 300 },
    );
  });

  it('the raw writes change their field only; fillChecksum makes the sum right again', () => {
    fc.assert(
      fc.property(tcpOptions, u32, u32, u16, u32, u32, (opts, seq, ack, win, tsval, tsecr) => {
        const seg = segment(opts, TCP_ACK_FLAG | TCP_ECE);
        seg.writeSeq(seq);
        seg.writeAck(ack);
        seg.writeWindow(win);
        seg.writeTsval(tsval);
        seg.writeTsecr(tsecr);
        seg.clearFlags(TCP_ECE);
        expect([seg.seq, seg.ack, seg.window, seg.flags]).toEqual([seq, ack, win, TCP_ACK_FLAG]);
        expect(seg.timestamp()).toEqual(first(opts, 'timestamp') ? { tsval, tsecr } : null);
        expect(others(parsed(seg), 'timestamp')).toEqual(others(opts, 'timestamp'));
        seg.fillChecksum();
        expect(seg.checksumValid()).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('SYN option rewrites: MSS, window scale or none, SACK-permitted and timestamps removed', () => {
    fc.assert(
      fc.property(
        tcpOptions,
        u16,
        fc.option(fc.integer({ min: 0, max: 14 })),
        fc.boolean(),
        fc.boolean(),
        (opts, mss, ws, dropSack, dropTs) => {
          const seg = segment(opts, TCP_SYN);
          const hl = seg.headerLength;
          seg.writeMss(mss);
          seg.writeWscale(ws);
          if (dropSack) seg.removeSackPermitted();
          if (dropTs) seg.removeTimestamps();
          expect(seg.headerLength).toBe(hl);
          const after = parsed(seg);
          expect(first(after, 'mss')?.mss).toBe(first(opts, 'mss') ? mss : undefined);
          expect(first(after, 'wscale')?.shift).toBe(first(opts, 'wscale') && ws !== null ? ws : undefined);
          expect(first(after, 'sack-permitted') !== undefined).toBe(
            first(opts, 'sack-permitted') !== undefined && !dropSack,
          );
          expect(first(after, 'timestamp') !== undefined).toBe(first(opts, 'timestamp') !== undefined && !dropTs);
          expect(seg.timestamp() !== null).toBe(first(after, 'timestamp') !== undefined);
          expect(others(after, 'mss', 'wscale', 'sack-permitted', 'timestamp')).toEqual(
            others(opts, 'mss', 'wscale', 'sack-permitted', 'timestamp'),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});
