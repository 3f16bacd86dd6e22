/**
 * tcpfo's deterministic demo server: run the same on both nodes and the
 * replicas produce the same bytes, which is what active replication needs.
 *
 *   node demo-server.js HOST PORT
 *
 * One command line per connection:
 *   GET <bytes> <seed>   the server sends <bytes> pattern bytes, then closes
 *   PUT <bytes>          the client sends <bytes>; the server answers "OK <sha256>\n" and closes
 *   ECHO                 everything is echoed until the client closes
 *   WHO                  "<pid>\n" — NOT deterministic (differs between the replicas,
 *                        for divergence tests) — then echo, as ECHO
 *   ABORT                the server resets the connection (SO_LINGER 0: an RST, no FIN)
 */
import { createHash } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { patternChunks } from './pattern.js';

const [host, portText] = process.argv.slice(2);
if (!host || !portText) {
  console.error('usage: demo-server HOST PORT');
  process.exit(2);
}

function handle(sock: Socket): void {
  let head = Buffer.alloc(0);
  const onData = (d: Buffer) => {
    head = Buffer.concat([head, d]);
    const nl = head.indexOf(10);
    if (nl < 0) {
      if (head.length > 256) sock.destroy();
      return;
    }
    sock.off('data', onData);
    const [cmd, a, b] = head.subarray(0, nl).toString().trim().split(/\s+/);
    const rest = head.subarray(nl + 1);
    if (cmd === 'GET') void get(sock, Number(a), Number(b));
    else if (cmd === 'PUT') put(sock, Number(a), rest);
    else if (cmd === 'ABORT') sock.resetAndDestroy();
    else if (cmd === 'ECHO' || cmd === 'WHO') {
      if (cmd === 'WHO') sock.write(`${process.pid}\n`);
      if (rest.length) sock.write(rest);
      sock.pipe(sock);
    } else sock.end('ERR unknown command\n');
  };
  sock.on('data', onData);
  sock.on('error', () => sock.destroy());
}

async function get(sock: Socket, bytes: number, seed: number): Promise<void> {
  for (const chunk of patternChunks(bytes, seed)) {
    if (!sock.write(chunk)) await new Promise((r) => sock.once('drain', r));
    if (sock.destroyed) return;
  }
  sock.end();
}

function put(sock: Socket, bytes: number, first: Buffer): void {
  const h = createHash('sha256');
  let got = 0;
  const take = (d: Buffer) => {
    const n = Math.min(d.length, bytes - got);
    h.update(d.subarray(0, n));
    got += n;
    if (got >= bytes) {
      sock.off('data', take);
      sock.end(`OK ${h.digest('hex')}\n`);
    }
  };
  sock.on('data', take);
  if (first.length) take(first);
  if (bytes === 0) take(Buffer.alloc(0));
}

const server = createServer(handle);
server.listen({ host, port: Number(portText) }, () => process.stdout.write(`listening ${host}:${portText}\n`));
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(0));
