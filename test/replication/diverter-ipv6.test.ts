/** The secondary's diverter over IPv6 (the paper's pcap path): a 20-byte divert option, room made for it, the MSS clamp, prompts, and a connection merged end to end. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WireError } from '../../bridge/wire/error.js';
import { emitEthernet, ETHERTYPE_IPV6 } from '../../bridge/wire/ethernet.js';
import { mac } from '../../net/addr.js';
import { buildIpTcp, parseIpTcp } from '../../bridge/wire/ip.js';
import { parseTcpRepr, TCP_ACK_FLAG, TCP_RST, TCP_SYN, type TcpRepr, type TcpSegment } from '../../bridge/wire/tcp.js';
import { MAX_OPTIONS_LEN, OPT_DIVERT6_LEN, type TcpOption } from '../../bridge/wire/tcp-options.js';
import { PortMatcher } from '../../net/ports.js';
import { Diverter } from '../../bridge/secondary/diverter.js';
import { clampedMss, divertedClient } from '../../bridge/wire/divert.js';
import { Merger } from '../../bridge/primary/merger.js';
import {
  A_P,
  A_P6,
  A_S,
  A_S6,
  CLIENT6,
  CPORT,
  Pair,
  RecordingSink,
  SPORT,
  V6,
  VIP,
  VIP6,
} from '../../rig/in-process/harness.js';
import { tcpOptions } from '../wire/arbitraries.js';

const S6 = A_S6;
const P6 = A_P6;
const V6_ADDRS = { service: VIP6, self: S6, primary: P6 };
const PRIMARY_MAC = '02:00:00:00:00:02';

const diverter = (v6: typeof V6_ADDRS | null = V6_ADDRS) =>
  new Diverter({
    service: VIP,
    self: A_S,
    primary: A_P,
    v6,
    ports: new PortMatcher([SPORT]),
    mtu: 1500,
    primaryMac: PRIMARY_MAC,
  });

/** A segment of S's TCP to the IPv6 client. */
function fromS(options: TcpOption[], payload = Buffer.from('reply'), flags = TCP_ACK_FLAG): Buffer {
  return buildIpTcp(
    { src: VIP6, dst: CLIENT6 },
    { srcPort: SPORT, dstPort: CPORT, seq: 123, ack: 456, flags, window: 99, urgent: 0, options, payload },
  );
}

/** A client frame to the service, as the secondary captures it (to the primary's MAC). */
function clientFrame(options: TcpOption[], flags = TCP_ACK_FLAG, payload = Buffer.alloc(0)): Buffer {
  const pkt = buildIpTcp(
    { src: CLIENT6, dst: VIP6 },
    { srcPort: CPORT, dstPort: SPORT, seq: 5000, ack: 124, flags, window: 500, urgent: 0, options, payload },
  );
  return emitEthernet(mac(PRIMARY_MAC), mac('02:00:00:00:00:0a'), ETHERTYPE_IPV6, pkt);
}

/** A diverted packet's TCP segment and its value (a skip reason or a malformed packet fails the test). */
function parsedDiverted(out: Buffer | string): { tcp: TcpSegment; repr: TcpRepr } {
  if (typeof out === 'string') throw new Error(out);
  const p = parseIpTcp(out);
  if (p instanceof WireError) throw p;
  const repr = parseTcpRepr(p.tcp);
  if (repr instanceof WireError) throw repr;
  return { tcp: p.tcp, repr };
}

