/**
 * Run inside a rig host: sends one SYN built by the wire layer through a raw
 * socket and prints, as JSON, the SYN-ACK the peer's kernel answered with (or
 * null after the timeout). Proves our checksums agree with Linux's TCP.
 *
 *   node syn-probe.js SRC DST SPORT DPORT ISN TSVAL [corrupt]
 */
import * as raw from 'raw-socket';
import { ipv4, ipv4ToString } from '../../net/addr.js';
import { WireError } from '../../bridge/wire/error.js';
import { buildIpv4Tcp, parseIpv4Tcp, parseTcpRepr, TCP_ACK_FLAG, TCP_SYN } from '../../bridge/wire/tcp.js';
import { TCP_CHECKSUM } from '../../bridge/wire/tcp.js';
import { IP_MIN_HEADER_LEN } from '../../bridge/wire/ipv4.js';

const [src, dst, sport, dport, isn, tsval, mode] = process.argv.slice(2);
if (!src || !dst || !sport || !dport || !isn || !tsval) {
  console.error('usage: syn-probe SRC DST SPORT DPORT ISN TSVAL [corrupt]');
  process.exit(2);
}
const srcAddr = ipv4(src);
const dstAddr = ipv4(dst);
const pkt = buildIpv4Tcp(
  { src: srcAddr, dst: dstAddr, id: 4242 },
  {
    srcPort: Number(sport),
    dstPort: Number(dport),
    seq: Number(isn),
    ack: 0,
    flags: TCP_SYN,
    window: 64240,
    urgent: 0,
    options: [
      { kind: 'mss', mss: 1400 },
      { kind: 'sack-permitted' },
      { kind: 'timestamp', tsval: Number(tsval), tsecr: 0 },
      { kind: 'wscale', shift: 7 },
    ],
    payload: Buffer.alloc(0),
  },
);
if (mode === 'corrupt')
  pkt.writeUInt8(pkt.readUInt8(IP_MIN_HEADER_LEN + TCP_CHECKSUM) ^ 0x01, IP_MIN_HEADER_LEN + TCP_CHECKSUM);

const sock = raw.createSocket({ protocol: raw.Protocol.TCP, bufferSize: 65536 });
sock.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
const timer = setTimeout(() => finish(null), 2000);

function finish(result: unknown): void {
  clearTimeout(timer);
  process.stdout.write(JSON.stringify({ synAck: result }) + '\n');
  sock.close();
}

sock.on('message', (buf: Buffer) => {
  const p = parseIpv4Tcp(buf);
  if (p instanceof WireError) return;
  const { ip, tcp } = p;
  if (ip.src !== dstAddr || tcp.srcPort !== Number(dport) || tcp.dstPort !== Number(sport)) return;
  if ((tcp.flags & (TCP_SYN | TCP_ACK_FLAG)) !== (TCP_SYN | TCP_ACK_FLAG)) return;
  if (tcp.ack !== (Number(isn) + 1) >>> 0) return;
  const repr = parseTcpRepr(tcp);
  if (repr instanceof WireError) return;
  finish({
    from: ipv4ToString(ip.src),
    seq: repr.seq,
    ack: repr.ack,
    ipChecksumValid: ip.checksumValid(),
    tcpChecksum: tcp.checksumValid() ? 'valid' : tcp.checksumPartial() ? 'partial' : 'invalid',
    options: repr.options,
  });
});
sock.on('error', (e: Error) => {
  console.error(e.message);
  process.exit(1);
});
sock.send(pkt, 0, pkt.length, dst, (err) => {
  if (err) {
    console.error(`send: ${err.message}`);
    process.exit(1);
  }
});
