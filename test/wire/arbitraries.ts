/** fast-check arbitraries for wire-layer values, shared by the wire tests. */
import { ip6Addr } from '../../net/addr.js';
import fc from 'fast-check';
import type { TcpOption } from '../../bridge/wire/tcp-options.js';
import {
  DIVERT_EXID,
  OPT_EXPERIMENT,
  OPT_MSS,
  OPT_NOP,
  OPT_EOL,
  OPT_SACK,
  OPT_SACK_PERMITTED,
  OPT_TIMESTAMP,
  OPT_WSCALE,
} from '../../bridge/wire/tcp-options.js';
import type { TcpRepr } from '../../bridge/wire/tcp.js';

export const u32 = fc.integer({ min: 0, max: 0xffffffff });
export const u16 = fc.integer({ min: 0, max: 0xffff });
export const u8 = fc.integer({ min: 0, max: 0xff });

const KNOWN = new Set([
  OPT_EOL,
  OPT_NOP,
  OPT_MSS,
  OPT_WSCALE,
  OPT_SACK_PERMITTED,
  OPT_SACK,
  OPT_TIMESTAMP,
  OPT_EXPERIMENT,
]);

export const tcpOption: fc.Arbitrary<TcpOption> = fc.oneof(
  u16.map((mss) => ({ kind: 'mss', mss }) as const),
  u8.map((shift) => ({ kind: 'wscale', shift }) as const),
  fc.constant({ kind: 'sack-permitted' } as const),
  fc.array(fc.tuple(u32, u32), { minLength: 1, maxLength: 3 }).map((blocks) => ({ kind: 'sack', blocks }) as const),
  fc.tuple(u32, u32).map(([tsval, tsecr]) => ({ kind: 'timestamp', tsval, tsecr }) as const),
  u32.map((client) => ({ kind: 'divert', client }) as const),
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => ({ kind: 'divert', client: ip6Addr(b) }) as const),
  fc
    .tuple(
      u8.filter((k) => !KNOWN.has(k)),
      fc.uint8Array({ maxLength: 8 }),
    )
    .map(([type, data]) => ({ kind: 'unknown', type, data: Buffer.from(data) }) as const),
);

/** Option lists that fit in 40 bytes. */
export const tcpOptions: fc.Arbitrary<TcpOption[]> = fc
  .array(tcpOption, { maxLength: 6 })
  .filter((opts) => opts.reduce((n, o) => n + optionBytes(o), 0) <= 40);

function optionBytes(o: TcpOption): number {
  switch (o.kind) {
    case 'mss':
      return 4;
    case 'wscale':
      return 3;
    case 'sack-permitted':
      return 2;
    case 'sack':
      return 2 + 8 * o.blocks.length;
    case 'timestamp':
      return 10;
    case 'divert':
      return typeof o.client === 'string' ? 20 : 8;
    case 'unknown':
      return 2 + o.data.length;
  }
}

export const tcpRepr: fc.Arbitrary<TcpRepr> = fc.record({
  srcPort: u16,
  dstPort: u16,
  seq: u32,
  ack: u32,
  flags: fc.integer({ min: 0, max: 0x1ff }),
  window: u16,
  urgent: u16,
  options: tcpOptions,
  payload: fc.uint8Array({ maxLength: 1500 }).map((a) => Buffer.from(a)),
});

export { DIVERT_EXID };
