import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WireError } from '../../bridge/wire/error.js';
import { ipAddr, ipAddrBytes, ipv4 } from '../../net/addr.js';
import {
  DIVERT_EXID,
  emitTcpOptions,
  findTcpOption,
  OPT_EXPERIMENT,
  OPT_SACK,
  OPT_TIMESTAMP,
  optionsLength,
  parseTcpOptions,
  type TcpOption,
} from '../../bridge/wire/tcp-options.js';
import { buildIpv4Tcp, parseIpv4Tcp, TCP_ACK_FLAG } from '../../bridge/wire/tcp.js';
import { tcpOptions, u32 } from './arbitraries.js';

function roundTrip(opts: TcpOption[]): TcpOption[] | WireError {
  const buf = Buffer.alloc(optionsLength(opts));
  const n = emitTcpOptions(opts, buf, 0);
  expect(n % 4).toBe(0);
  return parseTcpOptions(buf, 0, n);
}

describe('TCP options', () => {
  it('parse(emit(x)) == x for random option lists', () => {
    fc.assert(
      fc.property(tcpOptions, (opts) => {
        expect(roundTrip(opts)).toEqual(opts);
      }),
      { numRuns: 2000 },
    );
  });

  it('parses a Linux SYN option block (MSS, SACK-permitted, TS, NOP, wscale)', () => {
    const b = Buffer.from([2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
    expect(parseTcpOptions(b, 0, b.length)).toEqual([
      { kind: 'mss', mss: 1460 },
      { kind: 'sack-permitted' },
      { kind: 'timestamp', tsval: 1, tsecr: 0 },
      { kind: 'wscale', shift: 7 },
    ]);
    expect(findTcpOption(b, 0, b.length, OPT_TIMESTAMP)).toBe(6);
    expect(findTcpOption(b, 0, b.length, OPT_SACK)).toBe(-1);
  });

  it('carries the client address in the divert option (kind 253, ExID)', () => {
    const client = ipv4('192.0.2.10');
    const b = Buffer.alloc(8);
    emitTcpOptions([{ kind: 'divert', client }], b, 0);
    expect(b[0]).toBe(OPT_EXPERIMENT);
    expect(b[1]).toBe(8);
    expect(b.readUInt16BE(2)).toBe(DIVERT_EXID);
    expect(parseTcpOptions(b, 0, 8)).toEqual([{ kind: 'divert', client }]);
    expect(findTcpOption(b, 0, 8, OPT_EXPERIMENT, DIVERT_EXID)).toBe(0);
    expect(findTcpOption(b, 0, 8, OPT_EXPERIMENT, 0x1234)).toBe(-1);
    // Another experiment's ExID stays opaque.
    b.writeUInt16BE(0x1234, 2);
    expect(parseTcpOptions(b, 0, 8)).toEqual([
      { kind: 'unknown', type: 253, data: Buffer.from([0x12, 0x34, 192, 0, 2, 10]) },
    ]);
  });

  it('carries an IPv6 client address in a 20-byte divert option', () => {
    const client = ipAddr('2001:db8::10');
    const b = Buffer.alloc(20);
    emitTcpOptions([{ kind: 'divert', client }], b, 0);
    expect([b[0], b[1], b.readUInt16BE(2)]).toEqual([OPT_EXPERIMENT, 20, DIVERT_EXID]);
    expect(b.subarray(4).equals(ipAddrBytes(client))).toBe(true);
    expect(parseTcpOptions(b, 0, 20)).toEqual([{ kind: 'divert', client }]);
  });

  it('rejects options whose length is wrong for their kind', () => {
    const cases: number[][] = [
      [2, 3, 0, 0], // MSS of 3
      [3, 4, 7, 0], // wscale of 4
      [4, 3, 0, 0], // SACK-permitted of 3
      [5, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], // SACK not 2 + 8n
      [5, 2, 0, 0], // SACK with no block
      [8, 8, 0, 0, 0, 0, 0, 0], // timestamp of 8
      [253, 6, 0x74, 0x66, 0, 0], // divert ExID with the wrong length
      [253, 12, 0x74, 0x66, 0, 0, 0, 0, 0, 0, 0, 0], // neither an IPv4 (8) nor an IPv6 (20) divert option
      [2], // no length byte
    ];
    for (const c of cases) {
      const r = parseTcpOptions(Buffer.from(c), 0, c.length);
      expect(r, JSON.stringify(c)).toBeInstanceOf(WireError);
      expect((r as WireError).code).toBe('bad-option');
    }
  });

  it('stops at EOL and skips NOPs', () => {
    const b = Buffer.from([1, 1, 1, 0, 2, 1]);
    expect(parseTcpOptions(b, 0, b.length)).toEqual([]);
  });

  it('refuses to emit more than 40 bytes', () => {
    const opts: TcpOption[] = Array.from({ length: 5 }, () => ({ kind: 'timestamp', tsval: 0, tsecr: 0 }));
    expect(() => emitTcpOptions(opts, Buffer.alloc(60), 0)).toThrow(RangeError);
  });

  it('rewrites TSval/TSecr in place with a correct checksum', () => {
    fc.assert(
      fc.property(u32, u32, fc.constantFrom(0, 1, 2), (tsval, tsecr, nops) => {
        const options: TcpOption[] = [
          { kind: 'mss', mss: 1400 },
          { kind: 'timestamp', tsval: 1, tsecr: 2 },
        ];
        const pkt = buildIpv4Tcp(
          { src: 1, dst: 2 },
          {
            srcPort: 3,
            dstPort: 4,
            seq: 5,
            ack: 6,
            flags: TCP_ACK_FLAG,
            window: 7,
            urgent: 0,
            options,
            payload: Buffer.from('x'),
          },
        );
        // Shift the timestamp option by `nops` bytes (into the 2 bytes of padding) to exercise odd offsets.
        const { tcp } = parseIpv4Tcp(pkt) as Exclude<ReturnType<typeof parseIpv4Tcp>, WireError>;
        const start = tcp.optionsOffset;
        const raw = Buffer.from(pkt.subarray(start, tcp.optionsEnd));
        pkt.fill(1, start, start + nops);
        raw.copy(pkt, start + nops, 0, raw.length - nops);
        tcp.fillChecksum();
        const at = tcp.timestampOffset();
        expect(at).toBe(start + 4 + nops);
        expect(tcp.setTsval(tsval)).toBe(true);
        expect(tcp.setTsecr(tsecr)).toBe(true);
        expect(tcp.timestamp()).toEqual({ tsval, tsecr });
        expect(tcp.checksumValid()).toBe(true);
        expect(tcp.options()).toEqual([
          { kind: 'mss', mss: 1400 },
          { kind: 'timestamp', tsval, tsecr },
        ]);
      }),
      { numRuns: 300 },
    );
  });
});
