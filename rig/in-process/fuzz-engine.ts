/**
 * Fuzzing the data path's pure cores: packets of real
 * connections — the harness's, or frames read from a capture — mutated
 * (bytes flipped, fields set near and far, truncated, extended) and fed in
 * random order to every entry of the merger and the diverter, with time
 * moving on. Counts what must never happen: a throw, a verdict for an unknown
 * or already-decided packet, a packet left without a verdict once everything
 * expired, a table or store past its bound. Seeded: a failure replays.
 */
import { WireError } from '../../bridge/wire/error.js';
import { EthernetFrame, ETHERTYPE_IPV4, ETHERTYPE_IPV6, emitEthernet } from '../../bridge/wire/ethernet.js';
import { isIp6, mac, type IpAddr } from '../../net/addr.js';
import { seqAdd } from '../../bridge/wire/seq.js';
import { TCP_ACK_FLAG, TCP_FIN } from '../../bridge/wire/tcp.js';
import { type ChecksumState, Merger, type MergerSink } from '../../bridge/primary/merger.js';
import type { CapturedFrame } from '../capture.js';
import { A_P, A_S, CLIENT, dualStackDiverter, Pair, V4, VIP, VIP6, type Family } from './harness.js';

export interface FuzzResult {
  packets: number;
  throws: number;
  firstThrow?: string;
  badVerdicts: number;
  leftWithoutVerdict: number;
  maxConnections: number;
  maxStoredBytes: number;
  boundViolations: number;
  ms: number;
}

/** mulberry32: small, fast, seeded. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Corpus {
  /** Packets as P's TCP emits them, S's diverted output, the client's segments, S's own output. */
  primary: Buffer[];
  diverted: Buffer[];
  client: Buffer[];
  secondaryOut: Buffer[];
  /** Client frames as the secondary captures them. */
  frames: Buffer[];
  /** The client's address, as the secondary's diverted copies name it. */
  clientAddr: IpAddr;
}

/**
 * The packets of one clean connection through the harness: handshake, data both ways,
 * SACK, FIN; over IPv4 or IPv6 (`fam`: S's copies then reach P unchanged, as the kernel
 * path brings them).
 */
export function harnessCorpus(fam: Family = V4): Corpus {
  const pair = new Pair({ isn: 0xfffff000, ts: 50_000 }, { isn: 7_000_000, ts: 0xfffffff0 }, {}, null, fam);
  const c: Corpus = { primary: [], diverted: [], client: [], secondaryOut: [], frames: [], clientAddr: fam.client };
  const etherType = isIp6(fam.client) ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4;
  const fromP = (pkt: Buffer) => (c.primary.push(Buffer.from(pkt)), pair.fromP(pkt));
  const fromS = (pkt: Buffer) => {
    c.secondaryOut.push(Buffer.from(pkt));
    c.diverted.push(Buffer.from(pair.fromS(pkt)));
  };
  const fromC = (pkt: Buffer) => {
    c.client.push(Buffer.from(pkt));
    c.frames.push(emitEthernet(mac('02:00:00:00:00:01'), mac('02:00:00:00:00:0a'), etherType, pkt));
    pair.fromClient(pkt);
  };
  fromC(
    pair.clientSeg({
      seq: 5000,
      ack: 0,
      flags: 0x02,
      options: [
        { kind: 'mss', mss: 1460 },
        { kind: 'sack-permitted' },
        { kind: 'timestamp', tsval: 1, tsecr: 0 },
        { kind: 'wscale', shift: 7 },
      ],
    }),
  );
  fromP(pair.p.synAck(5000));
  fromS(pair.s.synAck(5000));
  const cack = 5001;
  fromC(
    pair.clientSeg({
      seq: cack,
      ack: 7_000_001,
      flags: TCP_ACK_FLAG,
      payload: Buffer.from('GET /x\n'),
      options: [{ kind: 'timestamp', tsval: 2, tsecr: 0xfffffff0 }],
    }),
  );
  const req = seqAdd(cack, 7);
  for (let i = 0; i < 4; i++) {
    const d = Buffer.alloc(700 + i * 300, 65 + i);
    fromP(pair.p.data(d, req));
    fromS(pair.s.data(d, req));
  }
  fromC(
    pair.clientSeg({
      seq: req,
      ack: 7_000_001 + 1000,
      flags: TCP_ACK_FLAG,
      options: [{ kind: 'sack', blocks: [[7_002_000, 7_002_600]] }],
    }),
  );
  fromP(pair.p.ack(req));
  fromS(pair.s.ack(req, 500, [{ kind: 'sack', blocks: [[5000, 5007]] }]));
  fromP(pair.p.fin(req));
  fromS(pair.s.fin(req));
  fromC(pair.clientSeg({ seq: req, ack: pair.s.nxt, flags: TCP_ACK_FLAG | TCP_FIN }));
  return c;
}

/** A corpus from a capture (Ethernet frames): what goes to `vip` is the client's, what comes from it the servers'. */
export function captureCorpus(frames: readonly CapturedFrame[], vip: number): Corpus {
  const c: Corpus = { primary: [], diverted: [], client: [], secondaryOut: [], frames: [], clientAddr: CLIENT };
  for (const f of frames) {
    const eth = EthernetFrame.parse(f.data);
    if (eth instanceof WireError || eth.etherType !== ETHERTYPE_IPV4) continue;
    const ip = Buffer.from(f.data.subarray(eth.payloadOffset));
    if (ip.length < 20) continue;
    if (ip.readUInt32BE(16) === vip) {
      c.client.push(ip);
      c.frames.push(Buffer.from(f.data));
    } else if (ip.readUInt32BE(12) === vip) {
      c.primary.push(ip);
      c.secondaryOut.push(ip);
      const d = Buffer.from(ip);
      d.writeUInt32BE(A_S, 12);
      d.writeUInt32BE(A_P, 16);
      c.diverted.push(d);
    }
  }
  return c;
}

