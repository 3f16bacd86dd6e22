/** A SIGKILLed bridge leaves its rules, addresses and settings; `tcpfo cleanup` (and the next start) put the node back. */
import { describe, expect, it } from 'vitest';
import { distScript } from '../../rig/dist.js';
import { stateDirOf, TcpfoPair } from '../../rig/pair.js';
import { withRig, type RigHost } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

async function snapshot(h: RigHost): Promise<string> {
  const r = await h.sh(
    'iptables-nft-save -t mangle | grep -v "^#"; nft list ruleset; ip -o addr show; ip -o link show eth0 | grep -o PROMISC; sysctl net.ipv4.conf.all.arp_ignore net.ipv4.conf.eth0.arp_announce net.ipv4.tcp_rto_min_us; ip rule; ip route show table all | grep -v "^local\\|^broadcast\\|^multicast"; tc qdisc show dev eth0; tc filter show dev eth0 ingress',
    { allowFail: true },
  );
  return r.stdout.replace(/valid_lft.*$/gm, '');
}

describe('bridge daemons killed with SIGKILL', () => {
  it(
    '`tcpfo cleanup` leaves both nodes as they were; a restarted bridge comes up cleanly',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const p = rig.host('primary');
        const s = rig.host('secondary');
        const before = { p: await snapshot(p), s: await snapshot(s) };
        const pair = await TcpfoPair.start(rig, { demoServer: false });
        const during = await snapshot(s);
        expect(during).toContain('PROMISC');
        expect(during).toMatch(/tcp_rto_min_us = 20000/);
        // The kernel paths: S's ingress rewrite and divert routing, P's translation program.
        expect(during).toMatch(/table netdev tcpfo_ts/);
        expect(during).toMatch(/lookup 7466/);
        expect(await snapshot(p)).toMatch(/tcpfo_xlate/);
        pair.secondary!.proc.kill('SIGKILL');
        pair.primary!.proc.kill('SIGKILL');
        await new Promise((r) => setTimeout(r, 300));
        expect(await snapshot(s)).not.toBe(before.s);
        for (const h of [p, s]) {
          const r = await h.exec([
            process.execPath,
            distScript('cli.js'),
            'cleanup',
            '--state-dir',
            stateDirOf(rig, h.name),
          ]);
          expect(r.stdout).toMatch(/cleanup: restored/);
        }
        expect(await snapshot(p)).toBe(before.p);
        expect(await snapshot(s)).toBe(before.s);
        // Both killed again and restarted without a cleanup: each new bridge
        // undoes the old state first. (Had the secondary lived, it would have
        // taken over, and the restarted primary would join it as its secondary,
        // or refuse to start with failover.rejoin: refuse: failover.test.ts.)
        const again = await TcpfoPair.start(rig, { demoServer: false });
        again.secondary!.proc.kill('SIGKILL');
        again.primary!.proc.kill('SIGKILL');
        await new Promise((r) => setTimeout(r, 200));
        again.secondary = await again.startDaemon(s, 'secondary');
        again.primary = await again.startDaemon(p, 'primary');
        expect(again.primary.proc.exitCode).toBeNull();
        expect(again.secondary.proc.exitCode).toBeNull();
        expect(again.logs()).toMatch(/undid what a previous primary left behind/);
        expect(again.logs()).toMatch(/undid what a previous secondary left behind/);
        await again.stop();
        expect(await snapshot(p)).toBe(before.p);
        expect(await snapshot(s)).toBe(before.s);
      });
    },
    slow(90_000),
  );
});
