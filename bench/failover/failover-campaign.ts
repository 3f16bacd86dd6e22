/**
 * Kill campaign: for each workload —
 * a 50 MB download, a 50 MB upload (demo server), an FTP get and an FTP put
 * (vsftpd, 1738.1 KB) — kill the primary, then the secondary, at random
 * moments (link cut + SIGKILL of bridge and server), and check every client
 * transfer completes byte-exact with no RST at the client. Prints N of N and
 * the client-visible stall (median, max) per campaign, and writes a JSON report.
 *
 *   npm run build && node dist/bench/failover/failover-campaign.js [kills-per-workload=30] [report.json]
 *
 * With --ipv6: a dual-stack pair, and each workload runs over IPv4 and over
 * IPv6 with the same kill moment, one after the other (FTP over IPv6: vsftpd
 * on the IPv6 service address, EPRT).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Capture } from '../../rig/capture.js';
import { killNode } from '../../rig/failover.js';
import { fileName, prepareFtpRoot, runFtp, sha256File, startVsftpd } from '../../rig/ftp.js';
import { checkTransparency } from '../../rig/oracle.js';
import { DEMO_PORT, TcpfoPair, transfer, VIP, VIP6 } from '../../rig/pair.js';
import { median, runAsProgram, UsageError } from '../../rig/main.js';
import { withRig } from '../../rig/rig.js';

type Node = 'primary' | 'secondary';
type Workload = 'download' | 'upload' | 'ftp-get' | 'ftp-put';

type Family = 4 | 6;

interface Run {
  node: Node;
  workload: Workload;
  /** The transfer's address family (the pair is dual-stack for either with --ipv6). */
  family: Family;
  killAfterMs: number;
  ok: boolean;
  stallMs: number | null;
  detail: string;
}

async function demoRun(
  node: Node,
  workload: 'download' | 'upload',
  killAfterMs: number,
  family: Family,
  dualStack: boolean,
): Promise<Run> {
  return withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
    const pair = await TcpfoPair.start(rig, { ipv6: dualStack });
    const vip = family === 6 ? VIP6 : VIP;
    try {
      const c = rig.host('client');
      const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'camp', 96);
      const t = transfer(c, workload === 'download' ? 'get' : 'put', 50_000_000, 77, 180_000, vip);
      await new Promise((r) => setTimeout(r, killAfterMs));
      await killNode(pair, node);
      const r = await t;
      const problems = checkTransparency(await cap.stop(), vip, DEMO_PORT).problems;
      const exact =
        workload === 'download' ? r.bytes === 50_000_000 && r.sha256 === r.expected : r.reply === `OK ${r.sha256}`;
      return {
        node,
        workload,
        family,
        killAfterMs,
        ok: exact && !r.error && problems.length === 0,
        stallMs: r.maxGapMs,
        detail: r.error ?? problems.slice(0, 3).join('; '),
      };
    } finally {
      await pair.stop();
    }
  });
}

async function ftpRun(
  node: Node,
  workload: 'ftp-get' | 'ftp-put',
  killAfterMs: number,
  family: Family,
  dualStack: boolean,
): Promise<Run> {
  return withRig({ mode: 'hub', links: { client: { rateMbit: 10 } } }, async (rig) => {
    const pair = await TcpfoPair.start(rig, { ports: [20, 21], demoServer: false, ipv6: dualStack });
    const vip = family === 6 ? VIP6 : VIP;
    try {
      const roots: Record<string, string> = {};
      for (const n of ['primary', 'secondary']) {
        const { root, conf } = prepareFtpRoot(rig, n, vip, [1738.1]);
        roots[n] = root;
        pair.servers.push(await startVsftpd(rig.host(n), conf));
      }
      const f = fileName(1738.1);
      const local = join(rig.tmpdir, 'dl.bin');
      const cmd = workload === 'ftp-get' ? `get pub/${f} ${local}` : `put ${roots.primary}/pub/${f} incoming/up.bin`;
      const cap = await Capture.start(rig.host('client'), 'tcp port 21 or tcp port 20', 'ftpcamp', 96);
      const t0 = Date.now();
      // Active mode (the servers open the data connections: PORT, or EPRT over IPv6).
      const ftp = runFtp(rig.host('client'), vip, ['passive off', cmd], 180_000);
      await new Promise((r) => setTimeout(r, killAfterMs));
      await killNode(pair, node);
      const r = await ftp;
      const frames = await cap.stop();
      // The control connection (21) and the server-initiated data connections (from 20).
      const problems = [...checkTransparency(frames, vip, 21).problems, ...checkTransparency(frames, vip, 20).problems];
      const want = sha256File(join(roots.primary!, 'pub', f));
      const survivor = node === 'primary' ? roots.secondary! : roots.primary!;
      let got = '';
      try {
        got = workload === 'ftp-get' ? sha256File(local) : sha256File(join(survivor, 'incoming', 'up.bin'));
      } catch {
        got = 'missing';
      }
      const ok = r.completed === 1 && got === want && problems.length === 0;
      return {
        node,
        workload,
        family,
        killAfterMs,
        ok,
        stallMs: ok ? Date.now() - t0 : null,
        detail: ok ? '' : `${got === want ? '' : 'content differs; '}${problems.join('; ')}${r.transcript.slice(-300)}`,
      };
    } finally {
      await pair.stop();
    }
  });
}

