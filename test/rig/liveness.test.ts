/**
 * Never silent (bridge/node/liveness.ts, io/presence.ts): a bridge whose data path
 * or event loop is stuck ends itself so the peer takes over, and a bridge
 * that is only starved is not taken over. Faults are injected into the real
 * daemons (bridge/node/faults.ts) during a real download through the pair.
 */
import { describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { Capture } from '../../rig/capture.js';
import { checkTransparency } from '../../rig/oracle.js';
import { waitForLog } from '../../rig/failover.js';
import { DEMO_PORT, finalCounters, TcpfoPair, transfer, VIP } from '../../rig/pair.js';
import { withRig } from '../../rig/rig.js';
import { distScript } from '../../rig/dist.js';
import { scrapeMetrics } from '../../rig/metrics.js';
import { slow } from '../../rig/slow.js';

const BYTES = 30_000_000;

async function downloadWithFault(
  node: 'primary' | 'secondary',
  role: 'p' | 's',
  fault: string,
  datapath: 'auto' | 'pcap' = 'auto',
): Promise<{ r: Awaited<ReturnType<typeof transfer>>; problems: string[]; logs: string; exit: number | null }> {
  return withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
    const pair = await TcpfoPair.start(rig, { faults: true, datapath });
    try {
      const c = rig.host('client');
      const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'lv', 96);
      const t = transfer(c, 'get', BYTES, 71, 120_000);
      await new Promise((res) => setTimeout(res, 800));
      const d = node === 'primary' ? pair.primary! : pair.secondary!;
      const exited = once(d.proc, 'exit').then(([code]) => code as number | null);
      await pair.fault(node, role, fault);
      const r = await t;
      const exit = await Promise.race([exited, new Promise<null>((res) => setTimeout(() => res(null), 100))]);
      const report = checkTransparency(await cap.stop(), VIP, DEMO_PORT);
      return { r, problems: report.problems, logs: pair.logs(), exit };
    } finally {
      await pair.stop();
    }
  });
}

function expectIntact(x: { r: Awaited<ReturnType<typeof transfer>>; problems: string[]; logs: string }): void {
  expect(x.r.error, x.logs).toBeUndefined();
  expect(x.r.bytes, x.logs).toBe(BYTES);
  expect(x.r.sha256, x.logs).toBe(x.r.expected);
  expect(x.problems, x.logs).toEqual([]);
}

