/** Checksums are verified before the merger rewrites a segment (merger.ts). */
import { describe, expect, it } from 'vitest';
import { fold, pseudoHeaderSum } from '../../../bridge/wire/checksum.js';
import type { WireError } from '../../../bridge/wire/error.js';
import { parseIpv4Tcp, TCP_ACK_FLAG } from '../../../bridge/wire/tcp.js';
import { clientSeg, CLIENT } from '../../../rig/in-process/harness.js';
import { B, established, ISN_S } from './fixtures.js';

describe('checksums are verified before the merger rewrites a segment', () => {
  const corrupt = (pkt: Buffer) => {
    pkt[pkt.length - 1] = pkt[pkt.length - 1]! ^ 0x20; // a payload bit flipped on the wire
    return pkt;
  };

  it('a corrupted client segment is dropped and counted, not translated with a valid sum', () => {
    const { pair, cack } = established();
    const r = pair.fromClient(
      corrupt(clientSeg({ seq: cack, ack: ISN_S + 1, flags: TCP_ACK_FLAG, payload: B('hello') })),
    );
    expect(pair.sink.fate(r.id)).toBe('drop');
    expect(pair.merger.stats.drops['bad-checksum']).toBe(1);
    // Verified by the NIC: taken as it is (the kernel already checked it).
    const ok = pair.merger;
    const id = 77_777;
    ok.fromClient(
      id,
      clientSeg({ seq: cack, ack: ISN_S + 1, flags: TCP_ACK_FLAG, payload: B('hello') }),
      pair.now,
      'verified',
    );
    expect(pair.sink.fate(id)).toBe('accept');
  });

  it('a corrupted segment of the secondary is not stored (it would read as a divergence)', () => {
    const { pair, cack } = established();
    const id = pair.fromP(pair.p.data(B('abc'), cack));
    const d = pair.diverter.divert(pair.s.data(B('abc'), cack), false) as Buffer;
    pair.merger.fromSecondary(88_888, corrupt(Buffer.from(d)), CLIENT, pair.now);
    expect(pair.merger.stats.drops['bad-checksum']).toBe(1);
    expect(pair.merger.stats.divergences).toBe(0);
    expect(pair.sink.fate(id)).toBeUndefined();
    pair.merger.fromSecondary(88_889, d, CLIENT, pair.now);
    expect(pair.sink.fate(id)).toBe('accept');
  });

  it('a segment of P’s with a partial checksum (offload pending) is not verified, and leaves with a complete one', () => {
    const { pair, cack } = established();
    const pkt = pair.p.data(B('abc'), cack);
    const p = parseIpv4Tcp(pkt) as Exclude<ReturnType<typeof parseIpv4Tcp>, WireError>;
    pkt.writeUInt16BE(0, 36);
    const partial = fold(pseudoHeaderSum(p.ip.src, p.ip.dst, 6, p.tcp.len));
    pkt.writeUInt16BE(partial, 36);
    const id = 99_999;
    pair.sink.markP(id);
    pair.merger.fromPrimary(id, pkt, false, pair.now, 'partial');
    pair.fromS(pair.s.data(B('abc'), cack));
    expect(pair.sink.fate(id)).toBe('accept');
    expect(pair.sink.toClient.at(-1)!.checksumOk).toBe(true);
  });
});
