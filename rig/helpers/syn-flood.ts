/**
 * Run inside a rig host: hostile traffic through the bridge's own raw-socket
 * injector, at RATE packets per second for SECONDS. Prints {"sent":N}.
 *
 *   node syn-flood.js syn DST DPORT SRC_PREFIX RATE SECONDS
 *     SYNs to DST:DPORT from spoofed sources SRC_PREFIX.200–249, random ports and ISNs.
 *   node syn-flood.js ack DST DPORT SRC_PREFIX RATE SECONDS
 *     The same as ACKs of no connection (a client's SYN passes the primary's
 *     input queue; these go through it, where the inbound translation runs there).
 *   node syn-flood.js divert DST SPORT SRC CLIENT RATE SECONDS
 *     Segments that claim to be the secondary's diverted output: from SRC
 *     (the secondary's address) port SPORT to DST (the primary), with the
 *     divert option naming CLIENT, carrying 100 bytes of 'X' at random
 *     sequence numbers. The primary must drop every one.
 *   node syn-flood.js routed DST SPORT SRC RATE SECONDS
 *     Segments that claim to be the secondary's output on the kernel path:
 *     from SRC (the service address) port SPORT to DST (a client), 100 bytes
 *     of 'X' at random sequence numbers; the sender's neighbour entry for DST
 *     points at the primary. The primary must drop every one.
 */
import { Injector } from '../../bridge/io/inject.js';
import { ipv4 } from '../../net/addr.js';
import { buildIpv4Tcp, TCP_ACK_FLAG, TCP_PSH, TCP_SYN } from '../../bridge/wire/tcp.js';

const [mode, ...a] = process.argv.slice(2);
const rnd = (n: number) => Math.floor(Math.random() * n);
let make: () => Buffer;
let rate: number;
let seconds: number;
if ((mode === 'syn' || mode === 'ack') && a.length === 5) {
  const [dst, dport, prefix] = a as [string, string, string];
  [rate, seconds] = [Number(a[3]), Number(a[4])];
  make = () =>
    buildIpv4Tcp(
      { src: ipv4(`${prefix}.${200 + rnd(50)}`), dst: ipv4(dst) },
      {
        srcPort: 1024 + rnd(64000),
        dstPort: Number(dport),
        seq: rnd(2 ** 32),
        ack: mode === 'ack' ? rnd(2 ** 32) : 0,
        flags: mode === 'ack' ? TCP_ACK_FLAG : TCP_SYN,
        window: 64240,
        urgent: 0,
        options: [{ kind: 'mss', mss: 1460 }],
        payload: Buffer.alloc(0),
      },
    );
} else if (mode === 'divert' && a.length === 6) {
  const [dst, sport, src, client] = a as [string, string, string, string];
  [rate, seconds] = [Number(a[4]), Number(a[5])];
  make = () =>
    buildIpv4Tcp(
      { src: ipv4(src), dst: ipv4(dst) },
      {
        srcPort: Number(sport),
        dstPort: 1024 + rnd(64000),
        seq: rnd(2 ** 32),
        ack: rnd(2 ** 32),
        flags: TCP_ACK_FLAG | TCP_PSH,
        window: 500,
        urgent: 0,
        options: [{ kind: 'divert', client: ipv4(client) }],
        payload: Buffer.alloc(100, 'X'),
      },
    );
} else if (mode === 'routed' && a.length === 5) {
  const [dst, sport, src] = a as [string, string, string];
  [rate, seconds] = [Number(a[3]), Number(a[4])];
  make = () =>
    buildIpv4Tcp(
      { src: ipv4(src), dst: ipv4(dst) },
      {
        srcPort: Number(sport),
        dstPort: 1024 + rnd(64000),
        seq: rnd(2 ** 32),
        ack: rnd(2 ** 32),
        flags: TCP_ACK_FLAG | TCP_PSH,
        window: 500,
        urgent: 0,
        options: [],
        payload: Buffer.alloc(100, 'X'),
      },
    );
} else {
  console.error(
    'usage: syn-flood syn DST DPORT SRC_PREFIX RATE SECONDS | divert DST SPORT SRC CLIENT RATE SECONDS | routed DST SPORT SRC RATE SECONDS',
  );
  process.exit(2);
}
if (!(rate > 0) || !(seconds > 0)) {
  console.error('RATE and SECONDS must be positive');
  process.exit(2);
}
const inj = new Injector(0, 64, 1 << 20);
const start = Date.now();
const end = start + seconds * 1000;
let sent = 0;
let attempted = 0;
// Every 10 ms, what the rate says is due by now: a sender short of CPU (its
// timers late) catches up in bursts rather than sending fewer.
const tick = () => {
  const due = Math.min(Math.round((rate * (Date.now() - start)) / 1000), rate * seconds);
  for (; attempted < due; attempted++) if (inj.send(make())) sent++;
  if (Date.now() < end) setTimeout(tick, 10);
  else
    setTimeout(() => {
      inj.close();
      process.stdout.write(JSON.stringify({ sent }) + '\n');
    }, 100);
};
tick();
