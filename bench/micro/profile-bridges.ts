/**
 * Where the bridges' time goes per packet: both bridges run with V8's CPU
 * profiler while MB megabytes go each way through the pair (the client's
 * link unshaped, or at --rate Mbit/s); prints, per bridge, user and system
 * CPU seconds (/proc/PID/stat), that as a share of one core over the
 * transfers, packets seen, CPU µs per packet, and the functions with the
 * most self time; first, each bridge's share of a core while the pair is
 * idle (heartbeats, timers). --no-profile: without the profiler (whose own
 * thread costs CPU too), for the share of a core alone. --trace-gc: the
 * bridges run under V8's --trace-gc, and the full collections (mark-compact)
 * each made during the transfers are counted. --gso-max-segs N: both
 * servers' LAN interfaces send GSO packets of at most N segments (`ip link
 * set … gso_max_segs`), to see how the packets' cut bears on the kernel merge.
 *
 *   npm run build && node dist/bench/micro/profile-bridges.js [MB=100] [--rate MBIT] [--datapath kernel|pcap] [--inbound kernel|queue] [--gso-max-segs N] [--no-profile] [--trace-gc]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { finalCounters, TcpfoPair, transfer } from '../../rig/pair.js';
import { withRig } from '../../rig/rig.js';
import { cliArgs } from './hops.js';
import { runAsProgram } from '../../rig/main.js';
import { cpuSeconds } from '../../rig/cpu.js';

export async function main(argv: string[]): Promise<number> {
  const { args, flag } = cliArgs(
    argv.filter((a) => a !== '--no-profile' && a !== '--trace-gc'),
    ['--rate', '--datapath', '--inbound', '--gso-max-segs'],
  );
  /** Without V8's sampling profiler, whose own thread costs the bridges CPU too. */
  const PROFILE = !argv.includes('--no-profile');
  /** The bridges under --trace-gc: their full collections during the transfers, counted. */
  const TRACE_GC = argv.includes('--trace-gc');
  const MB = Number(args[0] ?? 100);
  const RATE = Number(flag('--rate', '0'));
  const DATAPATH = flag('--datapath', 'auto') as 'auto' | 'kernel' | 'pcap';
  const INBOUND = flag('--inbound', 'auto');
  const GSO_MAX_SEGS = flag('--gso-max-segs', '');
  if (GSO_MAX_SEGS && !(Number.isInteger(Number(GSO_MAX_SEGS)) && Number(GSO_MAX_SEGS) >= 1))
    throw new Error(`--gso-max-segs: a whole number ≥ 1, not ${GSO_MAX_SEGS}`);

  interface ProfileNode {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
  }

  function topSelf(file: string, n = 12): Array<{ fn: string; pct: number }> {
    const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[] };
    const by = new Map<string, number>();
    let total = 0;
    for (const node of prof.nodes) {
      const hits = node.hitCount ?? 0;
      total += hits;
      const url = node.callFrame.url.replace(/^.*\/(dist|node_modules)\//, '$1/');
      const key =
        `${node.callFrame.functionName || '(anonymous)'} ${url ? `${url}:${node.callFrame.lineNumber + 1}` : ''}`.trim();
      by.set(key, (by.get(key) ?? 0) + hits);
    }
    return [...by.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([fn, h]) => ({ fn, pct: (100 * h) / Math.max(1, total) }));
  }

  await withRig({ mode: 'hub', links: RATE ? { client: { rateMbit: RATE } } : {} }, async (rig) => {
    const dir = join(rig.tmpdir, 'prof');
    if (GSO_MAX_SEGS)
      for (const h of ['primary', 'secondary'])
        await rig.host(h).exec(['ip', 'link', 'set', 'dev', 'eth0', 'gso_max_segs', GSO_MAX_SEGS]);
    const pair = await TcpfoPair.start(rig, {
      heartbeatTimeoutMs: 500,
      datapath: DATAPATH,
      extraYaml: `inbound: ${INBOUND}\n`,
      daemonNodeArgs: [
        ...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : []),
        ...(TRACE_GC ? ['--trace-gc'] : []),
      ],
    });
    const pids = { primary: pair.primary!.proc.pid!, secondary: pair.secondary!.proc.pid! };
    // Settle after the start, then the idle pair's own cost (heartbeats, timers) as a baseline.
    await new Promise((r) => setTimeout(r, 2000));
    const idle0 = { primary: cpuSeconds(pids.primary), secondary: cpuSeconds(pids.secondary) };
    const IDLE_S = 5;
    await new Promise((r) => setTimeout(r, IDLE_S * 1000));
    const before = { primary: cpuSeconds(pids.primary), secondary: cpuSeconds(pids.secondary) };
    // V8's --trace-gc lines in each bridge's log, so far.
    const fullGcs = (d: typeof pair.primary) => (readFileSync(d!.log, 'utf8').match(/: Mark-Compact /g) ?? []).length;
    const gc0 = { primary: fullGcs(pair.primary), secondary: fullGcs(pair.secondary) };
    const c = rig.host('client');
    const get = await transfer(c, 'get', MB * 1e6, 5);
    const put = await transfer(c, 'put', MB * 1e6, 6);
    const after = { primary: cpuSeconds(pids.primary), secondary: cpuSeconds(pids.secondary) };
    const gcs = {
      primary: fullGcs(pair.primary) - gc0.primary,
      secondary: fullGcs(pair.secondary) - gc0.secondary,
    };
    await pair.stop();
    const wall = (get.ms + put.ms) / 1000;
    console.log(
      `client link ${RATE ? `${RATE} Mbit/s` : 'unshaped'}, the secondary's data path ${DATAPATH}, the primary's inbound translation ${INBOUND}${GSO_MAX_SEGS ? `, the servers' GSO packets of at most ${GSO_MAX_SEGS} segments` : ''}${PROFILE ? ', V8 profiler on' : ', no profiler'}`,
    );
    console.log(
      `${MB} MB download ${get.ms} ms (${get.sha256 === get.expected ? 'exact' : 'WRONG'}), ${MB} MB upload ${put.ms} ms (${put.reply === `OK ${put.sha256}` ? 'exact' : 'WRONG'})`,
    );
    const p = finalCounters(pair.primary!.log) as {
      queues: { out: { received: number }; in: { received: number } };
      merger?: {
        kernelMerged?: number;
        kernelHandovers?: Record<string, number>;
        kernelTakes?: Record<string, number>;
        kernelReturns?: number;
      };
    };
    const s = finalCounters(pair.secondary!.log) as {
      datapath?: string;
      queue?: { received: number };
      capture?: { frames: number };
    };
    const packets = {
      primary: p.queues.out.received + p.queues.in.received,
      secondary: (s.queue?.received ?? 0) + (s.capture?.frames ?? 0),
    };
    if (p.merger?.kernelMerged)
      console.log(
        `the kernel merged ${p.merger.kernelMerged} connections; handed to the bridge ${JSON.stringify(p.merger.kernelHandovers ?? {})} (taken by a segment that reached it first: ${JSON.stringify(p.merger.kernelTakes ?? {})}); returned to the kernel ${p.merger.kernelReturns ?? 0}`,
      );
    for (const role of ['primary', 'secondary'] as const) {
      const user = after[role].user - before[role].user;
      const system = after[role].system - before[role].system;
      const pct = (100 * (user + system)) / wall;
      const share = `${pct.toFixed(1)} % of one core over the transfers`;
      const per = packets[role]
        ? `: ${(((user + system) * 1e6) / packets[role]).toFixed(1)} µs CPU per packet`
        : ' (the kernel carries its data path)';
      const idle = before[role].user + before[role].system - idle0[role].user - idle0[role].system;
      console.log(`\n${role} bridge, idle pair: ${((100 * idle) / IDLE_S).toFixed(1)} % of one core over ${IDLE_S} s`);
      console.log(
        `${role} bridge: ${user.toFixed(2)} s user + ${system.toFixed(2)} s system (${share}) for ${packets[role]} packets (${role === 'primary' ? 'NFQUEUE out + in' : 'NFQUEUE divert + libpcap frames'})${per}`,
      );
      if (TRACE_GC) console.log(`${role} bridge: ${gcs[role]} full collections (V8 mark-compact) during the transfers`);
      // The kernel merge's targets at 1 Gbit/s, without the profiler's own thread.
      const target = role === 'primary' ? 10 : 5;
      if (RATE === 1000 && !PROFILE)
        console.log(
          `${role} bridge: target ≤ ${target} % of a core at 1 Gbit/s: ${pct <= target ? 'met' : `missed by ${(pct - target).toFixed(1)} points`}`,
        );
    }
    if (RATE === 1000 && !PROFILE)
      console.log(
        '\nWhat limits the primary: the two servers send a stream in GSO packets of different lengths (each TCP sizes its bursts by its own pacing and timing), so one server’s packet seldom ends where the other’s waiting ranges end: it reaches past them (a handover, or P’s packet sent to the queue: “unaligned”, “bridge”), or has more segments than the kernel merges (“segment”: a 64 KB burst is 45); the kernel merge releases only whole packets (a tc program cannot cut a GSO packet short: bpf_skb_change_tail drops its segmentation). Such a stream crosses the queues from then on, each packet of up to 64 KB copied to the bridge and back; it returns to the kernel only when nothing waits on either side, which a stream seldom gives.',
      );
    const files = PROFILE ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
    for (const f of files) {
      // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
      const pid = Number(f.split('.')[3]);
      const role = pid === pids.primary ? 'primary' : pid === pids.secondary ? 'secondary' : `pid ${pid}`;
      console.log(`\n${role}: functions with the most self time (V8 sampling profile, whole run)`);
      for (const t of topSelf(join(dir, f))) console.log(`  ${t.pct.toFixed(1).padStart(5)} %  ${t.fn}`);
    }
  });
  return 0;
}

runAsProgram(import.meta.url, main);
