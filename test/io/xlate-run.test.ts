/**
 * The primary's programs run on crafted packets in the kernel
 * (BPF_PROG_TEST_RUN): the egress program's release of a primary-only
 * connection's segment (seq − Δseq, TSval − offset, the window from P's scale
 * to the client's, a valid checksum), and what it and the netfilter match
 * refuse. Random numbers, checked against the rewrite done here in JS.
 */
import { describe, expect, it } from 'vitest';
import { InboundXlate } from '../../bridge/io/xlate.js';
import { ipv4 } from '../../bridge/wire/addr.js';
import { parseIpv4Tcp, TCP_ACK_FLAG, TCP_FIN, TCP_PSH, TCP_SYN } from '../../bridge/wire/tcp.js';
import { WireError } from '../../bridge/wire/error.js';

const VIP = ipv4('192.0.2.100');
const CLIENT = ipv4('198.51.100.7');
const SPORT = 7000;
const CPORT = 40_001;
const BRIDGE_MARK = 0x7466;
const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const ETH = Buffer.from('020000000001020000000002' + '0800', 'hex');

/** P's segment to the client, on Ethernet: NOP NOP TS (when tsval is given), then the payload. */
function frame(o: { seq: number; ack: number; window: number; flags: number; tsval?: number; tsecr?: number; payload?: Buffer }): Buffer {
  const payload = o.payload ?? Buffer.alloc(0);
  const opts = o.tsval === undefined ? Buffer.alloc(0) : Buffer.alloc(12);
  if (o.tsval !== undefined) {
    opts.set([1, 1, 8, 10]);
    opts.writeUInt32BE(o.tsval >>> 0, 4);
    opts.writeUInt32BE((o.tsecr ?? 0) >>> 0, 8);
  }
  const tcpLen = 20 + opts.length + payload.length;
  const ip = Buffer.alloc(20 + tcpLen);
  ip[0] = 0x45;
  ip.writeUInt16BE(ip.length, 2);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = 64;
  ip[9] = 6;
  ip.writeUInt32BE(VIP >>> 0, 12);
  ip.writeUInt32BE(CLIENT >>> 0, 16);
  ip.writeUInt16BE(SPORT, 20);
  ip.writeUInt16BE(CPORT, 22);
  ip.writeUInt32BE(o.seq >>> 0, 24);
  ip.writeUInt32BE(o.ack >>> 0, 28);
  ip[32] = ((20 + opts.length) / 4) << 4;
  ip[33] = o.flags;
  ip.writeUInt16BE(o.window, 34);
  opts.copy(ip, 40);
  payload.copy(ip, 40 + opts.length);
  const p = parseIpv4Tcp(ip);
  if (p instanceof WireError) throw p;
  p.tcp.fillChecksum();
  // The IP header's sum.
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += ip.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  ip.writeUInt16BE(~sum & 0xffff, 10);
  return Buffer.concat([ETH, ip]);
}

function parse(f: Buffer) {
  const p = parseIpv4Tcp(f, 14);
  if (p instanceof WireError) throw p;
  return p.tcp;
}

const key = { client: CLIENT, service: VIP, clientPort: CPORT, servicePort: SPORT };
const u32 = () => Math.floor(Math.random() * 2 ** 32);

describe('the egress program on a primary-only connection', () => {
  const x = InboundXlate.loadOnly(1024, VIP, [SPORT]);

  it('moves seq, TSval and the window into the client’s spaces, with a valid checksum (500 random segments)', () => {
    for (let i = 0; i < 500; i++) {
      const dseq = u32();
      const dts = u32();
      const wsP = Math.floor(Math.random() * 15);
      const wsS = Math.floor(Math.random() * 15);
      x.remove(key);
      expect(x.primaryOnly(key, dseq, dts, true, wsP, wsS)).toBe(true);
      const seg = { seq: u32(), ack: u32(), window: Math.floor(Math.random() * 65536), flags: TCP_ACK_FLAG | (i % 2 ? TCP_PSH : 0), tsval: u32(), tsecr: u32(), payload: Buffer.from(`answer ${i}`) };
      const r = x.run('tcpfo_sent', frame(seg));
      expect(r.ret).toBe(TC_ACT_OK);
      const out = parse(r.packet);
      expect(out.seq).toBe((seg.seq - dseq) >>> 0);
      expect(out.ack).toBe(seg.ack);
      expect(out.timestamp()).toEqual({ tsval: (seg.tsval - dts) >>> 0, tsecr: seg.tsecr });
      expect(out.window).toBe(wsP === wsS ? seg.window : Math.min(0xffff, Math.floor((seg.window * 2 ** wsP) / 2 ** wsS)));
      expect(out.payload.toString()).toBe(`answer ${i}`);
      expect(out.checksumValid()).toBe(true);
    }
    expect(x.released(key)!.segments).toBeGreaterThan(0);
  });

  it('leaves what the bridge released (its mark) as it is, and refuses a segment of a listed connection that is not primary-only', () => {
    x.remove(key);
    x.primaryOnly(key, 1000, 0, false, 7, 7);
    const f = frame({ seq: 5000, ack: 1, window: 100, flags: TCP_ACK_FLAG, payload: Buffer.from('x') });
    const marked = x.run('tcpfo_sent', f, BRIDGE_MARK);
    expect(marked.ret).toBe(TC_ACT_OK);
    expect(marked.packet.equals(f)).toBe(true);
    // Listed for the inbound translation, not primary-only: it passed the match while the entry went.
    x.remove(key);
    x.add(key, 1000, 0, false, 7);
    const before = x.counters().releaseRefused;
    expect(x.run('tcpfo_sent', f).ret).toBe(TC_ACT_SHOT);
    expect(x.counters().releaseRefused).toBe(before + 1);
    // Listed nowhere: not ours.
    x.remove(key);
    expect(x.run('tcpfo_sent', f).ret).toBe(TC_ACT_OK);
  });

  it('the match lets only plain segments of primary-only connections skip the queue', () => {
    x.remove(key);
    // A socket filter's test run takes a frame too, and sees it from the IP header on (as at netfilter OUTPUT).
    const ip = (o: Parameters<typeof frame>[0]) => frame(o);
    const plain = { seq: 1, ack: 2, window: 3, flags: TCP_ACK_FLAG | TCP_PSH, tsval: 4, tsecr: 5, payload: Buffer.from('a') };
    expect(x.run('tcpfo_primary_only', ip(plain)).ret).toBe(0); // not listed
    x.primaryOnly(key, 0, 0, true, 7, 7);
    expect(x.run('tcpfo_primary_only', ip(plain)).ret).toBe(1);
    expect(x.run('tcpfo_primary_only', ip({ ...plain, flags: TCP_ACK_FLAG | TCP_FIN })).ret).toBe(0);
    expect(x.run('tcpfo_primary_only', ip({ ...plain, flags: TCP_ACK_FLAG | TCP_SYN })).ret).toBe(0);
    // Timestamps to move but none found: the queue.
    expect(x.run('tcpfo_primary_only', ip({ ...plain, tsval: undefined })).ret).toBe(0);
    // Without timestamps on the connection, a segment without them is fine.
    x.remove(key);
    x.primaryOnly(key, 0, 0, false, 7, 7);
    expect(x.run('tcpfo_primary_only', ip({ ...plain, tsval: undefined })).ret).toBe(1);
  });
});
