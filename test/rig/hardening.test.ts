/**
 * Hostile traffic at the pair, end to end: a SYN flood from
 * spoofed addresses and forged "diverted" segments, both during a download.
 * The download stays byte-exact, the connection table and the bridge's
 * memory stay bounded, half-open entries expire, forgeries are counted.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { killNode, waitForLog } from '../../rig/failover.js';
import { distScript } from '../../rig/dist.js';
import { DEMO_PORT, TcpfoPair, transfer, VIP } from '../../rig/pair.js';
import { fifoThreads, scrapeMetrics } from '../../rig/metrics.js';
import { withRig, type RigHost } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

const connections = (m: (metric: string) => number) =>
  ['handshake', 'merging', 'degraded', 'closed'].reduce((a, s) => a + (m(`tcpfo_connections{state="${s}"}`) || 0), 0);

describe('privileges', () => {
  it(
    'after setup both bridges keep only CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and CAP_SYS_NICE, with no_new_privs; takeover and stop still work',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { heartbeatTimeoutMs: 500 });
        try {
          for (const d of [pair.primary!, pair.secondary!]) {
            const st = readFileSync(`/proc/${d.proc.pid}/status`, 'utf8');
            expect(st).toMatch(/^CapEff:\s+0000008000803000$/m);
            expect(st).toMatch(/^CapBnd:\s+0000008000803000$/m);
            expect(st).toMatch(/^NoNewPrivs:\s+1$/m);
          }
          expect(pair.logs()).toMatch(/capabilities limited to CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, CAP_SYS_NICE;/);
          // The ARP answers and the heartbeat reader run SCHED_FIFO at 10 (scheduling.realtime_priority),
          // a spinning one bounded by RLIMIT_RTTIME; the metrics say so.
          for (const [d, m] of [
            [pair.primary!, await scrapeMetrics(rig, 'primary')],
            [pair.secondary!, await scrapeMetrics(rig, 'secondary')],
          ] as const) {
            expect(fifoThreads(d.proc.pid!).map(([, prio]) => prio)).toEqual([10, 10]);
            expect(readFileSync(`/proc/${d.proc.pid}/limits`, 'utf8')).toMatch(
              /^Max realtime timeout\s+200000\s+400000\s+us/m,
            );
            expect(m('tcpfo_realtime_thread{thread="arp"}')).toBe(1);
            expect(m('tcpfo_realtime_thread{thread="heartbeat"}')).toBe(1);
          }
          // The client's ARP for the service address is answered by the primary, and how late is known.
          await rig.host('client').sh(`ip neigh flush all; ping -c 1 -W 1 ${VIP} >/dev/null || true`);
          const pm = await scrapeMetrics(rig, 'primary');
          expect(pm('tcpfo_arp_replies_total')).toBeGreaterThan(0);
          expect(pm('tcpfo_arp_answer_delay_max_seconds')).toBeGreaterThan(0);
          expect(pm('tcpfo_arp_answers_late_total')).toBeGreaterThanOrEqual(0);
          // The takeover path (rules, promiscuous mode, addresses) needs only those.
          await killNode(pair, 'primary');
          const c = rig.host('client');
          const r = await transfer(c, 'get', 1_000_000, 75);
          expect(r.sha256).toBe(r.expected);
          await waitForLog(pair, /promiscuous mode off, rules removed/);
        } finally {
          await pair.stop();
        }
        // And so does the clean stop: nothing left (checked on the secondary, which ran to the end).
        const left = await rig
          .host('secondary')
          .sh('iptables-nft-save 2>/dev/null | grep -c TCPFO || true; ip -o link show eth0 | grep -c PROMISC || true');
        expect(left.stdout.trim().split('\n')).toEqual(['0', '0']);
      });
    },
    slow(60_000),
  );
});

describe('divergent replicas', () => {
  it(
    'a server answering differently on P and S: the client gets P’s bytes only, counted and logged; after the primary dies the connection is reset, not continued',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await TcpfoPair.start(rig);
        try {
          const c = rig.host('client');
          // WHO: the server's pid (differs between the replicas), then echoes every
          // 50 ms for up to 25 s: the reset after the takeover must end it long before.
          const who = c.exec(
            [process.execPath, distScript('rig/servers/demo-client.js'), 'who', VIP, String(DEMO_PORT), '0', '25000'],
            { timeoutMs: 40_000 },
          );
          await waitForLog(pair, /degraded to primary-only: different bytes at the same offset/);
          await new Promise((res) => setTimeout(res, 700));
          const m = await scrapeMetrics(rig, 'primary');
          expect(m('tcpfo_divergences_total')).toBe(1);
          expect(m('tcpfo_connections{state="degraded"}')).toBe(1);
          await killNode(pair, 'primary');
          const r = JSON.parse((await who).stdout.trim()) as {
            who: string;
            echoed: number;
            mismatched: number;
            error?: string;
          };
          // P's bytes only: the greeting is the primary server's.
          expect(r.who).toBe(String(pair.servers[0]!.pid));
          expect(r.echoed).toBeGreaterThan(5); // primary-only, it worked
          // Then a clean end: reset by the secondary, never S's different stream.
          expect(r.mismatched).toBe(0);
          expect(r.error, `${JSON.stringify(r)}\n${pair.logs()}`).toBe('ECONNRESET');
          await waitForLog(pair, /took over the service address/);
          expect(pair.logs()).toMatch(/closed 1 diverged connection\(s\)/);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(60_000),
  );
});

/**
 * The secondary's TCP loses its service connections without a word: its RSTs
 * (now, and for every client segment after) never leave the host.
 */
