/**
 * Planned switchovers in the rig (`tcpfo switchover`, `standby`,
 * `unstandby` run as an operator would, on a node), and one switchover
 * in the middle of each of the kill campaign's workloads — shared by the
 * rig test and the switchover bench.
 */
import { join } from 'node:path';
import { Capture } from './capture.js';
import { distScript } from './dist.js';
import { waitForLogCount } from './failover.js';
import { fileName, prepareFtpRoot, runFtp, sha256File, startVsftpd } from './ftp.js';
import { MC_PORT, startMemcached } from './kv.js';
import { checkTransparency } from './oracle.js';
import { DEMO_PORT, TcpfoPair, transfer, VIP } from './pair.js';
import { withRig } from './rig.js';
import { slow } from './slow.js';

export type Node = 'primary' | 'secondary';

export interface CliAnswer {
  code: number | null;
  out: string;
  ms: number;
}

/** Runs `tcpfo CMD -c <node's file>` on the node, as root there. */
export async function tcpfoCli(pair: TcpfoPair, node: Node, args: string[], timeoutMs = 60_000): Promise<CliAnswer> {
  const t0 = Date.now();
  const r = await pair.rig
    .host(node)
    .exec([process.execPath, distScript('cli.js'), ...args, '-c', pair.configFor(node)], {
      allowFail: true,
      timeoutMs: slow(timeoutMs),
    });
  return { code: r.code, out: `${r.stdout}${r.stderr}`, ms: Date.now() - t0 };
}

