/**
 * Replication without faults, end to end: real Linux TCP on client, primary
 * and secondary, both bridges started through the CLI, the demo server on
 * both nodes, hub mode — on each of the secondary's data paths (the kernel
 * path, and the paper's pcap path).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Capture } from '../../rig/capture.js';
import { checkTransparency } from '../../rig/oracle.js';
import { DEMO_PORT, finalCounters, TcpfoPair, transfer, VIP } from '../../rig/pair.js';
import { distScript } from '../../rig/dist.js';
import { Rig } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

const MB = 1_000_000;

async function nodeSnapshot(rig: Rig, host: string): Promise<string> {
  const r = await rig
    .host(host)
    .sh(
      'iptables-nft-save 2>/dev/null | grep -v "^#"; nft list ruleset; ip -o addr show; ip -o link show eth0 | grep -o PROMISC; sysctl net.ipv4.conf.all.arp_ignore net.ipv4.conf.eth0.arp_ignore; ip rule; tc qdisc show dev eth0; tc filter show dev eth0 ingress; ip route show table all | grep -v "^local\\|^broadcast\\|^multicast"',
      { allowFail: true },
    );
  return r.stdout.replace(/valid_lft.*$/gm, '');
}

// No node fails in these tests: a detector timeout of 500 ms keeps a CPU-starved
// CI machine (two test files in parallel on two cores) from declaring a busy
// primary dead. The failover tests use the product default, 100 ms.
describe.each(['kernel', 'pcap'] as const)('replication without faults (hub mode, %s data path)', (datapath) => {
  let rig: Rig;
  let pair: TcpfoPair;
  const before: Record<string, string> = {};

  beforeAll(async () => {
    rig = await Rig.create({ mode: 'hub' });
    for (const h of ['primary', 'secondary']) before[h] = await nodeSnapshot(rig, h);
    // The kernel paths on both nodes, or the paper's whole user-space path (pcap on S, the queue translating on P).
    pair = await TcpfoPair.start(rig, {
      heartbeatTimeoutMs: 500,
      datapath,
      extraYaml: `inbound: ${datapath === 'kernel' ? 'kernel' : 'queue'}\n`,
    });
  });

  afterAll(async () => {
    await pair?.stop();
    await rig?.destroy();
  });

  it(
    'a 100 MB download and a 100 MB upload arrive byte-exact, through the merge',
    async () => {
      const cap = await Capture.start(rig.host('client'), `tcp port ${DEMO_PORT}`, 'bulk', 96);
      const c = rig.host('client');
      const get = await transfer(c, 'get', 100 * MB, 11);
      expect(get.error).toBeUndefined();
      expect(get.bytes).toBe(100 * MB);
      expect(get.sha256).toBe(get.expected);
      const put = await transfer(c, 'put', 100 * MB, 12);
      expect(put.error).toBeUndefined();
      expect(put.reply).toBe(`OK ${put.sha256}`);
      const report = checkTransparency(await cap.stop(), VIP, DEMO_PORT);
      expect(report.problems).toEqual([]);
      expect(report.connections).toHaveLength(2);
      expect(report.connections[0]!.dataBytes).toBe(100 * MB);
    },
    slow(180_000),
  );

  it(
    'the client’s capture shows one sequence space, valid checksums, no RST, merged SYN-ACK options',
    async () => {
      const c = rig.host('client');
      const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'oracle');
      const get = await transfer(c, 'get', 2 * MB, 21);
      expect(get.sha256).toBe(get.expected);
      const put = await transfer(c, 'put', 2 * MB, 22);
      expect(put.reply).toBe(`OK ${put.sha256}`);
      const report = checkTransparency(await cap.stop(), VIP, DEMO_PORT);
      expect(report.problems).toEqual([]);
      expect(report.checkedChecksums).toBeGreaterThan(50);
      // The bridge's own segments (merged handshake, ACKs it builds, modified small segments) carry complete sums.
      expect(report.validChecksums).toBeGreaterThan(0);
      expect(report.connections).toHaveLength(2);
      for (const conn of report.connections) {
        // Both servers are Linux on a 1500-byte link: each offered MSS 1460 and a window scale.
        expect(conn.mss).toBe(1460);
        expect(conn.wscale).not.toBeNull();
      }
    },
    slow(60_000),
  );

  it(
    '200 short connections in parallel are all correct',
    async () => {
      const r = await rig
        .host('client')
        .exec(
          [process.execPath, distScript('rig/servers/demo-client.js'), 'many', VIP, String(DEMO_PORT), '20000', '200'],
          {
            timeoutMs: 90_000,
            allowFail: true,
          },
        );
      const out = JSON.parse(r.stdout.trim()) as { ok: number; failed: number; errors: string[] };
      expect(out.errors).toEqual([]);
      expect(out.ok).toBe(200);
    },
    slow(120_000),
  );

  it(
    'an idle connection with TCP keepalive stays up: the pair answers every probe, then the connection still works',
    async () => {
      // socat's keepalive: a probe after 1 s idle, every second, the connection dropped after 3 unanswered.
      // ECHO, 6 s idle (5 probes), then a line that must come back.
      const r = await rig
        .host('client')
        .sh(
          `(printf 'ECHO\\n'; sleep 6; printf 'still here\\n'; sleep 1) | timeout 20 socat -T 15 - TCP:${VIP}:${DEMO_PORT},keepalive,keepidle=1,keepintvl=1,keepcnt=3`,
          { allowFail: true, timeoutMs: 30_000 },
        );
      expect(r.stderr).not.toMatch(/timed out|reset/i);
      expect(r.stdout).toBe('still here\n');
    },
    slow(40_000),
  );

  it(
    'stops cleanly: the merge really happened, and nothing is left installed',
    async () => {
      await pair.stop();
      const p = finalCounters(pair.primary!.log) as {
        inbound: string;
        kernelInbound?: { translated: number; synsPassed: number; mergedBytes?: number };
        merger: {
          releasedBytes: number;
          divergences: number;
          handshakes: number;
          translatedInbound: number;
          divertedSegments: number;
          drops: Record<string, number>;
        };
      };
      const s = finalCounters(pair.secondary!.log) as {
        datapath: string;
        diverter: { diverted: number; injected: number };
      };
      // Server-to-client bytes: 100 MB + 2 MB downloads and 200 × 20 kB; the uploads went the other way,
      // translated. Released by the bridge, or by the kernel's merge (a range the kernel released first is
      // the bridge's no more).
      expect(p.merger.releasedBytes + (p.kernelInbound?.mergedBytes ?? 0)).toBeGreaterThanOrEqual(106 * MB);
      // The client's segments were translated for P's TCP: the common ones in the kernel, or all by the queue.
      if (datapath === 'kernel') {
        expect(p.inbound).toBe('kernel');
        expect(p.kernelInbound!.translated).toBeGreaterThan(1000);
        expect(p.kernelInbound!.synsPassed).toBeGreaterThanOrEqual(204);
        expect(p.merger.translatedInbound).toBeGreaterThan(0); // the closes' segments
      } else {
        expect(p.inbound).toBe('queue');
        expect(p.kernelInbound).toBeUndefined();
        expect(p.merger.translatedInbound).toBeGreaterThan(1000);
      }
      expect(p.merger.divergences).toBe(0);
      expect(p.merger.handshakes).toBeGreaterThanOrEqual(204);
      expect(p.merger.divertedSegments).toBeGreaterThan(1000);
      expect(p.merger.drops['bad-checksum']).toBe(0);
      expect(s.datapath).toBe(datapath);
      if (datapath === 'pcap') {
        expect(s.diverter.diverted).toBeGreaterThan(1000);
      } else {
        // The secondary's bridge never touched a data packet.
        expect(s.diverter.diverted).toBe(0);
        expect(s.diverter.injected).toBe(0);
      }
      for (const h of ['primary', 'secondary']) expect(await nodeSnapshot(rig, h)).toBe(before[h]);
    },
    slow(60_000),
  );
});

const LOSSY = 100 * MB;

// A for loop, not describe.each: its printf-style names took "1%%" for a placeholder.
for (const datapath of ['kernel', 'pcap'] as const)
  describe(`replication under 1% random loss on every link (hub mode, ${datapath} data path)`, () => {
    it(
      '100 MB each way still arrive byte-exact, with no RST',
      async () => {
        const loss = 0.01;
        const rig = await Rig.create({
          mode: 'hub',
          links: { client: { loss }, primary: { loss }, secondary: { loss } },
        });
        let pair: TcpfoPair | undefined;
        try {
          pair = await TcpfoPair.start(rig, {
            heartbeatTimeoutMs: 500,
            datapath,
            extraYaml: `inbound: ${datapath === 'kernel' ? 'kernel' : 'queue'}\n`,
          });
          const c = rig.host('client');
          const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'lossy', 96);
          const get = await transfer(c, 'get', LOSSY, 31, slow(240_000));
          expect(get.error).toBeUndefined();
          expect(get.sha256).toBe(get.expected);
          const put = await transfer(c, 'put', LOSSY, 32, slow(240_000));
          expect(put.error).toBeUndefined();
          expect(put.reply).toBe(`OK ${put.sha256}`);
          const report = checkTransparency(await cap.stop(), VIP, DEMO_PORT);
          expect(report.problems).toEqual([]);
          // The loss really happened: the switch dropped frames on each link.
          const dropped = await rig.switchExec(['nft', 'list', 'ruleset']);
          const counts = [...dropped.stdout.matchAll(/packets (\d+)/g)].map((m) => Number(m[1]));
          expect(counts.reduce((a, b) => a + b, 0)).toBeGreaterThan(3);
        } finally {
          await pair?.stop();
          await rig.destroy();
        }
      },
      slow(480_000),
    );
  });