function loseConnectionsSilently(s: RigHost): Promise<unknown> {
  return s.sh(
    `nft add table ip silentrst && nft add chain ip silentrst out '{ type filter hook output priority -500; }' && ` +
      `nft add rule ip silentrst out ip saddr ${VIP} tcp sport ${DEMO_PORT} 'tcp flags & rst == rst' drop; ` +
      `ss -K -tn state connected src ${VIP} '( sport = :${DEMO_PORT} )'`,
  );
}

describe('a live secondary that silently lost a connection', () => {
  it(
    'its socket vanishes mid-download with no RST: after limits.secondary_silence_ms the primary goes on alone, byte-exact, counted; after a takeover such a connection is reset, not continued',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { extraYaml: 'limits:\n  secondary_silence_ms: 1000\n' });
        try {
          const c = rig.host('client');
          const s = rig.host('secondary');
          const loseSilently = () => loseConnectionsSilently(s);
          const t = transfer(c, 'get', 30_000_000, 61, 60_000);
          await new Promise((res) => setTimeout(res, 700));
          await loseSilently();
          const got = await t;
          expect(got.error, pair.logs()).toBeUndefined();
          expect(got.sha256).toBe(got.expected);
          console.log(`secondary lost its socket: download ${got.ms} ms, longest gap ${got.maxGapMs} ms`);
          expect((await scrapeMetrics(rig, 'primary'))('tcpfo_secondary_silent_total')).toBe(1);
          expect(pair.logs()).toMatch(/degraded to primary-only: the secondary made no progress for \d+ ms/);
          // Such a connection is listed as diverged: the secondary cannot
          // continue it, so after a takeover it resets it.
          await s.sh('nft delete table ip silentrst');
          const long = transfer(c, 'get', 100_000_000, 62, 60_000);
          await new Promise((res) => setTimeout(res, 700));
          await loseSilently();
          const deadline = Date.now() + 10_000;
          while ((await scrapeMetrics(rig, 'primary'))('tcpfo_secondary_silent_total') < 2) {
            if (Date.now() > deadline) throw new Error(`the second connection was never found silent:\n${pair.logs()}`);
            await new Promise((res) => setTimeout(res, 100));
          }
          // The secondary's resets may leave again (the lost socket stays lost).
          await s.sh('nft delete table ip silentrst');
          // The primary's notice (every 250 ms) names this connection to the secondary: wait until it has.
          const port = (
            await c.sh(`ss -Htn state established dst ${VIP}:${DEMO_PORT} | awk '{print $3}' | sed 's/.*://'`)
          ).stdout.trim();
          expect(port).toMatch(/^\d+$/);
          const reported = async () => {
            const r = await s.exec(
              [process.execPath, distScript('cli.js'), 'status', '--json', '-c', pair.configFor('secondary')],
              { allowFail: true, timeoutMs: 5000 },
            );
            return (JSON.parse(r.stdout.split(/\n(?=\{)/)[0] || '{}') as { diverged?: string[] }).diverged ?? [];
          };
          while (!(await reported()).some((d) => d.startsWith(`${rig.host('client').ip}:${port} `))) {
            if (Date.now() > deadline + 5000)
              throw new Error(`the secondary never heard the connection diverged:\n${pair.logs()}`);
            await new Promise((res) => setTimeout(res, 100));
          }
          await killNode(pair, 'primary');
          const l = await long;
          expect(l.error).toMatch(/ECONNRESET/);
          expect(l.firstDiff).toBe(-1); // every byte the client got was right
          expect(l.bytes).toBeGreaterThan(0);
          // The kernel path knows no client's numbers: it prods every connection the primary still lists (the first one too, over but listed for a while).
          await waitForLog(pair, /closed [1-9]\d* diverged connection\(s\)/);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(90_000),
  );

  it(
    'its socket vanishes mid-upload with no RST: the kernel merge lets the connection go as S’s ACK stays behind (ack-lag), and the primary goes on alone, byte-exact',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { extraYaml: 'limits:\n  secondary_silence_ms: 1000\n' });
        try {
          const s = rig.host('secondary');
          const t = transfer(rig.host('client'), 'put', 30_000_000, 63, 60_000);
          await new Promise((res) => setTimeout(res, 700));
          await loseConnectionsSilently(s);
          const got = await t;
          expect(got.error, pair.logs()).toBeUndefined();
          expect(got.reply).toBe(`OK ${got.sha256}`); // the server hashed every byte the client sent
          console.log(`secondary lost its socket: upload ${got.ms} ms, longest gap ${got.maxGapMs} ms`);
          const m = await scrapeMetrics(rig, 'primary');
          expect(m('tcpfo_kernel_handovers_total{reason="ack-lag"}'), pair.logs()).toBeGreaterThanOrEqual(1);
          expect(m('tcpfo_secondary_silent_total')).toBe(1);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(90_000),
  );
});

describe('hostile traffic (hub mode, 100 Mbit/s client link)', () => {
  it(
    'a SYN flood from spoofed addresses: table and memory bounded, the download intact, half-open entries expire',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, {
          heartbeatTimeoutMs: 500,
          extraYaml: 'limits:\n  max_connections: 3000\n  max_pending_handshakes: 512\n  handshake_timeout_ms: 2000\n',
        });
        try {
          const c = rig.host('client');
          const before = await scrapeMetrics(rig, 'primary');
          const t = transfer(c, 'get', 40_000_000, 71, 120_000);
          await new Promise((res) => setTimeout(res, 300));
          // 6000 SYNs/s for 3 s from 192.0.2.200–249 (addresses nobody has).
          const flood = c.exec(
            [
              process.execPath,
              distScript('rig/helpers/syn-flood.js'),
              'syn',
              VIP,
              String(DEMO_PORT),
              '192.0.2',
              '6000',
              '3',
            ],
            { timeoutMs: 30_000 },
          );
          let peak = 0;
          const sampler = setInterval(() => {
            void scrapeMetrics(rig, 'primary').then(
              (m) => (peak = Math.max(peak, connections(m))),
              () => {},
            );
          }, slow(250));
          const sent = JSON.parse((await flood).stdout.trim()) as { sent: number };
          const during = await scrapeMetrics(rig, 'primary');
          clearInterval(sampler);
          const r = await t;
          expect(r.error).toBeUndefined();
          expect(r.sha256).toBe(r.expected);
          expect(sent.sent).toBeGreaterThan(10_000);
          // The table never grew past its bound. P's SYN-ACKs to addresses nobody
          // has die in its neighbour table (their handshakes are merged in the
          // kernel, where the match lets them pass); S's, diverted to P, find
          // none of P's waiting and reach the bridge, which keeps at most
          // max_pending_handshakes of them, oldest out: that bound was hit.
          expect(peak).toBeLessThanOrEqual(3000);
          expect(during('tcpfo_drops_total{reason="unmatched-syn"}')).toBeGreaterThan(512);
          // Memory: bounded by the table, not by the flood.
          const grew = during('process_resident_memory_bytes') - before('process_resident_memory_bytes');
          expect(grew).toBeLessThan(64 << 20);
          // The half-open entries expire (2 s, checked every second) — also those
          // the servers' SYN-ACK retransmissions (1, 3, 7, 15 s after) make
          // again; new connections work meanwhile.
          let left = Infinity;
          for (let i = 0; i < 80 && left > 2; i++) {
            await new Promise((res) => setTimeout(res, 500));
            left = connections(await scrapeMetrics(rig, 'primary'));
          }
          expect(left).toBeLessThanOrEqual(2);
          const again = await transfer(c, 'get', 1_000_000, 72);
          expect(again.sha256).toBe(again.expected);
          console.log(
            `SYN flood: ${sent.sent} SYNs, table peak ${peak}, half-open evicted ${during('tcpfo_evicted_total{state="half-open"}')}, RSS +${(grew / 1e6).toFixed(1)} MB, download ${r.ms} ms (longest gap ${r.maxGapMs} ms)`,
          );
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );

  it(
    'new clients get in during a SYN flood as on a plain server with SYN cookies: 3,000 spoofed SYN/s for 30 s at the default limits, 1,000 connects each within 1 s, a download byte-exact',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { heartbeatTimeoutMs: 500 });
        try {
          const c = rig.host('client');
          const flood = c.exec(
            [
              process.execPath,
              distScript('rig/helpers/syn-flood.js'),
              'syn',
              VIP,
              String(DEMO_PORT),
              '192.0.2',
              '3000',
              '30',
            ],
            { timeoutMs: 60_000 },
          );
          await new Promise((res) => setTimeout(res, 3000));
          // 1,000 connects, 25 ms apart: from 3 s into the flood to its end.
          const legit = c.exec(
            [
              process.execPath,
              distScript('rig/servers/demo-client.js'),
              'connects',
              VIP,
              String(DEMO_PORT),
              '25',
              '1000',
            ],
            { timeoutMs: 90_000 },
          );
          await new Promise((res) => setTimeout(res, 15_000));
          const t = transfer(c, 'get', 100_000_000, 74, 120_000);
          const sent = (JSON.parse((await flood).stdout.trim()) as { sent: number }).sent;
          const l = JSON.parse((await legit).stdout.trim()) as {
            ok: number;
            failed: number;
            maxMs: number;
            errors: string[];
          };
          const r = await t;
          const m = await scrapeMetrics(rig, 'primary');
          console.log(
            `SYN flood at the default limits: ${sent} SYNs; ${l.ok} of 1000 connects within 1 s (slowest ${l.maxMs} ms); half-open evicted ${m('tcpfo_evicted_total{state="half-open"}')}, unmatched SYN-ACKs ${m('tcpfo_drops_total{reason="unmatched-syn"}')}; bridge RSS ${(m('process_resident_memory_bytes') / 2 ** 20).toFixed(0)} MiB; download ${r.ms} ms`,
          );
          expect(sent).toBeGreaterThan(80_000);
          expect(l.ok, JSON.stringify(l)).toBeGreaterThanOrEqual(990);
          expect(r.error).toBeUndefined();
          expect(r.sha256).toBe(r.expected);
          // The flood reached the bridge: S's SYN-ACKs past max_pending_handshakes (4,096) were dropped, oldest first.
          expect(m('tcpfo_drops_total{reason="unmatched-syn"}')).toBeGreaterThan(4096);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(150_000),
  );

  it(
    'memory stays bounded with a lagging secondary under a SYN flood: 480 downloads while its server stalls, limits.max_buffered_bytes holds, RSS within it and the table’s share',
    async () => {
      await withRig({ mode: 'mirror' }, async (rig) => {
        const cap = 1 << 20;
        const table = 8192;
        const pair = await TcpfoPair.start(rig, {
          heartbeatTimeoutMs: 500,
          extraYaml: `limits:\n  max_buffered_bytes: ${cap}\n  max_connections: ${table}\n  secondary_silence_ms: 5000\n`,
        });
        try {
          const c = rig.host('client');
          const sServer = pair.servers[1]!;
          const before = await scrapeMetrics(rig, 'primary');
          const flood = c.exec(
            [
              process.execPath,
              distScript('rig/helpers/syn-flood.js'),
              'syn',
              VIP,
              String(DEMO_PORT),
              '192.0.2',
              '3000',
              '12',
            ],
            { timeoutMs: 60_000 },
          );
          let peakRss = 0;
          let peakBuffered = 0;
          const sampler = setInterval(() => {
            void scrapeMetrics(rig, 'primary').then(
              (m) => {
                peakRss = Math.max(peakRss, m('process_resident_memory_bytes'));
                peakBuffered = Math.max(peakBuffered, m('tcpfo_queued_bytes') + m('tcpfo_held_bytes'));
              },
              () => {},
            );
          }, slow(100));
          await new Promise((res) => setTimeout(res, 1000));
          // The secondary's server lags (stopped) while 480 clients download 100 kB each: P's first
          // segments of each wait in the bridge. TCP small queues let each of P's sockets have only
          // a packet or two in the bridge's queue at once (~5.5 kB measured, ~2.6 MB in all), and at
          // least two segments (2 × 1448 B each, 1.4 MB in all): past the bound of 1 MiB either way.
          // The server stays stopped until the bridge has refused bytes for the bound (or 20 s pass),
          // so the premise holds however slowly this machine starts the clients.
          sServer.kill('SIGSTOP');
          const many = c.sh(
            `ulimit -n "$(ulimit -Hn)" && exec "${process.execPath}" "${distScript('rig/servers/demo-client.js')}" many ${VIP} ${DEMO_PORT} 100000 480`,
            { timeoutMs: 120_000, allowFail: true },
          );
          const stoppedAt = Date.now();
          const fullDrops = (m: (k: string) => number): number => m('tcpfo_drops_total{reason="memory-full"}');
          while (Date.now() - stoppedAt < 20_000) {
            await new Promise((res) => setTimeout(res, 100));
            const now = await scrapeMetrics(rig, 'primary').catch(() => null);
            if (now && fullDrops(now) > fullDrops(before)) break;
          }
          const stoppedMs = Date.now() - stoppedAt;
          sServer.kill('SIGCONT');
          const m = JSON.parse((await many).stdout.trim() || '{}') as { ok?: number; errors?: string[] };
          await flood;
          clearInterval(sampler);
          const after = await scrapeMetrics(rig, 'primary');
          // Every download byte-exact (the client checks each against the pattern).
          expect(m.errors, pair.logs().slice(-3000)).toEqual([]);
          expect(m.ok).toBe(480);
          const grew = peakRss - before('process_resident_memory_bytes');
          console.log(
            `lagging secondary under a flood: peak buffered ${(peakBuffered / 2 ** 20).toFixed(1)} MiB of ${cap / 2 ** 20}, memory-full drops ${fullDrops(after)} (S's server stopped ${stoppedMs} ms), RSS +${(grew / 2 ** 20).toFixed(1)} MiB (peak ${(peakRss / 2 ** 20).toFixed(0)} MiB)`,
          );
          // The bound was reached, and held: past it only a connection's first bytes, never past twice it
          // (and S's bytes that free P's: a little slack).
          expect(fullDrops(after)).toBeGreaterThan(fullDrops(before));
          expect(peakBuffered).toBeLessThanOrEqual(2 * cap + (1 << 20));
          // RSS: the buffers, the table (2 KiB an entry), and the runtime's own headroom under
          // this load (measured: the heap settles at 60–80 MiB, malloc's arenas at ~40 MiB).
          expect(grew).toBeLessThan(cap + table * 2048 + (160 << 20));
        } finally {
          pair.servers[1]?.kill('SIGCONT');
          await pair.stop();
        }
      });
    },
    slow(150_000),
  );

  it(
    'forged diverted segments (the secondary’s address, or the service address, not its MAC) are dropped and counted; the download is intact',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { heartbeatTimeoutMs: 500 });
        try {
          const c = rig.host('client');
          const t = transfer(c, 'get', 20_000_000, 73, 120_000);
          await new Promise((res) => setTimeout(res, 300));
          const forged = await c.exec([
            process.execPath,
            distScript('rig/helpers/syn-flood.js'),
            'divert',
            rig.host('primary').ip,
            String(DEMO_PORT),
            rig.host('secondary').ip,
            c.ip,
            '2000',
            '1',
          ]);
          const sent = (JSON.parse(forged.stdout.trim()) as { sent: number }).sent;
          // The kernel path's form: from the service address to a client, sent to the primary's MAC by another host.
          await c.exec(['ip', 'neigh', 'replace', '192.0.2.77', 'lladdr', rig.host('primary').mac, 'dev', 'eth0']);
          const routed = await c.exec([
            process.execPath,
            distScript('rig/helpers/syn-flood.js'),
            'routed',
            '192.0.2.77',
            String(DEMO_PORT),
            VIP,
            '2000',
            '1',
          ]);
          const sentRouted = (JSON.parse(routed.stdout.trim()) as { sent: number }).sent;
          const r = await t;
          expect(r.sha256).toBe(r.expected);
          const m = await scrapeMetrics(rig, 'primary');
          expect(sent).toBeGreaterThan(1000);
          expect(sentRouted).toBeGreaterThan(1000);
          expect(m('tcpfo_drops_total{reason="spoofed-diverted"}')).toBe(sent + sentRouted);
          expect(m('tcpfo_divergences_total')).toBe(0);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );
});