/** The role the node's daemon reports (tcpfo status --json; the promoted primary's when it plays both). */
export async function roleOf(pair: TcpfoPair, node: Node): Promise<string> {
  const r = await tcpfoCli(pair, node, ['status', '--json'], 10_000);
  const docs = r.out
    .trim()
    .split(/\n(?=\{)/)
    .map((d) => JSON.parse(d) as { role?: string; running?: boolean });
  const roles = docs.map((d) => d.role ?? (d.running === false ? 'not running' : '?'));
  // A promoted primary inside the secondary daemon answers on the 'p' socket, listed first.
  return roles.includes('primary') ? 'primary' : roles[0]!;
}

/** Waits until the node reports `role`. */
export async function waitForRole(pair: TcpfoPair, node: Node, role: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + slow(timeoutMs);
  let last = '';
  while ((last = await roleOf(pair, node).catch((e: unknown) => String(e))) !== role) {
    if (Date.now() > deadline)
      throw new Error(`the ${node} node is ${last}, not ${role}, after ${timeoutMs} ms; the logs:\n${pair.logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export type SwitchWorkload = 'echo' | 'download' | 'memcached' | 'ftp-get' | 'ftp-put';
export const SWITCH_WORKLOADS: readonly SwitchWorkload[] = ['echo', 'download', 'memcached', 'ftp-get', 'ftp-put'];

export interface SwitchRun {
  workload: SwitchWorkload;
  /** The node whose CLI asked: the primary hands over, the secondary asks the primary. */
  askedOn: Node;
  ok: boolean;
  /** The client's longest wait (the slowest echo, the longest gap of a download or of memcached answers); null for FTP. */
  stallMs: number | null;
  /** How long `tcpfo switchover` took to answer. */
  commandMs: number;
  detail: string;
}

/**
 * One pair, one workload, one switchover `afterMs` into it, asked on
 * `askedOn`: the workload must end byte-exact (every echo and memcached
 * answer right, the file's hash), with no RST and no sequence jump at the
 * client, and the other node must serve afterwards with this one its
 * secondary.
 */
export async function switchoverDuring(workload: SwitchWorkload, askedOn: Node, afterMs: number): Promise<SwitchRun> {
  const ftp = workload.startsWith('ftp');
  return withRig({ mode: 'hub', links: { client: { rateMbit: ftp ? 10 : 100 } } }, async (rig) => {
    const ports = ftp ? [20, 21] : workload === 'memcached' ? [MC_PORT] : [DEMO_PORT];
    const pair = await TcpfoPair.start(rig, { ports, demoServer: !ftp && workload !== 'memcached' });
    const c = rig.host('client');
    const problems: string[] = [];
    let stallMs: number | null = null;
    let commandMs = 0;
    let answer = '';
    try {
      const roots: Record<string, string> = {};
      if (ftp) {
        for (const n of ['primary', 'secondary']) {
          const { root, conf } = prepareFtpRoot(rig, n, VIP, [1738.1]);
          roots[n] = root;
          pair.servers.push(await startVsftpd(rig.host(n), conf));
        }
      } else if (workload === 'memcached') {
        for (const n of ['primary', 'secondary']) pair.servers.push(await startMemcached(rig.host(n), VIP, MC_PORT));
      }
      const filter = ftp ? 'tcp port 21 or tcp port 20' : `tcp port ${ports[0]}`;
      const cap = await Capture.start(c, filter, 'swo', 96);
      const local = join(rig.tmpdir, 'dl.bin');
      const f = fileName(1738.1);
      const run: Promise<() => void> =
        workload === 'echo'
          ? c
              .exec(
                [
                  process.execPath,
                  distScript('rig/servers/demo-client.js'),
                  'echo',
                  VIP,
                  String(DEMO_PORT),
                  '0',
                  String(slow(3000)),
                ],
                { timeoutMs: slow(60_000) },
              )
              .then((r) => () => {
                const e = JSON.parse(r.stdout.trim()) as {
                  echoed: number;
                  mismatched: number;
                  maxRttMs: number;
                  error?: string;
                };
                if (e.error || e.mismatched || e.echoed < 20) problems.push(`echo: ${r.stdout.trim()}`);
                stallMs = e.maxRttMs;
              })
          : workload === 'download'
            ? transfer(c, 'get', 30_000_000, 5, slow(120_000)).then((r) => () => {
                if (r.error || r.sha256 !== r.expected) problems.push(`download: ${r.error ?? 'content differs'}`);
                stallMs = r.maxGapMs;
              })
            : workload === 'memcached'
              ? c
                  .exec(
                    [
                      process.execPath,
                      distScript('rig/servers/rr-client.js'),
                      'memcached',
                      VIP,
                      String(MC_PORT),
                      String(slow(3000) / 1000),
                    ],
                    { timeoutMs: slow(60_000) },
                  )
                  .then((r) => () => {
                    const m = JSON.parse(r.stdout.trim()) as { ops: number; errors: number; maxGapMs: number };
                    if (m.errors || m.ops < 100) problems.push(`memcached: ${r.stdout.trim()}`);
                    stallMs = m.maxGapMs;
                  })
              : runFtp(
                  c,
                  VIP,
                  [workload === 'ftp-get' ? `get pub/${f} ${local}` : `put ${roots.primary}/pub/${f} incoming/up.bin`],
                  slow(120_000),
                ).then((r) => () => {
                  // Uploaded: both servers stored it (the other node serves it from now on).
                  const want = sha256File(join(roots.primary!, 'pub', f));
                  let got = 'missing';
                  try {
                    got =
                      workload === 'ftp-get'
                        ? sha256File(local)
                        : sha256File(join(roots.secondary!, 'incoming', 'up.bin'));
                  } catch {
                    /* missing */
                  }
                  if (r.completed !== 1 || got !== want)
                    problems.push(`${workload}: ${got === want ? '' : 'content differs; '}${r.transcript.slice(-300)}`);
                });
      await new Promise((r) => setTimeout(r, slow(afterMs)));
      const a = await tcpfoCli(pair, askedOn, ['switchover']);
      commandMs = a.ms;
      answer = a.out.trim();
      if (a.code !== 0) problems.push(`tcpfo switchover on the ${askedOn} exited ${a.code}: ${answer}`);
      (await run)();
      const frames = await cap.stop();
      for (const p of ftp ? [21, 20] : ports) problems.push(...checkTransparency(frames, VIP, p).problems);
      // The roles swapped: the old secondary serves, the old primary is its secondary.
      if (a.code === 0) {
        await waitForLogCount(pair, /now the primary \(roles swapped\)/, 1, 20_000, 'promotion of the old secondary');
        const [p, s] = [await roleOf(pair, 'primary'), await roleOf(pair, 'secondary')];
        if (p !== 'secondary' || s !== 'primary')
          problems.push(`after the switchover the primary node is ${p} and the secondary node ${s}`);
      }
    } catch (e) {
      problems.push((e as Error).message);
    } finally {
      await pair.stop();
    }
    return {
      workload,
      askedOn,
      ok: problems.length === 0,
      stallMs: ftp ? null : stallMs,
      commandMs,
      detail: problems.length ? `${problems.slice(0, 4).join('; ')} (answer: ${answer})` : answer,
    };
  });
}
