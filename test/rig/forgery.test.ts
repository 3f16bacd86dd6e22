/**
 * A hostile host on the LAN, against a running pair (kernel data path, hub):
 * forged frames change nothing the pair believes. Spoofed client ACKs that
 * walk the sequence space are not recorded by the kernel's translation
 * (RFC 5961 §5); frames forged as the secondary (its MAC, from the service
 * address) — RSTs at random numbers, SYN-ACKs for random connections —
 * neither degrade a live connection nor enter the primary's table. And a
 * killed primary's tc programs are removed by its next start, whoever made
 * their qdisc.
 */
import { describe, expect, it } from 'vitest';
import { Capture } from '../../rig/capture.js';
import { waitForLog } from '../../rig/failover.js';
import { distScript } from '../../rig/dist.js';
import { DEMO_PORT, TcpfoPair, transfer, VIP } from '../../rig/pair.js';
import { scrapeMetrics } from '../../rig/metrics.js';
import { withRig, type Rig, type RigHost } from '../../rig/rig.js';
import { ipv4ToString } from '../../net/addr.js';
import { parseIpv4Tcp, TCP_FIN, TCP_SYN } from '../../bridge/wire/tcp.js';
import { WireError } from '../../bridge/wire/error.js';
import { slow } from '../../rig/slow.js';

const metrics = (rig: Rig) => scrapeMetrics(rig, 'primary');

function echoSession(c: RigHost, ms: number) {
  return c.exec(
    [process.execPath, distScript('rig/servers/demo-client.js'), 'echo', VIP, String(DEMO_PORT), '0', String(ms)],
    { timeoutMs: ms + 20_000 },
  );
}

const forge = (h: RigHost, args: Array<string | number>) =>
  h.exec([process.execPath, distScript('rig/helpers/forge.js'), ...args.map(String)]);

type Echo = { echoed: number; sent: number; mismatched: number; maxRttMs: number; error?: string };

describe('forged frames on the LAN (hub mode, kernel data path)', () => {
  it(
    'spoofed client ACKs walking the sequence space (X + k·2³⁰) are not recorded: the connection stays established and merged',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        // A short handshake timeout: a connection whose client the bridge believes never acknowledged anything goes after 1 s.
        const pair = await TcpfoPair.start(rig, { extraYaml: 'limits:\n  handshake_timeout_ms: 1000\n' });
        try {
          const c = rig.host('client');
          const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'acks', 128);
          const session = echoSession(c, 5000);
          await new Promise((res) => setTimeout(res, 400));
          // What the client has seen: the server's next sequence number (its ACK) and its own.
          let serverNxt = -1;
          let clientNxt = -1;
          let clientPort = -1;
          for (const f of await cap.stop()) {
            const p = parseIpv4Tcp(f.data.subarray(14));
            if (p instanceof WireError) continue;
            const t = p.tcp;
            const end = (t.seq + t.payloadLength + (t.has(TCP_SYN) ? 1 : 0) + (t.has(TCP_FIN) ? 1 : 0)) >>> 0;
            if (ipv4ToString(p.ip.src) === VIP) serverNxt = end;
            else {
              clientNxt = end;
              clientPort = t.srcPort;
            }
          }
          expect(serverNxt).toBeGreaterThanOrEqual(0);
          // The old serial maximum's worst case: it would end 2²⁹ ahead of every real ACK.
          const x = (serverNxt + 3 * 2 ** 29) >>> 0;
          await forge(c, [
            'acks',
            'eth0',
            c.mac,
            rig.host('primary').mac,
            c.ip,
            clientPort,
            VIP,
            DEMO_PORT,
            clientNxt,
            x,
            4,
          ]);
          const r = JSON.parse((await session).stdout.trim()) as Echo;
          expect(r.error, pair.logs()).toBeUndefined();
          expect(r.mismatched).toBe(0);
          expect(r.echoed, pair.logs()).toBeGreaterThanOrEqual(r.sent - 1);
          const m = await metrics(rig);
          expect(m('tcpfo_kernel_inbound_total{action="out-of-window"}')).toBeGreaterThanOrEqual(3);
          expect(m('tcpfo_drops_total{reason="unknown-connection"}')).toBe(0);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(60_000),
  );

  it(
    'frames forged as the secondary: RSTs at random numbers do not degrade a live session; 2,000 SYN-ACKs for random connections do not enter the table',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await TcpfoPair.start(rig);
        try {
          const c = rig.host('client');
          const session = echoSession(c, 5000);
          await new Promise((res) => setTimeout(res, 400));
          const port = (
            await c.sh(`ss -Htn state established dst ${VIP}:${DEMO_PORT} | awk '{print $3}' | sed 's/.*://'`)
          ).stdout.trim();
          expect(port).toMatch(/^\d+$/);
          const sMac = rig.host('secondary').mac;
          const pMac = rig.host('primary').mac;
          const rsts = await forge(c, ['rsts', 'eth0', sMac, pMac, VIP, DEMO_PORT, c.ip, port, 4]);
          expect(JSON.parse(rsts.stdout) as { sent: number }).toEqual({ sent: 4 });
          await forge(c, ['synacks', 'eth0', sMac, pMac, VIP, DEMO_PORT, c.ip, 2000]);
          await new Promise((res) => setTimeout(res, 300));
          const m = await metrics(rig);
          const table = ['handshake', 'merging', 'degraded', 'closed'].reduce(
            (a, s) => a + m(`tcpfo_connections{state="${s}"}`),
            0,
          );
          expect(table).toBe(1);
          expect(m('tcpfo_connections{state="merging"}')).toBe(1);
          expect(m('tcpfo_drops_total{reason="out-of-window"}')).toBe(4);
          const r = JSON.parse((await session).stdout.trim()) as Echo;
          expect(r.error, pair.logs()).toBeUndefined();
          expect(r.echoed).toBeGreaterThanOrEqual(r.sent - 1);
          expect(pair.logs()).not.toMatch(/degraded to primary-only/);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(60_000),
  );
});

describe('a killed primary’s tc programs (switch mode)', () => {
  it(
    'are removed by the next start of that node, also when the clsact qdisc was not the bridge’s: the node, now the secondary, copies nothing back',
    async () => {
      await withRig({ mode: 'switch' }, async (rig) => {
        const p = rig.host('primary');
        await p.sh('tc qdisc add dev eth0 clsact');
        const pair = await TcpfoPair.start(rig, { heartbeatTimeoutMs: 300 });
        try {
          const filters = async () =>
            (await p.sh('tc filter show dev eth0 ingress; tc filter show dev eth0 egress')).stdout;
          expect(await filters()).toMatch(/tcpfo_xlate/);
          expect(await filters()).toMatch(/tcpfo_sent/);
          pair.primary!.proc.kill('SIGKILL');
          await waitForLog(pair, /took over the service address/);
          pair.primary = await pair.startDaemon(p, 'primary');
          await waitForLog(pair, /joining as its secondary \(roles swapped\)/);
          expect(pair.logs()).toMatch(/removed the tc programs a previous primary bridge left on this node/);
          // The new primary (the other node) copies to it; it copies nothing back: no program of ours on it.
          await waitForLog(pair, /now the primary \(roles swapped\)/);
          expect(await filters()).not.toMatch(/tcpfo/);
          const r = await transfer(rig.host('client'), 'get', 5_000_000, 9, 30_000);
          expect(r.error, pair.logs()).toBeUndefined();
          expect(r.sha256).toBe(r.expected);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(90_000),
  );
});
