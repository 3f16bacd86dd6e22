/**
 * The secondary's kernel path over IPv6 (bridge/io/kernel-path.ts, `v6`), on real
 * stacks in the rig's hub: the client's segments to the primary's MAC reach S's TCP
 * through the netdev ingress rule, and S's answers leave by the IPv6 policy route to the
 * primary's MAC, unchanged but for a hop limit of 1, never to the client (nor
 * when the route is gone: the blackhole rule behind it). The primary
 * here only counts what arrives (its TCP kept silent, as its merge would hold it).
 */
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ipAddr, ipv4 } from '../../net/addr.js';
import { distScript } from '../../rig/dist.js';
import { withRig, type RigHost } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';
import { DIVERT_RULE_PRIORITY } from '../../bridge/io/kernel-path.js';

const VIP6 = '2001:db8::100';
const ADDRS = { client: '2001:db8::10', primary: '2001:db8::1', secondary: '2001:db8::2' };
const PORT = 7000;
const TAG = 'k6';

/** The packets the nft rule of `table` whose line holds every one of `needles` has counted. */
async function counter(h: RigHost, family: string, table: string, ...needles: string[]): Promise<number> {
  const out = (await h.exec(['nft', 'list', 'table', family, table])).stdout;
  const line = out.split('\n').find((l) => needles.every((n) => l.includes(n)));
  const m = line && /counter packets (\d+)/.exec(line);
  if (!m) throw new Error(`no counter with ${JSON.stringify(needles)} in ${family} ${table}:\n${out}`);
  return Number(m[1]);
}

/** Calls an export of the compiled kernel-path module inside `h`'s namespace. */
async function kernelPath(h: RigHost, call: string): Promise<void> {
  const mod = pathToFileURL(distScript('bridge/io/kernel-path.js')).href;
  await h.exec([process.execPath, '--input-type=module', '-e', `const k = await import('${mod}'); await k.${call};`], {
    timeoutMs: slow(20_000),
  });
}

describe('the secondary’s kernel path over IPv6', () => {
  it(
    'the client’s SYN to P reaches S’s TCP, and S’s SYN-ACKs go to P’s MAC with hop limit 1, none to the client; detached, nothing is left',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const [c, p, s] = [rig.host('client'), rig.host('primary'), rig.host('secondary')];
        for (const h of [c, p, s]) await h.ipv6(ADDRS[h.name as keyof typeof ADDRS]);
        // The service address: P's on its LAN interface, dormant on S's lo.
        await p.exec(['ip', '-6', 'addr', 'add', `${VIP6}/128`, 'dev', 'eth0', 'nodad']);
        await s.exec(['ip', '-6', 'addr', 'add', `${VIP6}/128`, 'dev', 'lo', 'nodad']);
        // P counts S's copies as they arrive, and its TCP stays silent (its merge would hold the SYN-ACK).
        await p.sh(`nft -f - <<'EOF'
table netdev watch {
  chain in {
    type filter hook ingress device "eth0" priority 0; policy accept;
    ether saddr ${s.mac} ip6 saddr ${VIP6} tcp sport ${PORT} ip6 hoplimit 1 counter comment "from S"
  }
}
table ip6 quiet {
  chain in {
    type filter hook input priority 0; policy accept;
    ip6 daddr ${VIP6} tcp dport ${PORT} drop
  }
}
EOF`);
        // The client counts the segments that reach it from the service (none may: P is silent; not NDP).
        await c.sh(`nft -f - <<'EOF'
table netdev watch {
  chain in {
    type filter hook ingress device "eth0" priority 0; policy accept;
    ether daddr ${c.mac} ip6 saddr ${VIP6} tcp sport ${PORT} counter comment "to client"
  }
}
EOF`);
        const server = s.spawn([
          process.execPath,
          '-e',
          `require('net').createServer((x) => x.pipe(x)).listen(${PORT}, '${VIP6}')`,
        ]);
        const spec = {
          tag: TAG,
          lanInterface: 'eth0',
          vip: ipv4('192.0.2.100'),
          ports: [PORT],
          primaryMac: p.mac,
          selfMac: s.mac,
          primaryAddress: ipv4(p.ip),
          v6: { vip: ipAddr(VIP6), primaryAddress: ipAddr(ADDRS.primary) },
        };
        await kernelPath(s, `installKernelPath(${JSON.stringify(spec)})`);
        expect((await s.exec(['ip', '-6', 'rule', 'show', 'priority', String(DIVERT_RULE_PRIORITY)])).stdout).toMatch(
          /fwmark .* lookup 7466/,
        );
        // The client's connection cannot complete (P is silent); S answers its SYN and each retransmission.
        await c.exec(
          [
            process.execPath,
            '-e',
            `const s = require('net').connect(${PORT}, '${VIP6}'); s.on('error', () => {}); setTimeout(() => process.exit(0), 2500);`,
          ],
          { timeoutMs: slow(20_000) },
        );
        // No more SYN-ACKs once the listener is gone (its half-open sockets with it); the last ones land.
        server.kill('SIGKILL');
        await new Promise((r) => setTimeout(r, 500));
        const inS = await counter(s, 'netdev', `tcpfo_${TAG}`, 'ip6 daddr', "into S's TCP");
        const toP = await counter(p, 'netdev', 'watch', 'from S');
        expect(inS).toBeGreaterThanOrEqual(2); // the SYN and the client's retransmission of it
        expect(toP).toBeGreaterThanOrEqual(2); // S's SYN-ACK to each
        expect(await counter(s, 'ip6', `tcpfo_${TAG}`, 'routed to P')).toBe(toP);
        expect(await counter(c, 'netdev', 'watch', 'to client')).toBe(0);

        // Fail closed: with the table's route gone, S's marked segments (its RSTs now) are dropped, never routed to the client.
        await s.exec(['ip', '-6', 'route', 'flush', 'table', '7466']);
        await c.exec(
          [
            process.execPath,
            '-e',
            `const s = require('net').connect(${PORT}, '${VIP6}'); s.on('error', () => {}); setTimeout(() => process.exit(0), 1500);`,
          ],
          { timeoutMs: slow(20_000) },
        );
        expect(await counter(s, 'netdev', `tcpfo_${TAG}`, 'ip6 daddr', "into S's TCP")).toBeGreaterThan(inS);
        expect(await counter(p, 'netdev', 'watch', 'from S')).toBe(toP);
        expect(await counter(c, 'netdev', 'watch', 'to client')).toBe(0);

        await kernelPath(s, `detachKernelPath('${TAG}')`);
        await kernelPath(s, 'removeDivertRoutes()');
        expect((await s.exec(['nft', 'list', 'tables'])).stdout).not.toContain(`tcpfo_${TAG}`);
        for (const fam of ['-4', '-6'])
          expect(
            (await s.exec(['ip', fam, 'rule', 'show', 'priority', String(DIVERT_RULE_PRIORITY)])).stdout.trim(),
          ).toBe('');
        expect((await s.exec(['ip', '-6', 'route', 'show', 'table', '7466'])).stdout.trim()).toBe('');
      });
    },
    slow(90_000),
  );
});