describe('liveness (hub mode, 100 Mbit/s client link, detector 20 ms / 100 ms)', () => {
  it(
    'the primary’s output queue goes deaf mid-download: its guard ends it (exit 4), the secondary takes over, the download completes byte-exact',
    async () => {
      const x = await downloadWithFault('primary', 'p', 'deafen output');
      expectIntact(x);
      expect(x.exit, x.logs).toBe(4);
      expect(x.logs).toMatch(/data path stuck: packets wait in queue \d+ \(output\)/);
      expect(x.logs).toMatch(/took over the service address/);
    },
    slow(150_000),
  );

  it(
    'the secondary’s divert queue goes deaf (pcap data path): its guard ends it (exit 4), the primary goes on alone, the download completes byte-exact',
    async () => {
      const x = await downloadWithFault('secondary', 's', 'deafen divert', 'pcap');
      expectIntact(x);
      expect(x.exit, x.logs).toBe(4);
      expect(x.logs).toMatch(/data path stuck: packets wait in queue \d+ \(divert\)/);
      expect(x.logs).toMatch(/secondary failed: continuing alone/);
    },
    slow(150_000),
  );

  it(
    'the kernel overruns the primary’s queues (64 KB buffers, a flood of spoofed ACKs, the event loop held 300 ms five times): counted, and the bridge reads on; no failover, the download completes byte-exact',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        // inbound: queue, so that the flood goes through the queue: ACKs of no connection (a
        // client's SYN passes the queue either way, and the kernel translation would pass these too).
        const pair = await TcpfoPair.start(rig, {
          faults: true,
          extraYaml: 'inbound: queue\nlimits:\n  queue_buffer_bytes: 65536\n',
        });
        let logs = '';
        try {
          const t = transfer(rig.host('client'), 'get', BYTES, 72, 120_000);
          await new Promise((res) => setTimeout(res, 500));
          // Traffic that does not wait for the primary (its TCP flows slow down
          // when its bridge stalls): ACKs from spoofed clients, 5,000 a second.
          const flood = rig
            .host('client')
            .exec([
              process.execPath,
              distScript('rig/helpers/syn-flood.js'),
              'ack',
              VIP,
              String(DEMO_PORT),
              '198.51.100',
              '5000',
              '4',
            ]);
          for (let i = 0; i < 5; i++) {
            await pair.fault('primary', 'p', 'stall 300');
            await new Promise((res) => setTimeout(res, 700));
          }
          await flood;
          const r = await t;
          logs = pair.logs();
          expect(r.error, logs).toBeUndefined();
          expect(r.sha256, logs).toBe(r.expected);
          expect(pair.primary!.proc.exitCode, logs).toBeNull();
          expect(logs).not.toMatch(/took over the service address/);
        } finally {
          await pair.stop();
        }
        const st = finalCounters(pair.primary!.log) as {
          queues: { out: { enobufs: number; pollErrors: number }; in: { enobufs: number; pollErrors: number } };
        };
        // The overruns happened (the old code stopped reading at the first one: a deaf queue).
        expect(st.queues.in.enobufs + st.queues.out.enobufs, JSON.stringify(st.queues)).toBeGreaterThan(0);
        expect(st.queues.in.pollErrors + st.queues.out.pollErrors, JSON.stringify(st.queues)).toBeGreaterThan(0);
      });
    },
    slow(150_000),
  );

  it(
    'the primary’s event loop held 600 ms (six detector timeouts): its heartbeats go on from their thread (signed ahead), so the secondary never declares it down, and the download is byte-exact',
    async () => {
      const x = await downloadWithFault('primary', 'p', 'stall 600');
      expectIntact(x);
      expect(x.exit, x.logs).toBeNull();
      // The stall happened (the primary says so) and was never taken for death.
      expect(x.logs).toMatch(/"tcpfo-primary".*event loop stalled \d+ ms: heartbeats went on from their thread/);
      expect(x.logs).not.toMatch(/primary is down/);
      expect(x.logs).not.toMatch(/took over the service address/);
    },
    slow(150_000),
  );

  it(
    'the secondary’s heartbeats lost for 400 ms during a download while its answers still arrive: the primary excuses the silence (no connection turns primary-only), hears it again, and the download is byte-exact',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig);
        try {
          const c = rig.host('client');
          const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'ex', 96);
          const t = transfer(c, 'get', BYTES, 72, 120_000);
          await new Promise((res) => setTimeout(res, 800));
          // Only the heartbeats are lost (on their way out of the secondary); its diverted answers go on.
          const drop = ['OUTPUT', '-p', 'udp', '--dport', '7946', '-j', 'DROP'];
          await rig
            .host('secondary')
            .sh(`iptables -w -I ${drop.join(' ')} && sleep 0.4; iptables -w -D ${drop.join(' ')}`);
          const r = await t;
          const logs = pair.logs();
          expect(r.error, logs).toBeUndefined();
          expect(r.sha256, logs).toBe(r.expected);
          expect(checkTransparency(await cap.stop(), VIP, DEMO_PORT).problems, logs).toEqual([]);
          // Declared down by the detector, excused because S's segments came, heard again; never alone.
          expect(logs).toMatch(/"tcpfo-primary".*"secondary is down"/);
          expect(logs).toMatch(/secondary silent but its segments still arrive/);
          expect(logs).toMatch(/secondary heard again: its heartbeats had been lost, not its node/);
          expect(logs).not.toMatch(/secondary failed: continuing alone/);
          const m = await scrapeMetrics(rig, 'primary');
          expect(m('tcpfo_heartbeat_silences_excused_total')).toBe(1);
          expect(m('tcpfo_connections{state="degraded"}') || 0).toBe(0);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(150_000),
  );

  it(
    'the secondary’s heartbeats lost for 130 ms while 15,000 connections are open: the primary declares it down and turns them primary-only a step at a time; the secondary, heard again meanwhile, rejoins after the last step, and no step holds the loop for the whole table',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await TcpfoPair.start(rig);
        try {
          const c = rig.host('client');
          const N = 15_000;
          const hold = c.spawn([
            process.execPath,
            distScript('rig/servers/demo-client.js'),
            'hold',
            VIP,
            String(DEMO_PORT),
            '0',
            String(N),
          ]);
          let out = '';
          await new Promise<void>((res, rej) => {
            const timer = setTimeout(() => {
              // Where a connection waits: the client's SYN-SENT sockets, the servers' half-open ones, the kernel's handshakes.
              void Promise.all([
                c.sh('ss -tnoi state syn-sent', { allowFail: true }),
                rig
                  .host('primary')
                  .sh('ss -tn state syn-recv; nstat -asz TcpExtListenOverflows TcpExtListenDrops', { allowFail: true }),
                rig
                  .host('secondary')
                  .sh('ss -tn state syn-recv; nstat -asz TcpExtListenOverflows TcpExtListenDrops', { allowFail: true }),
                scrapeMetrics(rig, 'primary'),
              ]).then(
                ([cs, ps, ss, m]) =>
                  rej(
                    new Error(
                      `not ${N} connections within 60 s: ${out}\nclient:\n${cs.stdout}\nprimary:\n${ps.stdout}\nsecondary:\n${ss.stdout}\n${m.lines('tcpfo_kernel_handshakes_total').join('\n')}\n${pair.logs()}`,
                    ),
                  ),
                (e: unknown) => rej(new Error(`not ${N} connections within 60 s: ${out}\n${String(e)}`)),
              );
            }, slow(60_000));
            hold.stdout!.on('data', (d: Buffer) => {
              out += d.toString();
              if (out.includes(`"holding":${N}`)) {
                clearTimeout(timer);
                res();
              }
            });
            hold.once('exit', (code) => rej(new Error(`the client exited ${code}: ${out}`)));
          });
          // The secondary's heartbeats dropped on its way out for 130 ms (and the second iptables run): the
          // primary declares it down after 100, and hears it again while its steps still run, some 120 ms for
          // 15,000 connections here. With 10,000 (steps of 90 ms) and 160 ms, the secondary was heard again only
          // after the last step in 3 of 10 runs: what this test is about did not happen.
          const drop = ['OUTPUT', '-p', 'udp', '--dport', '7946', '-j', 'DROP'];
          await rig
            .host('secondary')
            .sh(`iptables -w -I ${drop.join(' ')} && sleep 0.13; iptables -w -D ${drop.join(' ')}`);
          await waitForLog(pair, /secondary rejoined: new connections/, 20_000);
          const logs = pair.logs();
          const at = (re: RegExp) => logs.split('\n').findIndex((l) => re.test(l) && l.includes('tcpfo-primary'));
          // The false alarm happened, the steps ran, and the secondary's return waited for the last of them.
          expect(at(/"secondary is down"/), logs).toBeGreaterThan(-1);
          expect(at(/secondary rejoined while connections still turn primary-only/), logs).toBeGreaterThan(-1);
          expect(at(/secondary failed: continuing alone/), logs).toBeLessThan(
            at(/secondary rejoined: new connections/),
          );
          expect(at(/secondary failed: continuing alone/), logs).toBeGreaterThan(-1);
          expect(pair.primary!.proc.exitCode, logs).toBeNull();
          expect(logs).not.toMatch(/event loop stuck/);
          hold.kill('SIGTERM');
        } finally {
          await pair.stop();
        }
      });
    },
    slow(150_000),
  );

  it(
    'a loop held past liveness.loop_stall_ms while the bridges set up (BPF loads on a busy machine): both come up, a download through them byte-exact; the hold applies from the start line on',
    async () => {
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const env = { TCPFO_TEST_SETUP_STALL_MS: '2500' };
        const pair = await TcpfoPair.start(rig, { faults: true, daemonEnv: { primary: env, secondary: env } });
        try {
          const r = await transfer(rig.host('client'), 'get', 5_000_000, 72, 60_000);
          const logs = pair.logs();
          expect(r.error, logs).toBeUndefined();
          expect(r.sha256, logs).toBe(r.expected);
          expect(pair.primary!.proc.exitCode, logs).toBeNull();
          expect(pair.secondary!.proc.exitCode, logs).toBeNull();
          expect(logs).not.toMatch(/event loop stuck/);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(150_000),
  );

  it(
    'the primary’s event loop held past liveness.loop_stall_ms: it ends itself (exit 4), the secondary takes over, the download completes byte-exact',
    async () => {
      const x = await downloadWithFault('primary', 'p', 'stall 3000');
      expectIntact(x);
      expect(x.exit, x.logs).toBe(4);
      expect(x.logs).toMatch(/event loop stuck for \d+ ms: exiting so the peer takes over/);
      expect(x.logs).toMatch(/took over the service address/);
    },
    slow(150_000),
  );
});
