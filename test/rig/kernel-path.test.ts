/**
 * The secondary's kernel data path fails closed (io/kernel-path.ts): while S
 * is the secondary, none of its failover segments reaches a client except
 * through the primary's merge — also with S's bridge SIGKILLed, and also
 * when the primary's bridge is dead and its node forwards packets.
 */
import { describe, expect, it } from 'vitest';
import { Capture, type CapturedFrame } from '../../rig/capture.js';
import { DEMO_PORT, TcpfoPair, transfer, VIP } from '../../rig/pair.js';
import { withRig } from '../../rig/rig.js';
import { EthernetFrame, ETHERTYPE_IPV4 } from '../../bridge/wire/ethernet.js';
import { WireError } from '../../bridge/wire/error.js';
import { IP_SRC } from '../../bridge/wire/ipv4.js';
import { ipv4 } from '../../net/addr.js';
import { distScript } from '../../rig/dist.js';
import { slow } from '../../rig/slow.js';

/** Frames from `srcMac` to `dstMac` carrying IPv4 from the service address. */
function fromService(frames: readonly CapturedFrame[], srcMac: string, dstMac?: string): number {
  const vip = ipv4(VIP);
  return frames.filter((f) => {
    const eth = EthernetFrame.parse(f.data);
    if (eth instanceof WireError || eth.etherType !== ETHERTYPE_IPV4) return false;
    if (eth.srcString !== srcMac || (dstMac !== undefined && eth.dstString !== dstMac)) return false;
    return f.data.length >= eth.payloadOffset + IP_SRC + 4 && f.data.readUInt32BE(eth.payloadOffset + IP_SRC) === vip;
  }).length;
}

describe('kernel data path: fail closed (hub mode, 100 Mbit/s client link)', () => {
  it(
    'the secondary’s bridge SIGKILLed mid-download: S’s segments keep going to the primary only, none to the client; the download completes byte-exact',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { datapath: 'kernel' });
        try {
          const c = rig.host('client');
          const s = rig.host('secondary');
          const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'kfc', 96);
          const t = transfer(c, 'get', 30_000_000, 81, 60_000);
          await new Promise((res) => setTimeout(res, 800));
          pair.secondary!.proc.kill('SIGKILL');
          const r = await t;
          expect(r.error, pair.logs()).toBeUndefined();
          expect(r.sha256).toBe(r.expected);
          const frames = await cap.stop();
          // S's segments crossed the hub all along (the client's capture sees them, addressed to P) …
          expect(fromService(frames, s.mac, rig.host('primary').mac)).toBeGreaterThan(100);
          // … and never one addressed to the client, before or after the kill.
          expect(fromService(frames, s.mac, c.mac)).toBe(0);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );

  it(
    'the primary’s bridge dead, its rules and addresses cleaned up, IP forwarding on: S’s diverted segments die there (TTL 1), none reaches the client',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        // A long detector timeout: S goes on diverting for the whole window.
        const pair = await TcpfoPair.start(rig, { datapath: 'kernel', heartbeatTimeoutMs: 8000 });
        try {
          const c = rig.host('client');
          const p = rig.host('primary');
          const s = rig.host('secondary');
          await p.exec([
            'sysctl',
            '-qw',
            'net.ipv4.ip_forward=1',
            'net.ipv4.conf.all.rp_filter=0',
            'net.ipv4.conf.eth0.rp_filter=0',
          ]);
          const t = transfer(c, 'get', 200_000_000, 82, 60_000);
          t.catch(() => undefined); // it cannot finish: nobody serves it in this test
          await new Promise((res) => setTimeout(res, slow(800)));
          // P's server dies and its sockets are aborted behind P's rules (their RSTs end in the merger), then the bridge dies and is cleaned up after.
          pair.servers[0]!.kill('SIGKILL');
          await new Promise((res) => setTimeout(res, slow(300)));
          await p.exec(['ss', '-K', 'src', VIP]);
          pair.primary!.proc.kill('SIGKILL');
          await p.exec([
            process.execPath,
            distScript('cli.js'),
            'cleanup',
            '--state-dir',
            `${rig.tmpdir}/state-primary`,
          ]);
          const atClient = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'kfwd', 96);
          const atPrimary = await Capture.start(p, `tcp port ${DEMO_PORT}`, 'kfwdp', 96);
          // New connections meanwhile (the client still takes P's MAC for the service address):
          // S's TCP answers each SYN with a SYN-ACK, diverted to P.
          const wait = slow(100) / 1000; // seconds per connect (emulation: scaled)
          await c.sh(
            `for i in $(seq 30); do timeout ${wait} socat -u - TCP:${VIP}:${DEMO_PORT},connect-timeout=${wait} </dev/null; done`,
            { allowFail: true, timeoutMs: 30_000 },
          );
          await new Promise((res) => setTimeout(res, slow(500)));
          const toP = await atPrimary.stop();
          const seen = await atClient.stop();
          // S kept sending (its SYN-ACKs, its retransmissions) …
          expect(fromService(toP, s.mac, p.mac)).toBeGreaterThan(20);
          // … and the primary's node, forwarding, routed none of them on.
          expect(fromService(seen, p.mac)).toBe(0);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );
});