export async function main(argv: string[]): Promise<number> {
  const dualStack = argv.includes('--ipv6');
  const args = argv.filter((a) => a !== '--ipv6');
  const N = Number(args[0] ?? 30);
  const OUT = args[1] ?? `bench/results/failover-campaign${dualStack ? '-ipv6' : ''}.json`;
  if (!Number.isInteger(N) || N < 1)
    throw new UsageError('usage: failover-campaign.js [--ipv6] [kills-per-workload=30] [report.json]');
  const workloads: Workload[] = ['download', 'upload', 'ftp-get', 'ftp-put'];
  const families: Family[] = dualStack ? [4, 6] : [4];
  const runs: Run[] = [];
  const started = Date.now();
  for (const node of ['primary', 'secondary'] as const) {
    for (const workload of workloads) {
      for (let i = 0; i < N; i++) {
        // download/upload last about 4.5 s at 100 Mbit/s; the FTP file ~1.5 s at 10 Mbit/s.
        const killAfter = workload.startsWith('ftp')
          ? 100 + Math.floor(Math.random() * 1200)
          : 50 + Math.floor(Math.random() * 4000);
        for (const family of families) {
          const run =
            workload === 'download' || workload === 'upload'
              ? await demoRun(node, workload, killAfter, family, dualStack)
              : await ftpRun(node, workload, killAfter, family, dualStack);
          runs.push(run);
          process.stdout.write(
            `${node.padEnd(9)} ${workload.padEnd(8)}${dualStack ? ` IPv${family}` : ''} kill at ${String(killAfter).padStart(4)} ms: ${run.ok ? 'ok' : 'FAILED'}${run.stallMs !== null && !workload.startsWith('ftp') ? `, stall ${run.stallMs} ms` : ''}${run.ok ? '' : ` — ${run.detail}`}\n`,
          );
        }
      }
    }
  }
  console.log(
    `\ncampaign (detector interval 20 ms, timeout 100 ms; rto_min 20 ms${dualStack ? '; a dual-stack pair' : ''}), ${((Date.now() - started) / 60000).toFixed(1)} min:`,
  );
  const summary: Record<string, unknown> = {};
  for (const node of ['primary', 'secondary'] as const) {
    for (const workload of workloads) {
      for (const family of families) {
        const rs = runs.filter((r) => r.node === node && r.workload === workload && r.family === family);
        const ok = rs.filter((r) => r.ok).length;
        const stalls = rs
          .filter((r) => r.ok && r.stallMs !== null && !workload.startsWith('ftp'))
          .map((r) => r.stallMs!);
        const name = `${workload}${dualStack ? ` IPv${family}` : ''}`;
        const line = `  kill ${node.padEnd(9)} ${name.padEnd(dualStack ? 13 : 8)} ${ok} of ${rs.length} byte-exact${stalls.length ? `, stall median ${median(stalls)} ms, max ${Math.max(...stalls)} ms` : ''}`;
        console.log(line);
        summary[`${node}/${workload}${dualStack ? `/ipv${family}` : ''}`] = {
          ok,
          of: rs.length,
          stallMedianMs: stalls.length ? median(stalls) : null,
          stallMaxMs: stalls.length ? Math.max(...stalls) : null,
        };
      }
    }
  }
  writeFileSync(
    OUT,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        killsPerWorkload: N,
        dualStack,
        detector: { intervalMs: 20, timeoutMs: 100 },
        summary,
        runs,
      },
      null,
      2,
    ),
  );
  console.log(`report: ${OUT}`);
  return runs.some((r) => !r.ok) ? 1 : 0;
}

runAsProgram(import.meta.url, main);
