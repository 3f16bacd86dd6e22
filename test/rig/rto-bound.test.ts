/**
 * The node's bound on TCP's retransmission timeout (failover.rto_min_ms):
 * what it does to the servers' sockets, whichever way it is set — the
 * sysctl (Linux 6.11 on) or the rto_min metric of the LAN routes (every
 * kernel; the only way before 6.11, Debian 12's 6.1 among them) — and that
 * the routes come back as they were after a stop and after a SIGKILL.
 */
import { describe, expect, it } from 'vitest';
import { distScript } from '../../rig/dist.js';
import { DEMO_PORT, stateDirOf, TcpfoPair, VIP } from '../../rig/pair.js';
import { withRig, type Rig, type RigHost } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

async function routes(h: RigHost): Promise<string> {
  return (await h.exec(['ip', 'route', 'show', 'table', 'main'])).stdout.trim();
}

/** The RTO (ms) `ss` shows for the server's sockets of the service port on `h`. */
async function serverRtos(h: RigHost): Promise<number[]> {
  const out = (await h.exec(['ss', '-tin', 'state', 'established', `( sport = :${DEMO_PORT} )`])).stdout;
  return [...out.matchAll(/\brto:(\d+(?:\.\d+)?)/g)].map((m) => Number(m[1]));
}

/** The servers' RTO on both nodes while a client echoes lines through the pair (a few RTT samples in). */
async function rtosDuringEcho(rig: Rig): Promise<{ p: number[]; s: number[] }> {
  const c = rig.host('client');
  const echo = c.exec([
    process.execPath,
    distScript('rig/servers/demo-client.js'),
    'echo',
    VIP,
    String(DEMO_PORT),
    '0',
    '3000',
  ]);
  try {
    await new Promise((r) => setTimeout(r, 1500));
    return { p: await serverRtos(rig.host('primary')), s: await serverRtos(rig.host('secondary')) };
  } finally {
    const r = JSON.parse((await echo).stdout) as { echoed: number; mismatched: number; error?: string };
    expect(r.error).toBeUndefined();
    expect(r.echoed).toBeGreaterThan(0);
  }
}

describe('the retransmission timeout’s bound', () => {
  it(
    'rto_bound: routes — set on the LAN routes of both nodes, taken by the servers’ sockets, undone by a stop and by cleanup after SIGKILL',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const p = rig.host('primary');
        const s = rig.host('secondary');
        const before = { p: await routes(p), s: await routes(s) };
        expect(before.p).not.toMatch(/rto_min/);
        const pair = await TcpfoPair.start(rig, { extraYaml: 'failover:\n  rto_bound: routes\n' });
        try {
          for (const h of [p, s])
            expect(await routes(h)).toMatch(
              /192\.0\.2\.0\/24 dev eth0 proto kernel scope link src \S+ rto_min lock 20ms/,
            );
          expect(pair.logs()).toMatch(/the retransmission timeout's bound is set on the routes through eth0/);
          const rto = await rtosDuringEcho(rig);
          // Linux's own floor is 200 ms: a socket below it took the route's 20 ms.
          expect(rto.p.length).toBeGreaterThan(0);
          expect(rto.s.length).toBeGreaterThan(0);
          for (const x of [...rto.p, ...rto.s]) expect(x).toBeLessThan(200);
          const st = JSON.parse(
            (
              await p.exec([
                process.execPath,
                distScript('cli.js'),
                'status',
                '--json',
                '-c',
                pair.configFor('primary'),
              ])
            ).stdout,
          ) as { kernel: { rtoBound: string; release: string } };
          expect(st.kernel.rtoBound).toBe('routes');
        } finally {
          await pair.stop();
        }
        expect(await routes(p)).toBe(before.p);
        expect(await routes(s)).toBe(before.s);

        // Killed: the journal holds the routes as they were; cleanup puts them back.
        const again = await TcpfoPair.start(rig, { demoServer: false, extraYaml: 'failover:\n  rto_bound: routes\n' });
        again.secondary!.proc.kill('SIGKILL');
        again.primary!.proc.kill('SIGKILL');
        await new Promise((r) => setTimeout(r, 300));
        expect(await routes(p)).toMatch(/rto_min lock 20ms/);
        for (const h of [p, s]) {
          const r = await h.exec([
            process.execPath,
            distScript('cli.js'),
            'cleanup',
            '--state-dir',
            stateDirOf(rig, h.name),
          ]);
          expect(r.stdout).toMatch(/route 192\.0\.2\.0\/24 .* without rto_min/);
        }
        expect(await routes(p)).toBe(before.p);
        expect(await routes(s)).toBe(before.s);
      });
    },
    slow(120_000),
  );

  it(
    'rto_bound: auto — the servers’ sockets are bounded on this kernel, by whichever way it has',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await TcpfoPair.start(rig);
        try {
          const rto = await rtosDuringEcho(rig);
          expect(rto.p.length).toBeGreaterThan(0);
          for (const x of [...rto.p, ...rto.s]) expect(x).toBeLessThan(200);
          const metrics = (await rig.host('primary').exec(['curl', '-sf', 'http://127.0.0.1:9464/metrics'])).stdout;
          expect(metrics).toMatch(/tcpfo_kernel_info\{release="[^"]+",rto_bound="(sysctl|routes)"\} 1/);
          expect(metrics).toMatch(/tcpfo_kernel_facility\{facility="net\.ipv4\.tcp_rto_min_us"\} [01]/);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );
});
