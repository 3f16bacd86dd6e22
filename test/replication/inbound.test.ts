/** The primary's input queue tells the client's segments from the secondary's copies (bridge/primary/inbound.ts), in both families. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyInbound } from '../../bridge/primary/inbound.js';
import { buildIpTcp } from '../../bridge/wire/ip.js';
import { TCP_ACK_FLAG } from '../../bridge/wire/tcp.js';
import {
  A_P,
  A_P6,
  A_S,
  A_S6,
  CPORT,
  dualStackDiverter,
  FAMILIES,
  SPORT,
  VIP,
  VIP6,
} from '../../rig/in-process/harness.js';
import { u32 } from '../wire/arbitraries.js';

const SERVICES = { v4: VIP, v6: VIP6 };
const diverter = dualStackDiverter('02:00:00:00:00:02');

const seg = (src: number | string, dst: number | string, sport: number, dport: number) =>
  buildIpTcp(
    { src, dst },
    {
      srcPort: sport,
      dstPort: dport,
      seq: 1,
      ack: 2,
      flags: TCP_ACK_FLAG,
      window: 9,
      urgent: 0,
      options: [],
      payload: Buffer.from('x'),
    },
  );

describe('the primary’s input queue: whose packet', () => {
  it.each(FAMILIES)('over %s: the client’s, S’s on the kernel path, S’s diverted on the pcap path', (_name, fam) => {
    expect(classifyInbound(seg(fam.client, fam.service, CPORT, SPORT), SERVICES)).toEqual({ from: 'client' });
    expect(classifyInbound(seg(fam.service, fam.client, SPORT, CPORT), SERVICES)).toEqual({
      from: 'secondary',
      path: 'kernel',
      client: fam.client,
    });
    const diverted = diverter.divert(seg(fam.service, fam.client, SPORT, CPORT), false);
    if (typeof diverted === 'string') throw new Error(diverted);
    expect(classifyInbound(diverted, SERVICES)).toEqual({ from: 'secondary', path: 'pcap', client: fam.client });
  });

  it('a copy without the option names no client; nor does an option naming the other family', () => {
    expect(classifyInbound(seg(A_S, A_P, SPORT, CPORT), SERVICES)).toEqual({
      from: 'secondary',
      path: 'pcap',
      client: null,
    });
    const withOption = (src: number | string, dst: number | string, client: number | string) =>
      buildIpTcp(
        { src, dst },
        {
          srcPort: SPORT,
          dstPort: CPORT,
          seq: 1,
          ack: 2,
          flags: TCP_ACK_FLAG,
          window: 9,
          urgent: 0,
          options: [{ kind: 'divert', client }],
          payload: Buffer.alloc(0),
        },
      );
    expect(classifyInbound(withOption(A_S, A_P, 0x0a000001), SERVICES)).toMatchObject({ client: 0x0a000001 });
    expect(classifyInbound(withOption(A_S, A_P, A_S6), SERVICES)).toMatchObject({ path: 'pcap', client: null });
    expect(classifyInbound(withOption(A_S6, A_P6, 0x0a000001), SERVICES)).toMatchObject({ path: 'pcap', client: null });
    expect(classifyInbound(withOption(A_S6, A_P6, A_S6), SERVICES)).toMatchObject({ client: A_S6 });
  });

  it('IPv6 without an IPv6 service address is never the client’s; short or odd packets are nobody’s', () => {
    expect(classifyInbound(seg(A_S6, VIP6, CPORT, SPORT), { v4: VIP, v6: null })?.from).toBe('secondary');
    expect(classifyInbound(Buffer.alloc(0), SERVICES)).toBeNull();
    expect(classifyInbound(Buffer.from([0x45, 0, 0]), SERVICES)).toBeNull();
    expect(classifyInbound(Buffer.alloc(39, 0x60), SERVICES)).toBeNull();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), u32, (bytes, x) => {
        const b = Buffer.from(bytes);
        if (b.length) b[0] = (b[0]! & 0x0f) | ((x % 3 === 0 ? 4 : x % 3 === 1 ? 6 : 5) << 4);
        const r = classifyInbound(b, SERVICES);
        if (r && r.from === 'secondary' && r.client !== null)
          expect(typeof r.client === 'string').toBe(b[0]! >> 4 === 6);
      }),
      { numRuns: 2000 },
    );
  });
});