function mutate(src: Buffer, r: () => number): Buffer {
  let b = Buffer.from(src);
  const tcp = src.length && src[0]! >> 4 === 6 ? 40 : 20; // where TCP's header starts (no IPv4 options, no extension headers)
  const n = Math.floor(r() * 5);
  for (let i = 0; i < n; i++) {
    const k = r();
    if (b.length === 0) break;
    if (k < 0.35) {
      // A byte in the headers (most parsing happens there), or anywhere.
      const pos = r() < 0.8 ? Math.floor(r() * Math.min(b.length, 80)) : Math.floor(r() * b.length);
      b[pos] = Math.floor(r() * 256);
    } else if (k < 0.5) {
      b = b.subarray(0, Math.floor(r() * (b.length + 1)));
    } else if (k < 0.6) {
      b = Buffer.concat([b, Buffer.from(Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256)))]);
    } else if (k < 0.85 && b.length >= tcp + 20) {
      // seq or ack moved near (a few bytes, a window) or anywhere.
      const at = tcp + (r() < 0.5 ? 4 : 8);
      const v = b.readUInt32BE(at);
      const d = r() < 0.7 ? Math.floor((r() - 0.5) * 200_000) : Math.floor(r() * 2 ** 32);
      b.writeUInt32BE(seqAdd(v, d), at);
    } else if (b.length >= tcp + 20) {
      // Another client port (a new connection) or flags.
      if (r() < 0.5) b.writeUInt16BE(40000 + Math.floor(r() * 8), tcp + (r() < 0.5 ? 0 : 2));
      else b[tcp + 13] = Math.floor(r() * 256);
    }
  }
  return b;
}

/**
 * Mutated bytes mostly reach the merger as if the NIC had verified them (so
 * the mutations get past the checksum to the parsers and tables), some as
 * unverified (the verification itself is fuzzed).
 */
function csumState(r: () => number): ChecksumState {
  return r() < 0.9 ? 'verified' : 'unverified';
}

export function fuzz(packets: number, seed: number, corpus: Corpus = harnessCorpus()): FuzzResult {
  const r = prng(seed);
  const res: FuzzResult = {
    packets: 0,
    throws: 0,
    badVerdicts: 0,
    leftWithoutVerdict: 0,
    maxConnections: 0,
    maxStoredBytes: 0,
    boundViolations: 0,
    ms: 0,
  };
  const open = new Set<number>();
  const verdict = (id: number) => {
    if (!open.delete(id)) res.badVerdicts++;
  };
  const sink: MergerSink = { accept: verdict, drop: verdict, send: () => {}, toSecondary: () => {} };
  const limits = { maxConnections: 64, maxPendingHandshakes: 16, maxStoredBytes: 1 << 16 };
  const merger = new Merger({ service: VIP, service6: VIP6, poisonPooled: true, ...limits }, sink);
  const diverter = dualStackDiverter('02:00:00:00:00:01');
  const pick = (xs: Buffer[]) => xs[Math.floor(r() * xs.length)]!;
  let id = 1;
  let now = 0;
  const t0 = performance.now();
  for (let i = 0; i < packets; i++) {
    now += Math.floor(r() * r() * 50);
    const k = r();
    try {
      if (k < 0.3 && corpus.primary.length) {
        open.add(id);
        merger.fromPrimary(id++, mutate(pick(corpus.primary), r), r() < 0.1, now, csumState(r));
      } else if (k < 0.55 && corpus.diverted.length) {
        open.add(id);
        merger.fromSecondary(
          id++,
          mutate(pick(corpus.diverted), r),
          r() < 0.95 ? corpus.clientAddr : Math.floor(r() * 2 ** 32),
          now,
          csumState(r),
        );
      } else if (k < 0.8 && corpus.client.length) {
        open.add(id);
        merger.fromClient(id++, mutate(pick(corpus.client), r), now, csumState(r));
      } else if (k < 0.9 && corpus.frames.length) {
        diverter.inbound(mutate(pick(corpus.frames), r));
      } else if (corpus.secondaryOut.length) {
        diverter.divert(mutate(pick(corpus.secondaryOut), r), r() < 0.1, r() < 0.9);
      }
      if (i % 997 === 0) merger.poll(now);
      if (i > 0 && i % 50_000 === 0 && r() < 0.1) merger.secondaryFailed(); // not at the start: the run would never merge
    } catch (e) {
      res.throws++;
      res.firstThrow ??= `packet ${i}: ${(e as Error).stack?.split('\n').slice(0, 4).join(' | ')}`;
    }
    res.packets++;
    if (i % 16 === 0) {
      const q = merger.queued();
      res.maxConnections = Math.max(res.maxConnections, merger.connections);
      res.maxStoredBytes = Math.max(res.maxStoredBytes, q.storedBytes);
      if (
        merger.connections > limits.maxConnections ||
        q.storedBytes > limits.maxStoredBytes * Math.max(1, merger.connections)
      )
        res.boundViolations++;
    }
  }
  // Everything expires eventually; nothing may stay held in the kernel's queue.
  merger.poll(now + 10 * 24 * 3600 * 1000);
  res.leftWithoutVerdict = open.size;
  res.ms = performance.now() - t0;
  return res;
}