describe('diverter over IPv6: S’s output to the primary', () => {
  it('readdresses to a_s → a_p, carries the client’s 16 bytes in a 20-byte option, and makes room by SACK alone', () => {
    fc.assert(
      fc.property(
        // At most one SACK option, as every stack sends.
        tcpOptions.filter((o) => !o.some((x) => x.kind === 'divert') && o.filter((x) => x.kind === 'sack').length <= 1),
        fc.uint8Array({ maxLength: 1400 }),
        (options, payload) => {
          const original = fromS(options, Buffer.from(payload));
          const before = parseIpTcp(original);
          if (before instanceof WireError) throw before;
          const room = MAX_OPTIONS_LEN - (before.tcp.headerLength - 20);
          const out = diverter().divert(original, false);
          if (out === 'no-option-room') {
            // Only when even without its SACK option the rest leaves no 20 bytes.
            const sack = options.find((o) => o.kind === 'sack');
            const sackLen = sack && sack.kind === 'sack' ? 2 + 8 * sack.blocks.length : 0;
            expect(room + sackLen).toBeLessThan(OPT_DIVERT6_LEN + 3);
            return;
          }
          const { tcp, repr } = parsedDiverted(out);
          expect([tcp.src, tcp.dst]).toEqual([S6, P6]);
          expect(tcp.checksumValid()).toBe(true);
          expect(divertedClient(tcp)).toBe(CLIENT6);
          expect(tcp.headerLength % 4).toBe(0);
          expect(repr.payload.equals(Buffer.from(payload))).toBe(true);
          // Every option but SACK comes through as it was; SACK keeps its first blocks or goes.
          const rest = (o: TcpOption[]) => o.filter((x) => x.kind !== 'sack' && x.kind !== 'divert');
          const orig = parseTcpRepr(before.tcp);
          if (orig instanceof WireError) throw orig;
          expect(rest(repr.options)).toEqual(rest(orig.options));
          const sackOut = repr.options.find((x) => x.kind === 'sack');
          const sackIn = orig.options.find((x) => x.kind === 'sack');
          if (sackOut?.kind === 'sack' && sackIn?.kind === 'sack')
            expect(sackIn.blocks.slice(0, sackOut.blocks.length)).toEqual(sackOut.blocks);
          if (room >= OPT_DIVERT6_LEN)
            expect(repr.options).toEqual([...orig.options, { kind: 'divert', client: CLIENT6 }]);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('options that leave less room than a SACK block lose the SACK option whole, padded to whole words', () => {
    const d = diverter();
    const other: TcpOption = { kind: 'unknown', type: 30, data: Buffer.from([1, 2]) };
    // 10 + 4 + 10 bytes of options: 20 more do not fit, and a SACK option of no blocks is none.
    const out = d.divert(
      fromS([{ kind: 'timestamp', tsval: 1, tsecr: 2 }, other, { kind: 'sack', blocks: [[10, 20]] }]),
      false,
    );
    const { tcp, repr } = parsedDiverted(out);
    expect(repr.options).toEqual([
      { kind: 'timestamp', tsval: 1, tsecr: 2 },
      other,
      { kind: 'divert', client: CLIENT6 },
    ]);
    expect(tcp.headerLength).toBe(20 + 36); // 14 bytes kept, 2 of padding, the option's 20
    expect(d.stats.sackTrimmed).toBe(1);
    // Two blocks where one fits: the first is kept.
    const two = d.divert(
      fromS([
        { kind: 'timestamp', tsval: 1, tsecr: 2 },
        {
          kind: 'sack',
          blocks: [
            [10, 20],
            [30, 40],
          ],
        },
      ]),
      false,
    );
    expect(parsedDiverted(two).repr.options).toEqual([
      { kind: 'timestamp', tsval: 1, tsecr: 2 },
      { kind: 'sack', blocks: [[10, 20]] },
      { kind: 'divert', client: CLIENT6 },
    ]);
  });

  it('leaves IPv6 alone without IPv6 addresses configured, and another source than the service', () => {
    expect(diverter(null).divert(fromS([]), false)).toBe('not-service');
    const other = buildIpTcp(
      { src: S6, dst: CLIENT6 },
      {
        srcPort: SPORT,
        dstPort: CPORT,
        seq: 1,
        ack: 1,
        flags: TCP_ACK_FLAG,
        window: 9,
        urgent: 0,
        options: [],
        payload: Buffer.alloc(0),
      },
    );
    expect(diverter().divert(other, false)).toBe('not-service');
  });
});

describe('diverter over IPv6: the client’s frames into S’s stack', () => {
  it('injects the client’s IPv6 packet with its MSS clamped so that the 20-byte option fits', () => {
    const d = diverter();
    const pkt = d.inbound(clientFrame([{ kind: 'mss', mss: 1440 }, { kind: 'sack-permitted' }], TCP_SYN));
    expect(pkt).not.toBeNull();
    const p = parseIpTcp(pkt!);
    if (p instanceof WireError) throw p;
    expect([p.tcp.src, p.tcp.dst]).toEqual([CLIENT6, VIP6]);
    expect(p.tcp.checksumValid()).toBe(true);
    expect(p.tcp.mss()).toBe(clampedMss(1500, true));
    expect(clampedMss(1500, true)).toBe(1500 - 40 - 20 - 20);
    expect(d.stats.mssClamped).toBe(1);
    expect(diverter(null).inbound(clientFrame([], TCP_SYN))).toBeNull();
  });

  it('prompts and resets a tracked IPv6 connection with IPv6 packets', () => {
    const d = diverter();
    d.inbound(clientFrame([{ kind: 'timestamp', tsval: 77, tsecr: 1 }], TCP_ACK_FLAG, Buffer.from('req')));
    const [prompt] = d.prompts();
    const p = parseIpTcp(prompt!);
    if (p instanceof WireError) throw p;
    expect([p.tcp.src, p.tcp.dst, p.tcp.seq, p.tcp.ack]).toEqual([CLIENT6, VIP6, 5002, 124]);
    expect(p.tcp.checksumValid()).toBe(true);
    const r = d.resets([{ client: CLIENT6, clientPort: CPORT, servicePort: SPORT }]);
    expect(r.closed).toBe(1);
    const parsed = r.packets.map((x) => parseIpTcp(x));
    for (const x of parsed) if (x instanceof WireError) throw x;
    const segs = parsed.map((x) => (x as Exclude<typeof x, WireError>).tcp);
    expect(segs.map((s) => [s.src, s.dst, s.flags])).toEqual([
      [CLIENT6, VIP6, TCP_RST],
      [VIP6, CLIENT6, TCP_RST],
      [VIP6, CLIENT6, TCP_ACK_FLAG],
    ]);
    expect(d.trackedConnections).toBe(0);
  });
});

describe('diverted IPv6 copies through the merger', () => {
  it('a connection whose S copies arrive diverted (the client read from the option) merges as the kernel path’s do', () => {
    const pair = new Pair({ isn: 1000, ts: 50 }, { isn: 9000, ts: 90 }, {}, null, V6);
    const d = diverter();
    const viaOption = (pkt: Buffer) => {
      const out = d.divert(pkt, false);
      if (typeof out === 'string') throw new Error(out);
      const p = parseIpTcp(out);
      if (p instanceof WireError) throw p;
      pair.merger.fromSecondary(900_000 + d.stats.diverted, out, divertedClient(p.tcp)!, pair.now);
    };
    pair.fromClient(pair.clientSeg({ seq: 5000, ack: 0, flags: TCP_SYN, options: [{ kind: 'mss', mss: 1400 }] }));
    pair.fromP(pair.p.synAck(5000));
    viaOption(pair.s.synAck(5000));
    const id = pair.fromP(pair.p.data(Buffer.from('hello'), 5001));
    viaOption(pair.s.data(Buffer.from('hello'), 5001));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.sink.stream(9000).toString()).toBe('hello');
    expect(pair.sink.toClient.every((t) => t.checksumOk)).toBe(true);
    expect(pair.merger.stats.divergences).toBe(0);
    expect(new Merger({ service: VIP }, new RecordingSink()).stats.divertedSegments).toBe(0);
  });
});
