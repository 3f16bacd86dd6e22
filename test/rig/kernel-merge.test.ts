/**
 * The merge in the kernel (merge: kernel): request/answer traffic whose
 * answers both servers segment alike is merged by the tc programs — the second copy of each answer goes to
 * the client — and the bridge sees only handshakes and closes. Real TCP on
 * all three hosts, Linux defaults; the client checks every answer.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Capture } from '../../rig/capture.js';
import { killNode, waitForLog } from '../../rig/failover.js';
import { scrapeMetrics } from '../../rig/metrics.js';
import { checkTransparency } from '../../rig/oracle.js';
import { DEMO_PORT, TcpfoPair, VIP } from '../../rig/pair.js';
import { distScript } from '../../rig/dist.js';
import { fileName, prepareFtpRoot, startVsftpd } from '../../rig/ftp.js';
import { withRig, type Rig, type RigHost, type RigOptions } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';
import { KERNEL_HANDOVER_REASONS } from '../../bridge/primary/merge/kernel.js';

const echoes = (c: RigHost, size: number, n: number) =>
  c.exec(
    [process.execPath, distScript('rig/servers/rr-client.js'), 'echo', VIP, String(DEMO_PORT), String(size), String(n)],
    { timeoutMs: 120_000 },
  );

function echoSession(c: RigHost, ms: number) {
  return c.exec(
    [process.execPath, distScript('rig/servers/demo-client.js'), 'echo', VIP, String(DEMO_PORT), '0', String(ms)],
    { timeoutMs: ms + 20_000 },
  );
}

/** One connection that says `word` to the demo server's ECHO and reads it back: how long from connect() until then. */
async function timedEcho(c: RigHost, word: string): Promise<{ ms?: number; got?: string; error?: string }> {
  const script =
    `const t=Date.now();const s=require('net').connect(${DEMO_PORT},'${VIP}',()=>{s.write('ECHO\\n${word}\\n')});` +
    `let b='';s.on('data',(d)=>{b+=d;if(b.includes('${word}\\n')){console.log(JSON.stringify({ms:Date.now()-t,got:b}));s.destroy()}});` +
    `s.on('error',(e)=>{console.log(JSON.stringify({error:e.message}))})`;
  const r = await c.exec([process.execPath, '-e', script], { timeoutMs: 20_000 });
  return JSON.parse(r.stdout.trim()) as { ms?: number; got?: string; error?: string };
}

const BULK_BYTES = 4 << 20;

/**
 * One connection to the demo server's ECHO: 20 echoes of 100 bytes, then
 * BULK_BYTES written and read back at once, then — once GATE exists (it
 * creates GATE.reached) — 300 echoes of 100 bytes, one at a time. Prints
 * {bulk, small, mismatched, error}.
 */
const BULK_THEN_SMALL = `
const [host, port, gate] = process.argv.slice(1);
const fs = require('fs');
const s = require('net').connect(Number(port), host);
const out = { bulk: 0, small: 0, mismatched: 0 };
let chunks = [], have = 0, want = 0, done = null;
s.on('data', (d) => { chunks.push(d); have += d.length; if (done && have >= want) { const f = done; done = null; f(); } });
s.on('error', (e) => { console.log(JSON.stringify({ ...out, error: e.message })); process.exit(0); });
// Writes b and reads as many bytes back: they must be b.
const echo = (b) => new Promise((res) => {
  want = b.length;
  done = () => {
    const all = Buffer.concat(chunks);
    if (!all.subarray(0, b.length).equals(b)) out.mismatched++;
    chunks = all.length > b.length ? [all.subarray(b.length)] : [];
    have = all.length - b.length;
    res();
  };
  s.write(b);
});
const line = (i) => Buffer.from(String(i).padStart(99, 'x') + '\\n');
(async () => {
  s.write('ECHO\\n');
  for (let i = 0; i < 20; i++) await echo(line(i));
  const bulk = Buffer.alloc(${4 << 20}, 0).map((_, i) => (i * 7 + (i >> 12)) & 255);
  await echo(bulk);
  out.bulk = bulk.length;
  fs.writeFileSync(gate + '.reached', '');
  while (!fs.existsSync(gate)) await new Promise((r) => setTimeout(r, 10));
  for (let i = 0; i < 300; i++) { await echo(line(i)); out.small++; }
  console.log(JSON.stringify(out));
  s.destroy();
})();
`;

/**
 * The pair with `merge: kernel`, one connection through it first: the primary
 * merges handshakes in the kernel once it has seen the secondary's copies
 * come by its kernel path.
 */
