/**
 * The IPv6 views against Linux's own packets (bridge/wire/ipv6.ts): a TCP echo
 * between two namespaces over IPv6, every frame captured and parsed. Linux
 * sends with its checksum offload on, so a captured TCP checksum is either
 * final or the partial one the NIC would finish — the pseudo-header sum
 * alone — and each is checked as what it is.
 */
import { describe, expect, it } from 'vitest';
import { Capture } from '../../rig/capture.js';
import { distScript } from '../../rig/dist.js';
import { ipv6 } from '../../net/addr.js';
import { addressClaimer } from '../../bridge/wire/ndisc.js';
import { withRig } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';
import { WireError } from '../../bridge/wire/error.js';
import { EthernetFrame, ETHERTYPE_IPV6 } from '../../bridge/wire/ethernet.js';
import { NH_TCP, parseIpv6Tcp } from '../../bridge/wire/ipv6.js';
import { TCP_ACK_FLAG, TCP_SYN } from '../../bridge/wire/tcp.js';

const SERVER = '2001:db8::1';
const CLIENT = '2001:db8::10';
const BYTES = 300_000;

describe('IPv6 TCP from Linux, parsed', () => {
  it(
    'an echo of 300 kB over IPv6: every frame parses, every checksum is right (final or partial), both SYNs carry their options',
    async () => {
      await withRig({ mode: 'switch' }, async (rig) => {
        const [c, p] = [rig.host('client'), rig.host('primary')];
        await c.ipv6(CLIENT);
        await p.ipv6(SERVER);
        const cap = await Capture.start(p, 'ip6 and tcp', 'v6');
        p.spawn([process.execPath, '-e', `require('net').createServer((s) => s.pipe(s)).listen(7000, '${SERVER}')`]);
        const client = `
          const net = require('net');
          const want = Buffer.alloc(${BYTES}, 'v6');
          const tryOnce = (n) => {
            const s = net.connect(7000, '${SERVER}');
            let got = 0;
            s.on('connect', () => s.end(want));
            s.on('data', (d) => (got += d.length));
            s.on('end', () => { console.log(got); process.exit(0); });
            s.on('error', () => (n > 0 ? setTimeout(() => tryOnce(n - 1), 100) : process.exit(1)));
          };
          tryOnce(50);`;
        const r = await c.exec([process.execPath, '-e', client], { timeoutMs: slow(30_000) });
        expect(Number(r.stdout.trim())).toBe(BYTES);
        const frames = await cap.stop();
        let parsed = 0;
        let final = 0;
        const syns: string[] = [];
        let synAcks = 0;
        for (const f of frames) {
          const eth = EthernetFrame.parse(f.data);
          if (eth instanceof WireError) throw eth;
          expect(eth.etherType).toBe(ETHERTYPE_IPV6);
          const v = parseIpv6Tcp(f.data, eth.payloadOffset);
          if (v instanceof WireError) throw v;
          expect(v.ip.protocol).toBe(NH_TCP);
          expect([v.ip.srcString, v.ip.dstString].sort()).toEqual([SERVER, CLIENT].sort());
          const ok = v.tcp.checksumValid();
          expect(ok || v.tcp.checksumPartial(), `checksum of a segment of ${v.tcp.payloadLength} bytes`).toBe(true);
          if (ok) final++;
          if (v.tcp.has(TCP_SYN) && v.tcp.has(TCP_ACK_FLAG)) synAcks++;
          if (v.tcp.has(TCP_SYN)) {
            const o = v.tcp.options();
            if (o instanceof WireError) throw o;
            syns.push(o.map((x) => x.kind).join(','));
          }
          parsed++;
        }
        console.log(`IPv6 echo: ${parsed} frames parsed, ${final} with a final TCP checksum, the rest partial`);
        expect(parsed).toBeGreaterThan(10);
        expect(synAcks).toBeGreaterThanOrEqual(1);
        // Linux's defaults: MSS, SACK permitted, timestamps and window scale on both SYNs.
        // (A connect that came before the server listened is refused and tried again: more than two.)
        expect(syns.length).toBeGreaterThanOrEqual(2);
        for (const s of syns) expect(s.split(',').sort()).toEqual(['mss', 'sack-permitted', 'timestamp', 'wscale']);
      });
    },
    slow(60_000),
  );

  it(
    'Linux takes our unsolicited advertisement (its neighbour entry moves to our MAC) and answers our DAD probe with an advertisement we read as a claim',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const [c, p] = [rig.host('client'), rig.host('primary')];
        const VIP6 = '2001:db8::100';
        await c.ipv6(CLIENT);
        // The client knew the service address at another MAC (the node that died).
        await c.exec([
          'ip',
          '-6',
          'neigh',
          'replace',
          VIP6,
          'lladdr',
          '02:00:00:00:00:99',
          'dev',
          'eth0',
          'nud',
          'stale',
        ]);
        const forge = (args: string[]) => p.exec([process.execPath, distScript('rig/helpers/forge.js'), ...args]);
        await forge(['na', 'eth0', p.mac, VIP6]);
        const neigh = (await c.exec(['ip', '-6', 'neigh', 'show', VIP6, 'dev', 'eth0'])).stdout;
        expect(neigh).toContain(`lladdr ${p.mac.toLowerCase()}`);
        // The client holds CLIENT: a DAD probe for it is answered, to all nodes.
        const cap = await Capture.start(p, 'icmp6', 'nd');
        await forge(['dad', 'eth0', p.mac, CLIENT]);
        // Linux answers at once (no delay for a DAD answer): half a second is ample.
        await new Promise((r) => setTimeout(r, 500));
        const frames = await cap.stop();
        const claims = frames.map((f) => addressClaimer(f.data, ipv6(CLIENT), p.mac)).filter((x) => x !== null);
        expect(claims, `${frames.length} ICMPv6 frames`).toContain(c.mac.toLowerCase());
      });
    },
    slow(60_000),
  );

  it(
    'the active node answers the LAN for its dormant IPv6 service address (io/presence.ts): a client reaches it, a DAD probe sees the claim; dormant alone, nobody answers',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const [c, p] = [rig.host('client'), rig.host('primary')];
        const VIP4 = '10.0.0.100';
        const VIP6 = '2001:db8::100';
        await c.ipv6(CLIENT);
        await p.ipv6(SERVER);
        // Dormant, as a bridge puts it (io/node-state.ts): on lo, no DAD.
        await p.exec(['ip', '-6', 'addr', 'add', `${VIP6}/128`, 'dev', 'lo', 'nodad']);
        // Any of three echoes answered (the nodes' link-local addresses may still be tentative at first).
        const ping = async (to: string) =>
          (await c.exec(['ping', '-6', '-c', '3', '-i', '0.3', '-W', '2', to], { allowFail: true })).code === 0;
        expect(await ping(SERVER), 'the link carries IPv6').toBe(true);
        // Linux answers solicitations for the receiving interface's addresses only.
        expect(await ping(VIP6), 'a dormant address is not answered by the kernel').toBe(false);
        await c.exec(['ip', '-6', 'neigh', 'flush', 'dev', 'eth0']);
        const presence = p.spawn([
          process.execPath,
          distScript('rig/helpers/presence.js'),
          'eth0',
          VIP4,
          VIP6,
          p.mac,
          '4000',
        ]);
        let out = '';
        presence.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        const done = new Promise<void>((r) => presence.on('exit', () => r()));
        for (let i = 0; i < 100 && !out.includes('ready'); i++) await new Promise((r) => setTimeout(r, 20));
        expect(out).toContain('ready');
        expect(await ping(VIP6), 'the client reaches the service address through our advertisement').toBe(true);
        const neigh = (await c.exec(['ip', '-6', 'neigh', 'show', VIP6, 'dev', 'eth0'])).stdout;
        expect(neigh).toContain(`lladdr ${p.mac.toLowerCase()}`);
        // The peer's split-brain probe: a DAD probe, answered to all nodes.
        const cap = await Capture.start(c, 'icmp6', 'dad');
        const forge = (args: string[]) => c.exec([process.execPath, distScript('rig/helpers/forge.js'), ...args]);
        await forge(['dad', 'eth0', c.mac, VIP6]);
        await new Promise((r) => setTimeout(r, 300));
        const frames = await cap.stop();
        const claims = frames.map((f) => addressClaimer(f.data, ipv6(VIP6), c.mac)).filter((x) => x !== null);
        expect(claims, `${frames.length} ICMPv6 frames`).toContain(p.mac.toLowerCase());
        await done;
        const stats = JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as {
          requests: number;
          replies: number;
        };
        expect(stats.replies).toBeGreaterThanOrEqual(2);
        expect(stats.requests).toBeGreaterThanOrEqual(stats.replies);
      });
    },
    slow(60_000),
  );
});
