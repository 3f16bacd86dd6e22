/**
 * The node's sockets as the bridge sees them (bridge/io/sockets.ts), run
 * inside a rig host for test/io/sockets.test.ts. Serves ADDR:PORT and opens
 * N connections to it from ADDR2: the first BUSY ask for 4 MB and never read
 * it (their server sockets keep unacknowledged bytes), the rest stay idle.
 * Then answers one JSON line per command line on stdin:
 *   list                 -> existingConnections(ADDR, [PORT])
 *   destroy [[cport],…]  -> destroySockets(ADDR, keys) (client ADDR2, port PORT)
 *   destroy-all          -> destroyConnections(ADDR, [PORT])
 *   resets               -> how many of the client sockets were reset
 *   connect              -> whether a new connection is accepted and answered
 *   time list|destroy …  -> {n, ms}: the same, timed (bench/micro/sockets.ts)
 *
 *   node sockets-probe.js ADDR ADDR2 PORT N BUSY [LISTEN]
 *
 * LISTEN: the server's listening address, if not ADDR (`::` takes IPv4
 * connections too, as AF_INET6 sockets).
 */
import { connect, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { ipAddr } from '../../net/addr.js';
import { PortMatcher } from '../../net/ports.js';
import { destroyConnections, destroySockets, existingConnections } from '../../bridge/io/sockets.js';

const [addr, addr2, portText, nText, busyText, listenAt] = process.argv.slice(2);
const port = Number(portText);
const n = Number(nText);
const busy = Number(busyText);
if (!addr || !addr2 || !(port > 0) || !(n > 0) || !(busy >= 0)) {
  console.error('usage: sockets-probe ADDR ADDR2 PORT N BUSY [LISTEN]');
  process.exit(2);
}

const server = createServer((s) => {
  s.on('error', () => {});
  s.once('data', (d) => {
    if (d[0] === 0x42) s.write(Buffer.alloc(4 << 20, 0x61));
    else s.write('ok');
  });
});
await new Promise<void>((res) => server.listen(port, listenAt ?? addr, res));

let resets = 0;
function open(first: string, read: boolean): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: addr, port, localAddress: addr2 });
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNRESET') resets++;
      reject(e);
    });
    s.once('connect', () => {
      s.write(first);
      if (read) s.once('data', () => resolve(s));
      else {
        s.pause();
        setTimeout(() => resolve(s), 20);
      }
    });
  });
}
const clients: Socket[] = [];
for (let i = 0; i < n; i++) clients.push(await open(i < busy ? 'B' : 'I', i >= busy));
// Let the busy servers fill their windows: their Send-Q stays above zero.
await new Promise((res) => setTimeout(res, 200));
console.log(JSON.stringify({ ready: clients.map((c) => c.localPort) }));

const answer = (x: unknown) => console.log(JSON.stringify(x));
createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = [line.split(' ')[0], line.slice(line.indexOf(' ') + 1)];
  const done = (p: Promise<unknown>) => p.then(answer, (e: Error) => answer({ error: e.message }));
  if (cmd === 'time') {
    const t0 = performance.now();
    const what = arg.split(' ')[0];
    const p =
      what === 'list'
        ? existingConnections([addr], new PortMatcher([port])).then((l) => l.length)
        : destroySockets(
            [addr],
            (JSON.parse(arg.slice(what!.length + 1)) as number[]).map((clientPort) => ({
              client: ipAddr(addr2),
              clientPort,
              servicePort: port,
            })),
          );
    return done(p.then((count) => ({ n: count, ms: performance.now() - t0 })));
  }
  switch (cmd) {
    case 'list':
      return done(existingConnections([addr], new PortMatcher([port])));
    case 'destroy':
      return done(
        destroySockets(
          [addr],
          (JSON.parse(arg) as number[]).map((clientPort) => ({ client: ipAddr(addr2), clientPort, servicePort: port })),
        ),
      );
    case 'destroy-all':
      return done(destroyConnections([addr], [port]));
    case 'resets':
      return setTimeout(() => answer(resets), 100);
    case 'connect':
      return done(open('I', true).then((s) => (s.destroy(), true)));
    default:
      return answer({ error: `unknown command ${line}` });
  }
});