async function kernelHandshakePair(rig: Rig): Promise<TcpfoPair> {
  const pair = await TcpfoPair.start(rig, { extraYaml: 'merge: kernel\n' });
  try {
    expect(JSON.parse((await echoes(rig.host('client'), 100, 5)).stdout.trim()).error).toBeUndefined();
    // That connection forgotten (its linger over): a late segment of its close, which the bridge's
    // queue takes, counts in no test's handovers.
    await tableEmpty(rig, pair);
  } catch (e) {
    await pair.stop();
    throw e;
  }
  return pair;
}

/** Waits (20 s at most) until the primary's table holds no connection in any state. */
async function tableEmpty(rig: Rig, pair: TcpfoPair): Promise<void> {
  const until = Date.now() + slow(20_000);
  for (;;) {
    const lines = (await scrapeMetrics(rig, 'primary')).lines('tcpfo_connections');
    if (lines.length && lines.every((l) => l.endsWith(' 0'))) return;
    if (Date.now() > until)
      throw new Error(`connections still in the table after 20 s: ${lines.join('; ')}\n${pair.logs()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A pair merging in the kernel with vsftpd on both nodes (ports 20 and 21), serving the paper's 0.2 KB file. */
async function kernelFtpPair(rig: Rig): Promise<TcpfoPair> {
  const pair = await TcpfoPair.start(rig, { ports: [20, 21], demoServer: false, extraYaml: 'merge: kernel\n' });
  try {
    for (const n of ['primary', 'secondary']) await startVsftpd(rig.host(n), prepareFtpRoot(rig, n, VIP, [0.2]).conf);
  } catch (e) {
    await pair.stop();
    throw e;
  }
  return pair;
}

/**
 * Waits out the linger (2 s after a connection's last segment) and the
 * bridge's expiry pass, then scrapes the primary: each counter's growth since
 * `m0` (an absent series counts 0), and the connection states its table still
 * holds, with how many.
 */
async function afterLinger(rig: Rig, m0: (series: string) => number) {
  await new Promise((res) => setTimeout(res, 4_000));
  const m = await scrapeMetrics(rig, 'primary');
  const z = (v: number) => (Number.isNaN(v) ? 0 : v);
  return {
    d: (series: string) => z(m(series)) - z(m0(series)),
    left: ['handshake', 'merging', 'degraded', 'closed']
      .map((state) => [state, z(m(`tcpfo_connections{state="${state}"}`))] as const)
      .filter(([, n]) => n > 0),
  };
}

describe('the kernel merge (merge: kernel)', () => {
  /**
   * `n` echoes of `size` bytes over one connection through a pair that merges
   * in the kernel, on the hub, captured at the client: each answer right, the
   * client's view transparent, no divergence. `check` gets the change of the
   * primary's metrics over the echoes (a series not counted yet: 0).
   */
  async function kernelEchoes(
    size: number,
    n: number,
    check: (d: (series: string) => number, ctx: string, rttUs: number[]) => void,
    lan: RigOptions = { mode: 'hub' },
  ) {
    await withRig(lan, async (rig) => {
      const pair = await TcpfoPair.start(rig, { extraYaml: 'merge: kernel\n' });
      try {
        const c = rig.host('client');
        const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, `km${size}`, 160);
        const m0 = await scrapeMetrics(rig, 'primary');
        const r = JSON.parse((await echoes(c, size, n)).stdout.trim()) as { rttUs?: number[]; error?: string };
        const report = checkTransparency(await cap.stop(), VIP, DEMO_PORT);
        const m = await scrapeMetrics(rig, 'primary');
        const at = (f: (series: string) => number, series: string) => (Number.isNaN(f(series)) ? 0 : f(series));
        const d = (series: string) => at(m, series) - at(m0, series);
        const ctx = pair.logs();
        expect(r.error, ctx).toBeUndefined();
        expect(r.rttUs, ctx).toHaveLength(n);
        expect(report.problems, ctx).toEqual([]);
        console.log(
          `kernel merge, ${n} echoes of ${size} bytes: released ${d('tcpfo_kernel_merge_total{action="released-p"}')} of P's and ${d('tcpfo_kernel_merge_total{action="released-s"}')} of S's, ${d('tcpfo_kernel_merge_total{action="gso"}')} GSO packets as their segments, ${d('tcpfo_nfqueue_packets_total{queue="out"}')} of P's through the queue, handovers ${JSON.stringify({ bridge: d('tcpfo_kernel_handovers_total{reason="bridge"}'), unaligned: d('tcpfo_kernel_handovers_total{reason="unaligned"}'), segment: d('tcpfo_kernel_handovers_total{reason="segment"}'), large: d('tcpfo_kernel_handovers_total{reason="large"}') })}, returns ${d('tcpfo_kernel_returns_total')}, round trip median ${[...(r.rttUs ?? [])].sort((a, b) => a - b)[Math.floor((r.rttUs ?? []).length / 2)]} µs, max ${Math.max(...(r.rttUs ?? []))} µs`,
        );
        expect(d('tcpfo_kernel_merged_connections_total'), ctx).toBe(1);
        expect(d('tcpfo_divergences_total'), ctx).toBe(0);
        check(d, ctx, r.rttUs ?? []);
      } finally {
        await pair.stop();
      }
    });
  }

  it(
    '1,000 echo round trips merged in the kernel, answer by answer: each right, each released once',
    async () => {
      await kernelEchoes(100, 1000, (d, ctx) => {
        const released =
          d('tcpfo_kernel_merge_total{action="released-s"}') + d('tcpfo_kernel_merge_total{action="released-p"}');
        // 1,005 answers (five to warm up) and the ACKs that carry nothing
        // else, each released once: by the kernel, or — after something sends
        // the connection to the bridge (on a busy machine, a client's
        // retransmitted request draws a D-SACK) — through the queue.
        expect(released + d('tcpfo_nfqueue_packets_total{queue="out"}'), ctx).toBeGreaterThanOrEqual(1005);
        expect(released, ctx).toBeGreaterThan(0);
      });
    },
    slow(120_000),
  );

  it(
    '3000-byte answers leave both servers as GSO packets of three segments: merged in the kernel as their segments, each answer right',
    async () => {
      await kernelEchoes(3000, 300, (d, ctx) => {
        // Before, the first such packet sent the connection to the bridge for good (reason "segment").
        expect(d('tcpfo_kernel_merge_total{action="gso"}'), ctx).toBeGreaterThan(0);
        expect(d('tcpfo_kernel_handovers_total{reason="segment"}'), ctx).toBe(0);
        // Every answer's bytes counted as merged, whichever path released them.
        expect(d('tcpfo_merged_bytes_total'), ctx).toBeGreaterThanOrEqual(300 * 3000);
      });
    },
    slow(120_000),
  );

  it(
    'on a jumbo-frame LAN (MTU 9000), 4000-byte answers are segments larger than the kernel merges: each takes its connection to the bridge (reason "large") and it comes back, each answer right',
    async () => {
      await kernelEchoes(
        4000,
        200,
        (d, ctx, rttUs) => {
          expect(d('tcpfo_kernel_handovers_total{reason="large"}'), ctx).toBeGreaterThan(0);
          // Never as "segment", the reason for what the programs do not read.
          expect(d('tcpfo_kernel_handovers_total{reason="segment"}'), ctx).toBe(0);
          expect(d('tcpfo_kernel_returns_total'), ctx).toBeGreaterThan(0);
          expect(d('tcpfo_merged_bytes_total'), ctx).toBeGreaterThanOrEqual(200 * 4000);
          expect(rttUs.length, ctx).toBe(200);
        },
        { mode: 'hub', mtu: 9000 },
      );
    },
    slow(120_000),
  );

  it(
    'a connection the bridge took returns to the kernel once nothing waits: 4 MB echoed in bulk, then 300 small echoes merged in the kernel, each right',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { extraYaml: 'merge: kernel\n' });
        try {
          const c = rig.host('client');
          const gate = join(rig.tmpdir, 'bulk-done');
          const run = c.exec([process.execPath, '-e', BULK_THEN_SMALL, VIP, String(DEMO_PORT), gate], {
            timeoutMs: slow(120_000),
          });
          const m0 = await scrapeMetrics(rig, 'primary');
          // The bulk: both servers cut 4 MB of answers into GSO bursts of their own.
          for (const end = Date.now() + slow(60_000); !existsSync(`${gate}.reached`);) {
            if (Date.now() > end) throw new Error(`the bulk echo did not end\n${pair.logs()}`);
            await new Promise((r) => setTimeout(r, 20));
          }
          const m1 = await scrapeMetrics(rig, 'primary');
          writeFileSync(gate, '');
          const r = JSON.parse((await run).stdout.trim()) as {
            small: number;
            bulk: number;
            mismatched: number;
            error?: string;
          };
          const m2 = await scrapeMetrics(rig, 'primary');
          const z = (v: number) => (Number.isNaN(v) ? 0 : v);
          const d = (a: typeof m0, b: typeof m0, series: string) => z(b(series)) - z(a(series));
          const handovers = (a: typeof m0, b: typeof m0) =>
            KERNEL_HANDOVER_REASONS.filter((why) => why !== 'none')
              .map((why) => d(a, b, `tcpfo_kernel_handovers_total{reason="${why}"}`))
              .reduce((x, y) => x + y, 0);
          const released = (a: typeof m0, b: typeof m0) =>
            d(a, b, 'tcpfo_kernel_merge_total{action="released-s"}') +
            d(a, b, 'tcpfo_kernel_merge_total{action="released-p"}');
          const ctx = `${JSON.stringify(r)}\n${pair.logs()}`;
          console.log(
            `bulk then small: handovers ${handovers(m0, m1)} during the bulk, ${handovers(m1, m2)} after; returns ${d(m0, m1, 'tcpfo_kernel_returns_total')} / ${d(m1, m2, 'tcpfo_kernel_returns_total')}; released in the kernel after the bulk ${released(m1, m2)}, P's through the queue ${d(m1, m2, 'tcpfo_nfqueue_packets_total{queue="out"}')}`,
          );
          expect(r.error, ctx).toBeUndefined();
          expect(r.mismatched, ctx).toBe(0);
          expect(r.bulk, ctx).toBe(BULK_BYTES);
          expect(r.small, ctx).toBe(300);
          // What this test is about: the bulk took the connection to the bridge (else it proves nothing) …
          expect(handovers(m0, m1), ctx).toBeGreaterThan(0);
          // … and it came back: the small answers after it leave in the kernel, not through the queue.
          expect(d(m0, m2, 'tcpfo_kernel_returns_total'), ctx).toBeGreaterThan(0);
          expect(released(m1, m2), ctx).toBeGreaterThanOrEqual(250);
          expect(z(m2('tcpfo_divergences_total')), ctx).toBe(0);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );

  it(
    'a client that sends its requests again (its answers lost for 600 ms): P’s D-SACK ACKs go back to the kernel cleared, no connection leaves it',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await kernelHandshakePair(rig);
        try {
          const c = rig.host('client');
          const session = echoSession(c, 4000);
          await new Promise((r) => setTimeout(r, 1000));
          const m0 = await scrapeMetrics(rig, 'primary');
          // The answers of both servers are lost: the client sends its requests again, which both TCPs had.
          const drop = `INPUT -s ${VIP} -p tcp -j DROP`;
          await c.sh(`iptables -I ${drop}`);
          try {
            await new Promise((r) => setTimeout(r, 600));
          } finally {
            await c.sh(`iptables -D ${drop}`);
          }
          const e = JSON.parse((await session).stdout.trim()) as {
            echoed: number;
            mismatched: number;
            sent: number;
            error?: string;
          };
          const m = await scrapeMetrics(rig, 'primary');
          const z = (v: number) => (Number.isNaN(v) ? 0 : v);
          const d = (series: string) => z(m(series)) - z(m0(series));
          // What brought a handover, if one came: whose segment reached the bridge's queue, and what it was.
          const takes = [...m.lines('tcpfo_kernel_handovers_total'), ...m.lines('tcpfo_kernel_takes_total')];
          const ctx = `${JSON.stringify(e)}\n${takes.join('\n')}\n${pair.logs()}`;
          console.log(
            `answers lost 600 ms: ${e.echoed} echoes; P's D-SACK ACKs cleared ${d('tcpfo_kernel_outbound_total{action="dsack-cleared"}')}, S's ${d('tcpfo_kernel_merge_total{action="dsack-cleared"}')}; handovers ${d('tcpfo_kernel_handovers_total{reason="bridge"}')}`,
          );
          expect(e.error, ctx).toBeUndefined();
          expect(e.mismatched, ctx).toBe(0);
          expect(e.sent - e.echoed, ctx).toBeLessThanOrEqual(1);
          expect(d('tcpfo_kernel_outbound_total{action="dsack-cleared"}'), ctx).toBeGreaterThan(0);
          expect(d('tcpfo_kernel_handovers_total{reason="bridge"}'), ctx).toBe(0);
          expect(m('tcpfo_divergences_total'), ctx).toBe(0);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );

  it(
    'keeps a client’s answers in order across its connections: 300 FTP gets by curl in active mode, each complete',
    async () => {
      // curl gives a transfer up when the control connection answers before the
      // data connection (server-initiated, its SYNs merged apart from its data) is
      // complete, or before it closed (a data connection the bridge took
      // from the kernel): an answer the kernel would release at once must not
      // overtake one of the client's still in the queue.
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await kernelFtpPair(rig);
        try {
          const gets = 300;
          const r = await rig
            .host('client')
            .sh(
              `ok=0; for i in $(seq ${gets}); do curl -sS --fail -P - -o /dev/null ftp://${VIP}/pub/${fileName(0.2)} && ok=$((ok+1)); done; echo $ok`,
              { allowFail: true, timeoutMs: 200_000 },
            );
          const m = await scrapeMetrics(rig, 'primary');
          const ctx = `${r.stderr.slice(-2000)}\n${m.lines('tcpfo_kernel_takes_total').join('\n')}\n${pair.logs()}`;
          console.log(
            `curl FTP active mode, merge: kernel: ${r.stdout.trim()} of ${gets} gets complete; handshakes merged in the kernel ${m('tcpfo_kernel_handshakes_total{action="merged"}')} (${m('tcpfo_kernel_handshakes_total{action="merged-at-p"}')} of them as P's left); ${m('tcpfo_kernel_outbound_total{action="waited"}')} answers waited their turn, ${m('tcpfo_kernel_outbound_total{action="returned"}')} went back to the kernel, ${m('tcpfo_kernel_merge_total{action="released-s"}') + m('tcpfo_kernel_merge_total{action="released-p"}')} released in the kernel`,
          );
          expect(Number(r.stdout.trim()), ctx).toBe(gets);
          // Every data connection stays in the kernel's merge to its end: the client's FIN
          // too (half of them went to the bridge when what the pair acknowledged was taken
          // from the data connection's SYN, which carries no ACK). Its SYNs merge in the
          // kernel too, and what the client's SYN-ACK draws (P's last ACK, the "150", the
          // data) waits its turn in the queue no more: 3 to 4 answers a get did while the
          // bridge merged the SYNs and counted each verdict after giving it.
          expect(m('tcpfo_kernel_handovers_total{reason="bridge"}') || 0, ctx).toBe(0);
          const waited =
            (m('tcpfo_kernel_outbound_total{action="waited"}') || 0) +
            (m('tcpfo_kernel_outbound_total{action="returned"}') || 0);
          expect(waited, ctx).toBeLessThanOrEqual(gets / 10);
          // Both handshakes of a get merge in the kernel: the control connection's SYN-ACKs and the
          // data connection's SYNs (the servers open it), which the bridge merged before.
          expect(m('tcpfo_kernel_handshakes_total{action="merged"}') || 0, ctx).toBeGreaterThan(1.5 * gets);
          expect(m('tcpfo_kernel_closes_total{action="ended"}'), ctx).toBeGreaterThanOrEqual(gets);
          expect(m('tcpfo_kernel_merged_connections_total'), ctx).toBeGreaterThan(gets);
          expect(m('tcpfo_divergences_total'), ctx).toBe(0);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(240_000),
  );

  it(
    'the secondary dies while the kernel holds P’s SYN of an FTP data connection for S’s: the bridge sends it again at once, not at P’s retransmission timer',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await kernelFtpPair(rig);
        try {
          const get = () =>
            rig
              .host('client')
              .sh(`curl -sS --fail -P - -o /dev/null -w '%{time_total}' ftp://${VIP}/pub/${fileName(0.2)}`, {
                allowFail: true,
                timeoutMs: 30_000,
              });
          // One get as usual: the pair merges handshakes in the kernel from here.
          expect((await get()).code, pair.logs()).toBe(0);
          // S's SYNs (no ACK) never leave S: P's SYN of the next data connection waits in the kernel.
          await rig
            .host('secondary')
            .exec(['iptables', '-I', 'OUTPUT', '-p', 'tcp', '--tcp-flags', 'SYN,ACK', 'SYN', '-j', 'DROP']);
          const held = get();
          await new Promise((r) => setTimeout(r, 300));
          const m0 = await scrapeMetrics(rig, 'primary');
          await killNode(pair, 'secondary');
          await waitForLog(pair, /secondary failed: continuing alone/);
          const r = await held;
          const m = await scrapeMetrics(rig, 'primary');
          const ctx = `${r.stdout} ${r.stderr}\n${pair.logs()}`;
          const s = Number(r.stdout.trim());
          console.log(`S killed with P's SYN of a data connection held in the kernel: the get took ${s} s`);
          expect(r.code, ctx).toBe(0);
          expect(m0('tcpfo_kernel_handshakes_total{action="held"}'), ctx).toBeGreaterThanOrEqual(2);
          expect(m('tcpfo_kernel_handshakes_total{action="prompted"}'), ctx).toBe(1);
          // P's SYN would have come again 1 s after the first; killed at 300 ms, detected 100 ms later.
          expect(s, ctx).toBeLessThan(0.9);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );

  it(
    'merges handshakes in the kernel: 200 connections, each right; the client sees merged SYN-ACKs in one sequence space',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await kernelHandshakePair(rig);
        try {
          const c = rig.host('client');
          const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'hs', 160);
          const m0 = await scrapeMetrics(rig, 'primary');
          const r = await c.exec(
            [process.execPath, distScript('rig/servers/demo-client.js'), 'many', VIP, String(DEMO_PORT), '2000', '200'],
            { timeoutMs: 90_000, allowFail: true },
          );
          const report = checkTransparency(await cap.stop(), VIP, DEMO_PORT);
          const m = await scrapeMetrics(rig, 'primary');
          const d = (series: string) => m(series) - (Number.isNaN(m0(series)) ? 0 : m0(series));
          const out = JSON.parse(r.stdout.trim()) as { ok: number; errors: string[] };
          const ctx = `${r.stderr.slice(-1000)}\n${pair.logs()}`;
          const merged = d('tcpfo_kernel_handshakes_total{action="merged"}');
          console.log(
            `200 connections: ${merged} handshakes merged in the kernel, ${d('tcpfo_kernel_handshakes_total{action="to-bridge"}')} by the bridge`,
          );
          expect(out.errors, ctx).toEqual([]);
          expect(out.ok, ctx).toBe(200);
          expect(report.problems, ctx).toEqual([]);
          // S's SYN-ACK comes second as a rule (it crosses the LAN once more than P's): most merge in the kernel.
          expect(merged, ctx).toBeGreaterThanOrEqual(100);
          expect(d('tcpfo_kernel_merged_connections_total'), ctx).toBeGreaterThanOrEqual(200);
          expect(d('tcpfo_divergences_total'), ctx).toBe(0);
          const status = await rig
            .host('primary')
            .exec([process.execPath, distScript('cli.js'), 'status', '--json', '-c', pair.configFor('primary')]);
          const st = JSON.parse(status.stdout.split(/\n(?=\{)/)[0] || '{}') as { handshakes?: string };
          expect(st.handshakes, ctx).toBe('kernel');
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );

  it(
    'closes pass in the kernel: 200 connections open, say a word and close; the bridge hears of each close and forgets each connection after its linger',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await kernelHandshakePair(rig);
        try {
          const c = rig.host('client');
          const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'close', 160);
          const m0 = await scrapeMetrics(rig, 'primary');
          // Each: connect, "ECHO" and the client's FIN in one go; the servers answer with theirs.
          const r = await c.exec(
            [process.execPath, distScript('rig/servers/demo-client.js'), 'connect', VIP, String(DEMO_PORT), '0', '200'],
            { timeoutMs: 60_000, allowFail: true },
          );
          const { d, left } = await afterLinger(rig, m0);
          const report = checkTransparency(await cap.stop(), VIP, DEMO_PORT);
          const ctx = `${r.stderr.slice(-1000)}\n${pair.logs()}`;
          const ended = d('tcpfo_kernel_closes_total{action="ended"}');
          const handovers = ['bridge', 'unaligned', 'diverged', 'full', 'segment'].map((why) =>
            d(`tcpfo_kernel_handovers_total{reason="${why}"}`),
          );
          console.log(
            `200 connections closed: ${ended} closes passed in the kernel, ${d('tcpfo_kernel_closes_total{action="client-fin"}')} client FINs; handed to the bridge ${handovers.join('/')} (bridge/unaligned/diverged/full/segment); ${report.rstAfterClose} RST(s) after both ends closed`,
          );
          expect(r.code, ctx).toBe(0);
          expect(JSON.parse(r.stdout.trim()).connectUs, ctx).toHaveLength(200);
          expect(report.problems, ctx).toEqual([]);
          // Every close that the bridge did not take passed in the kernel; the bridge took few (a segment
          // the kernel does not merge: the client's SACK after a loss, say).
          expect(ended + handovers.reduce((a, b) => a + b, 0), ctx).toBeGreaterThanOrEqual(200);
          expect(ended, ctx).toBeGreaterThanOrEqual(180);
          expect(d('tcpfo_kernel_closes_total{action="untold"}'), ctx).toBe(0);
          // Ended, lingered and forgotten: nothing left of them in the bridge.
          expect(left, ctx).toEqual([]);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );

  it(
    'a client’s reset passes in the kernel: 50 connections echo a word and reset; the bridge hears of each and forgets it after its linger',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await kernelHandshakePair(rig);
        try {
          const c = rig.host('client');
          const m0 = await scrapeMetrics(rig, 'primary');
          // Each waits for its echo (both servers acknowledged what it sent), then resets (SO_LINGER 0).
          const script =
            `const net=require('net');let ok=0;(async()=>{for(let i=0;i<50;i++){await new Promise((res)=>{` +
            `const s=net.connect(${DEMO_PORT},'${VIP}',()=>s.write('ECHO\\nw'+i+'\\n'));let b='';` +
            `s.on('data',(d)=>{b+=d;if(b.includes('w'+i+'\\n')){ok++;s.resetAndDestroy()}});s.on('close',res);s.on('error',()=>{})})}` +
            `console.log(ok)})()`;
          const r = await c.exec([process.execPath, '-e', script], { timeoutMs: 60_000 });
          const { d, left } = await afterLinger(rig, m0);
          const ctx = `${r.stdout}${r.stderr}\n${pair.logs()}`;
          const resets = d('tcpfo_kernel_closes_total{action="client-rst"}');
          console.log(`50 connections reset by the client: ${resets} resets passed in the kernel`);
          expect(Number(r.stdout.trim()), ctx).toBe(50);
          expect(resets, ctx).toBe(50);
          expect(d('tcpfo_kernel_handovers_total{reason="bridge"}'), ctx).toBe(0);
          expect(left, ctx).toEqual([]);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );

  it(
    'S’s SYN-ACK comes first (P waits for the client’s MAC): P’s merges with it as it leaves, in S’s numbers, not a timer later',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await kernelHandshakePair(rig);
        try {
          const c = rig.host('client');
          // The client answers no ARP for now, and P forgets its MAC: P's SYN-ACK
          // waits in P's neighbour table, so S's (diverted to P's MAC) comes first.
          await c.sh(
            "nft add table arp tfo_hs && nft add chain arp tfo_hs out '{ type filter hook output priority 0; }' && nft add rule arp tfo_hs out arp operation reply drop",
          );
          await rig.host('primary').sh(`ip neigh flush to ${c.ip}`);
          const m0 = await scrapeMetrics(rig, 'primary');
          const connect = timedEcho(c, 'first');
          await new Promise((r) => setTimeout(r, 200));
          // P learns the client's MAC, and its SYN-ACK leaves (P's next ARP request would be 1 s after the first).
          await rig
            .host('primary')
            .sh(`ip neigh replace ${c.ip} lladdr ${c.mac} dev ${rig.host('primary').ifname} nud reachable`);
          await c.sh('nft delete table arp tfo_hs');
          const res = await connect;
          const m = await scrapeMetrics(rig, 'primary');
          const d = (series: string) => m(series) - (Number.isNaN(m0(series)) ? 0 : m0(series));
          const ctx = `${JSON.stringify(res)}\n${pair.logs()}`;
          console.log(
            `S's SYN-ACK first: connected and echoed after ${res.ms} ms; merged at P ${d('tcpfo_kernel_handshakes_total{action="merged-at-p"}')}`,
          );
          expect(res.error, ctx).toBeUndefined();
          expect(res.got, ctx).toBe('first\n');
          expect(d('tcpfo_kernel_handshakes_total{action="merged-at-p"}'), ctx).toBe(1);
          // Stolen instead, P's SYN-ACK would come again at its retransmission timer (1 s after the first).
          expect(res.ms, ctx).toBeLessThan(900);
        } finally {
          await rig.host('client').sh('nft delete table arp tfo_hs 2>/dev/null || true');
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );

  it(
    'the secondary dies while the kernel holds P’s SYN-ACK for S’s: the client is answered at once, not at P’s retransmission timer',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await kernelHandshakePair(rig);
        try {
          const c = rig.host('client');
          // S's SYN-ACKs never leave S: P's waits in the kernel.
          await rig
            .host('secondary')
            .exec(['iptables', '-I', 'OUTPUT', '-p', 'tcp', '--tcp-flags', 'SYN,ACK', 'SYN,ACK', '-j', 'DROP']);
          const connect = timedEcho(c, 'held');
          await new Promise((r) => setTimeout(r, 300));
          const m0 = await scrapeMetrics(rig, 'primary');
          await killNode(pair, 'secondary');
          await waitForLog(pair, /secondary failed: continuing alone/);
          const res = await connect;
          const m = await scrapeMetrics(rig, 'primary');
          const ctx = `${JSON.stringify(res)}\n${pair.logs()}`;
          console.log(`S killed with P's SYN-ACK held in the kernel: connected and echoed after ${res.ms} ms`);
          expect(m0('tcpfo_kernel_handshakes_total{action="held"}'), ctx).toBeGreaterThanOrEqual(1);
          expect(m('tcpfo_kernel_handshakes_total{action="prompted"}'), ctx).toBe(1);
          expect(res.error, ctx).toBeUndefined();
          expect(res.got, ctx).toBe('held\n');
          // P's retransmission timer would have sent it 1 s after the first; killed at 300 ms, detected 100 ms later.
          expect(res.ms, ctx).toBeLessThan(900);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );

  it(
    'the secondary’s server stops answering, then the node dies: P’s answers, held meanwhile, reach the client once the primary goes on alone',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        // The default merge (auto: kernel here).
        const pair = await TcpfoPair.start(rig, {});
        try {
          const c = rig.host('client');
          const session = echoSession(c, 6000);
          await new Promise((r) => setTimeout(r, 1500));
          const m0 = await scrapeMetrics(rig, 'primary');
          // S's TCP still acknowledges the client; its server produces nothing: P's answers wait (stolen, then held by the bridge).
          pair.servers[1]!.kill('SIGSTOP');
          await new Promise((r) => setTimeout(r, 500));
          await killNode(pair, 'secondary');
          await waitForLog(pair, /secondary failed: continuing alone/);
          const e = JSON.parse((await session).stdout.trim()) as {
            echoed: number;
            mismatched: number;
            sent: number;
            error?: string;
            maxRttMs: number;
          };
          const m = await scrapeMetrics(rig, 'primary');
          const ctx = `${JSON.stringify(e)}\n${pair.logs()}`;
          console.log(
            `S stopped 500 ms, then killed: ${e.echoed} echoes, slowest ${e.maxRttMs} ms; P's segments held in the kernel ${m('tcpfo_kernel_merge_total{action="held"}') - m0('tcpfo_kernel_merge_total{action="held"}')}, stolen at a handover ${m('tcpfo_kernel_merge_total{action="stolen"}') - m0('tcpfo_kernel_merge_total{action="stolen"}')}, kept for the bridge ${m('tcpfo_kernel_merge_total{action="stashed"}') - m0('tcpfo_kernel_merge_total{action="stashed"}')}, merged from there ${m('tcpfo_kernel_merge_total{action="stash-merged"}')}`,
          );
          expect(m('tcpfo_merge_info{mode="kernel"}'), ctx).toBe(1);
          expect(e.error, ctx).toBeUndefined();
          expect(e.mismatched, ctx).toBe(0);
          expect(e.sent - e.echoed, ctx).toBeLessThanOrEqual(1);
          // Nothing only P produced reached the client while S was stopped: an echo waited at least that long.
          expect(e.maxRttMs, ctx).toBeGreaterThanOrEqual(500);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(120_000),
  );

  for (const node of ['primary', 'secondary'] as const)
    it(
      `connections opening and closing in the kernel through the ${node}’s death: every answer complete and right, every close seen`,
      async () => {
        await withRig({ mode: 'hub' }, async (rig) => {
          const pair = await kernelHandshakePair(rig);
          try {
            const c = rig.host('client');
            // Batches of 20 connections, one after another for about 3 s: each asks for 1,000
            // bytes (one segment, merged in the kernel) and reads to the servers' FIN.
            const loop = c.sh(
              `for i in $(seq 30); do "${process.execPath}" "${distScript('rig/servers/demo-client.js')}" many ${VIP} ${DEMO_PORT} 1000 20; done`,
              { timeoutMs: 120_000, allowFail: true },
            );
            await new Promise((r) => setTimeout(r, 1000 + Math.floor(Math.random() * 500)));
            const m0 = await scrapeMetrics(rig, 'primary');
            await killNode(pair, node);
            const r = await loop;
            const batches = r.stdout
              .trim()
              .split('\n')
              .map((l) => JSON.parse(l) as { ok: number; failed: number; errors: string[] });
            const ctx = `${r.stdout.slice(-2000)}\n${r.stderr.slice(-1000)}\n${pair.logs()}`;
            console.log(
              `${node} killed amid closes: ${batches.reduce((a, b) => a + b.ok, 0)} of ${batches.length * 20} complete; ${m0('tcpfo_kernel_closes_total{action="ended"}')} closes in the kernel before the kill`,
            );
            expect(m0('tcpfo_kernel_closes_total{action="ended"}'), ctx).toBeGreaterThan(0);
            expect(batches, ctx).toHaveLength(30);
            for (const b of batches) expect(b.errors, ctx).toEqual([]);
          } finally {
            await pair.stop();
          }
        });
      },
      slow(180_000),
    );

  for (const node of ['primary', 'secondary'] as const) {
    it(
      `an echo session merged in the kernel survives the ${node}’s death: every echo right, none lost`,
      async () => {
        await withRig({ mode: 'hub' }, async (rig) => {
          const pair = await TcpfoPair.start(rig, { extraYaml: 'merge: kernel\n' });
          try {
            const c = rig.host('client');
            const session = echoSession(c, 6000);
            await new Promise((r) => setTimeout(r, 2000));
            await killNode(pair, node);
            await waitForLog(
              pair,
              node === 'primary' ? /took over the service address/ : /secondary failed: continuing alone/,
            );
            const e = JSON.parse((await session).stdout.trim()) as {
              echoed: number;
              mismatched: number;
              sent: number;
              error?: string;
              maxRttMs: number;
            };
            const ctx = `${JSON.stringify(e)}\n${pair.logs()}`;
            expect(e.error, ctx).toBeUndefined();
            expect(e.mismatched, ctx).toBe(0);
            expect(e.echoed, ctx).toBeGreaterThan(80);
            expect(e.sent - e.echoed, ctx).toBeLessThanOrEqual(1);
            console.log(`kernel merge, ${node} killed: ${e.echoed} echoes, slowest ${e.maxRttMs} ms`);
          } finally {
            await pair.stop();
          }
        });
      },
      slow(120_000),
    );
  }
});
