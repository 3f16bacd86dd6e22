/**
 * Run inside a rig host: forged Ethernet frames, as a hostile host on the
 * LAN sends them — any source MAC, any addresses — through a packet socket
 * (npm cap). Prints {"sent":N}.
 *
 *   node forge.js acks DEV SRCMAC DSTMAC SRC SPORT DST DPORT SEQ ACK0 N
 *     N ACKs from SRC:SPORT to DST:DPORT at SEQ, acknowledging ACK0 + k·2³⁰
 *     (k = 0 … N−1): a blind walk around the sequence space.
 *   node forge.js rsts DEV SRCMAC DSTMAC SRC SPORT DST DPORT N
 *     N RSTs (with ACK) from SRC:SPORT to DST:DPORT at random sequence numbers.
 *   node forge.js synacks DEV SRCMAC DSTMAC SRC SPORT DST N
 *     N SYN-ACKs from SRC:SPORT to DST at random ports, ISNs and ACKs.
 *   node forge.js syn DEV SRCMAC DSTMAC SRC SPORT DST DPORT SEQ
 *     One SYN from SRC:SPORT to DST:DPORT with ISN SEQ (to DSTMAC only: a SYN one node alone sees).
 *   node forge.js na DEV SRCMAC ADDR6
 *     The unsolicited neighbour advertisement of a node taking ADDR6 (override set).
 *   node forge.js dad DEV SRCMAC ADDR6
 *     A duplicate address detection probe for ADDR6 (a solicitation from ::).
 */
import { openFrameSender } from '../../bridge/io/capture.js';
import { ipv4, ipv6, mac } from '../../net/addr.js';
import { dadProbe, unsolicitedAdvertisement } from '../../bridge/wire/ndisc.js';
import { emitEthernet, ETHERTYPE_IPV4 } from '../../bridge/wire/ethernet.js';
import { buildIpv4Tcp, TCP_ACK_FLAG, TCP_RST, TCP_SYN } from '../../bridge/wire/tcp.js';

const [mode, dev, srcMac, dstMac, ...a] = process.argv.slice(2);
const rnd = (n: number) => Math.floor(Math.random() * n);
const usage = () => {
  console.error('usage: forge acks|rsts|synacks|syn|na|dad DEV SRCMAC … (see the header of rig/helpers/forge.ts)');
  process.exit(2);
};
if (!dev || !srcMac || !dstMac) usage();

if ((mode === 'na' || mode === 'dad') && a.length === 0) {
  // The third argument is the IPv6 address here.
  const frame = (mode === 'na' ? unsolicitedAdvertisement : dadProbe)(mac(srcMac!), ipv6(dstMac!));
  const one = openFrameSender(dev!);
  one.send(frame);
  await new Promise((r) => setTimeout(r, 100));
  one.close();
  process.stdout.write(JSON.stringify({ sent: 1 }) + '\n');
  process.exit(0);
}

interface Seg {
  src: string;
  sport: number;
  dst: string;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
}
const segs: Seg[] = [];
if (mode === 'acks' && a.length === 7) {
  const [src, sport, dst, dport, seq, ack0, n] = a as [string, string, string, string, string, string, string];
  for (let k = 0; k < Number(n); k++)
    segs.push({
      src,
      sport: Number(sport),
      dst,
      dport: Number(dport),
      seq: Number(seq) >>> 0,
      ack: (Number(ack0) + k * 2 ** 30) >>> 0,
      flags: TCP_ACK_FLAG,
    });
} else if (mode === 'rsts' && a.length === 5) {
  const [src, sport, dst, dport, n] = a as [string, string, string, string, string];
  for (let k = 0; k < Number(n); k++)
    segs.push({
      src,
      sport: Number(sport),
      dst,
      dport: Number(dport),
      seq: rnd(2 ** 32),
      ack: rnd(2 ** 32),
      flags: TCP_RST | TCP_ACK_FLAG,
    });
} else if (mode === 'synacks' && a.length === 4) {
  const [src, sport, dst, n] = a as [string, string, string, string];
  for (let k = 0; k < Number(n); k++)
    segs.push({
      src,
      sport: Number(sport),
      dst,
      dport: 1024 + rnd(64000),
      seq: rnd(2 ** 32),
      ack: rnd(2 ** 32),
      flags: TCP_SYN | TCP_ACK_FLAG,
    });
} else if (mode === 'syn' && a.length === 5) {
  const [src, sport, dst, dport, seq] = a as [string, string, string, string, string];
  segs.push({ src, sport: Number(sport), dst, dport: Number(dport), seq: Number(seq) >>> 0, ack: 0, flags: TCP_SYN });
} else usage();

const sender = openFrameSender(dev!);
let sent = 0;
for (const s of segs) {
  const ip = buildIpv4Tcp(
    { src: ipv4(s.src), dst: ipv4(s.dst) },
    {
      srcPort: s.sport,
      dstPort: s.dport,
      seq: s.seq,
      ack: s.ack,
      flags: s.flags,
      window: 502,
      urgent: 0,
      options: s.flags & TCP_SYN ? [{ kind: 'mss', mss: 1460 }] : [],
      payload: Buffer.alloc(0),
    },
  );
  sender.send(emitEthernet(mac(dstMac!), mac(srcMac!), ETHERTYPE_IPV4, ip));
  sent++;
  // A burst of thousands would overrun the socket's buffer: a short pause now and then.
  if (sent % 200 === 0) await new Promise((r) => setTimeout(r, 5));
}
await new Promise((r) => setTimeout(r, 100));
sender.close();
process.stdout.write(JSON.stringify({ sent }) + '\n');
