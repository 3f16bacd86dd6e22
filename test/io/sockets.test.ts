/**
 * The node's sockets by netlink sock_diag (bridge/io/sockets.ts,
 * native/sockdiag.cc), for real in a rig host: the list a takeover prompts
 * from, and the aborts of diverged connections and of what a previous
 * incarnation left — by exact socket, never the server's listener.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { ipAddr } from '../../net/addr.js';
import { owes } from '../../bridge/secondary/blind.js';
import type { SocketState } from '../../bridge/io/sockets.js';
import { distScript } from '../../rig/dist.js';
import { withRig } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

const PORT = 7000;
const CLIENT = '192.0.2.77';
const SERVER6 = '2001:db8::1';
const CLIENT6 = '2001:db8::77';

/** The probe (rig/servers/sockets-probe.ts): one JSON line per command. */
function probe(proc: ChildProcess): { next: () => Promise<unknown>; ask: (cmd: string) => Promise<unknown> } {
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    const w = waiters.shift();
    if (w) w(l);
    else lines.push(l);
  });
  const next = () =>
    new Promise<unknown>((resolve, reject) => {
      const got = lines.shift();
      if (got !== undefined) return resolve(JSON.parse(got));
      const t = setTimeout(() => reject(new Error(`sockets probe: no answer; stderr: ${err}`)), 20_000);
      waiters.push((l) => {
        clearTimeout(t);
        resolve(JSON.parse(l));
      });
    });
  return {
    next,
    ask: (cmd) => {
      proc.stdin!.write(`${cmd}\n`);
      return next();
    },
  };
}

/** The server's address family and where it listens. */
const CASES = [
  { name: 'IPv4', six: false, listen: null },
  // Node's default, nginx's `listen [::]`: IPv4 connections are AF_INET6 sockets (::ffff:a.b.c.d).
  { name: 'IPv4, the server listening on [::]', six: false, listen: '::' },
  { name: 'IPv6', six: true, listen: null },
] as const;

describe('sockets by sock_diag', () => {
  it.each(CASES)(
    '$name: lists the connections on an address and port with state and Send-Q; aborts exactly the named ones, a vanished one harmlessly (the listener lives), then all',
    async ({ six, listen }) => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const h = rig.host('primary');
        const [addr, client] = six ? [SERVER6, CLIENT6] : [h.ip, CLIENT];
        if (six) {
          await h.ipv6(SERVER6);
          await h.exec(['ip', '-6', 'addr', 'add', `${CLIENT6}/128`, 'dev', 'lo', 'nodad']);
        } else await h.exec(['ip', 'addr', 'add', `${CLIENT}/32`, 'dev', 'lo']);
        const N = 40;
        const BUSY = 5;
        const p = probe(
          h.spawn(
            [
              process.execPath,
              distScript('rig/servers/sockets-probe.js'),
              addr,
              client,
              String(PORT),
              String(N),
              String(BUSY),
              ...(listen ? [listen] : []),
            ],
            { stdio: ['pipe', 'pipe', 'pipe'] },
          ),
        );
        const { ready } = (await p.next()) as { ready: number[] };
        expect(ready).toHaveLength(N);

        const list = (await p.ask('list')) as SocketState[];
        // Only the server's side (local port PORT), one per connection; not the clients' own sockets, nor the listener.
        expect(list.map((s) => s.clientPort).sort()).toEqual([...ready].sort());
        // As the cores name a client: an IPv4 one a number, also where the kernel keeps it as ::ffff:a.b.c.d.
        expect(new Set(list.map((s) => s.client))).toEqual(new Set([ipAddr(client)]));
        expect(list.every((s) => s.servicePort === PORT && s.state === 'ESTAB')).toBe(true);
        // The busy ones hold unacknowledged bytes: a takeover prompts them, not the idle ones.
        const owing = list
          .filter(owes)
          .map((s) => s.clientPort)
          .sort();
        expect(owing).toEqual(ready.slice(0, BUSY).sort());
        expect(list.find((s) => s.clientPort === ready[0])!.sendQueue).toBeGreaterThan(0);

        // Abort three idle ones by key.
        const victims = ready.slice(BUSY, BUSY + 3);
        expect(await p.ask(`destroy ${JSON.stringify(victims)}`)).toBe(3);
        expect(await p.ask('resets')).toBe(3);
        const after = (await p.ask('list')) as SocketState[];
        expect(after.map((s) => s.clientPort).sort()).toEqual(ready.filter((x) => !victims.includes(x)).sort());
        // Again: they are gone, nothing is aborted, and the server's listener (on the same address and port) still serves.
        expect(await p.ask(`destroy ${JSON.stringify(victims)}`)).toBe(0);
        expect(await p.ask('connect')).toBe(true);

        // Everything on the port; the listener still serves.
        expect(await p.ask('destroy-all')).toBe(N - 3);
        expect(await p.ask('list')).toEqual([]);
        expect(await p.ask('connect')).toBe(true);
      });
    },
    slow(60_000),
  );
});
