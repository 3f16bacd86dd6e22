/**
 * Debian's key-value servers in rig hosts, for the request/answer benches:
 * memcached and redis, started bound to one address (the service address on
 * both nodes, or a node's own for plain TCP), and redis-benchmark.
 */
import type { ChildProcess } from 'node:child_process';
import type { Rig, RigHost } from './rig.js';

/** Their ports: on the service address of both nodes, and on the primary's own address (plain TCP). */
export const MC_PORT = 11211;
export const MC_PLAIN_PORT = 11311;
export const REDIS_PORT = 6379;
export const REDIS_PLAIN_PORT = 6380;

async function listening(host: RigHost, proc: ChildProcess, port: number, what: string): Promise<ChildProcess> {
  const r = await host.sh(`for i in $(seq 50); do ss -ltn | grep -q ':${port} ' && exit 0; sleep 0.1; done; exit 1`, {
    allowFail: true,
  });
  if (r.code !== 0) {
    proc.kill('SIGKILL');
    throw new Error(`${what} did not start on ${host.name}`);
  }
  return proc;
}

/** memcached on `addr`:`port`, or on each of several addresses (one thread, 64 MB, no UDP). */
export function startMemcached(host: RigHost, addr: string | readonly string[], port: number): Promise<ChildProcess> {
  const list = (typeof addr === 'string' ? [addr] : addr).map((a) => (a.includes(':') ? `[${a}]` : a)).join(',');
  return listening(
    host,
    host.spawn(['memcached', '-u', 'nobody', '-l', list, '-p', String(port), '-U', '0', '-t', '1', '-m', '64']),
    port,
    'memcached',
  );
}

/**
 * redis-server on `addr`:`port` (or each of several addresses), nothing saved; `maxClients`: room for that
 * many connections (the open-file limit raised to match).
 */
export function startRedis(
  host: RigHost,
  addr: string | readonly string[],
  port: number,
  maxClients?: number,
): Promise<ChildProcess> {
  const argv = [
    'redis-server',
    '--bind',
    ...(typeof addr === 'string' ? [addr] : addr),
    '--port',
    String(port),
    '--save',
    '',
    '--appendonly',
    'no',
    '--protected-mode',
    'no',
    '--daemonize',
    'no',
  ];
  if (!maxClients) return listening(host, host.spawn(argv), port, 'redis-server');
  const files = maxClients + 64;
  return listening(
    host,
    host.spawn(['bash', '-c', `ulimit -n ${files} && exec "$@"`, 'redis', ...argv, '--maxclients', String(maxClients)]),
    port,
    'redis-server',
  );
}

/** redis-benchmark GET from `c`: `clients` connections, `pipeline` deep, `n` requests; requests per second. */
export async function redisGet(
  c: RigHost,
  addr: string,
  port: number,
  clients: number,
  pipeline: number,
  n: number,
): Promise<number> {
  const r = await c.exec(
    [
      'redis-benchmark',
      '-h',
      addr,
      '-p',
      String(port),
      '-c',
      String(clients),
      '-P',
      String(pipeline),
      '-n',
      String(n),
      '-t',
      'get',
      '-q',
    ],
    { timeoutMs: 120_000 },
  );
  const m = /GET: ([\d.]+) requests per second/.exec(r.stdout.replace(/\r/g, '\n'));
  if (!m) throw new Error(`redis-benchmark: ${r.stdout.slice(-300)}`);
  return Number(m[1]);
}

/**
 * memcached and redis on the service address `vip` (or each of a dual-stack
 * pair's) of both nodes, and on the primary's own address (`plain`: its
 * addresses) for plain TCP; each process is added to `servers` (the pair
 * stops them).
 */
export async function startKvPair(
  rig: Rig,
  vip: string | readonly string[],
  servers: ChildProcess[],
  plain: readonly string[] = [rig.host('primary').ip],
): Promise<void> {
  for (const n of ['primary', 'secondary']) {
    servers.push(await startMemcached(rig.host(n), vip, MC_PORT));
    servers.push(await startRedis(rig.host(n), vip, REDIS_PORT));
  }
  const p = rig.host('primary');
  servers.push(await startMemcached(p, plain, MC_PLAIN_PORT));
  servers.push(await startRedis(p, plain, REDIS_PLAIN_PORT));
}
