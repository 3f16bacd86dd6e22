/**
 * Soak: mixed traffic through a tcpfo pair for a long time with
 * periodic failovers — alternately each node is killed and restarted 2 s
 * later, and rejoins the survivor (as the secondary of a primary left alone,
 * or, after a takeover, with the roles swapped). Traffic never pauses.
 * Every transfer is checked byte-exact; the bridges' memory is sampled. Shared by bench/failover/soak.ts (an hour) and test/rig/soak.test.ts (CI).
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bpfView } from './bpf-view.js';
import { killNode, logCount, restartNode, waitForLogCount } from './failover.js';
import { distScript } from './dist.js';
import { DEMO_PORT, TcpfoPair, transfer, VIP } from './pair.js';
import { withRig, type Rig } from './rig.js';

export interface SoakOptions {
  durationMs: number;
  failoverEveryMs: number;
  /** Called once per report interval with the totals so far. */
  onReport?: (r: SoakInterval) => void;
  reportEveryMs?: number;
  /**
   * Kill the nodes in turn (default), each rejoining — a killed primary with
   * the roles swapped (failover.rejoin: swap-roles) — or only ever the node in
   * the secondary role (false).
   */
  alternate?: boolean;
  /**
   * Record every SYN, SYN-ACK and RST the client's link carries (tcpdump on
   * its switch port, which the hub copies every node's frames to), so that a
   * stalled transfer's report shows who answered its SYNs. For short runs:
   * the record grows with the run.
   */
  captureHandshakes?: boolean;
}

export interface SoakInterval {
  atS: number;
  transfers: number;
  transferFailures: number;
  megabytes: number;
  shortConnections: number;
  shortFailures: number;
  failovers: { primary: number; secondary: number };
  /** Resident memory of the bridge processes now, MB (null while a node is down). */
  primaryRssMb: number | null;
  secondaryRssMb: number | null;
}

export interface SoakReport {
  intervals: SoakInterval[];
  errors: string[];
  /** Both bridges' whole logs, when the soak stopped on a failover gone wrong (their story). */
  bridgeLogs?: string;
}

async function rssMb(rig: Rig, node: string): Promise<number | null> {
  const r = await rig
    .host(node)
    .exec(['curl', '-sf', '--max-time', '1', 'http://127.0.0.1:9464/metrics'], { allowFail: true });
  const m = /^process_resident_memory_bytes (\S+)$/m.exec(r.stdout);
  return m ? Number(m[1]) / 1e6 : null;
}

export async function soak(opts: SoakOptions): Promise<SoakReport> {
  return withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
    const alternate = opts.alternate ?? true;
    // Restarted primaries rejoin with the roles swapped (the default; spelled out).
    const pair = await TcpfoPair.start(rig, alternate ? { extraYaml: 'failover:\n  rejoin: swap-roles\n' } : {});
    const t0 = Date.now();
    // Ends early when a failover goes wrong (see failovers): what follows would measure the harness.
    let end = t0 + opts.durationMs;
    const errors: string[] = [];
    const tot = { transfers: 0, transferFailures: 0, bytes: 0, short: 0, shortFailures: 0, primary: 0, secondary: 0 };
    const intervals: SoakInterval[] = [];
    let bridgeLogs: string | undefined;
    const c = rig.host('client');
    let seed = 1000;
    const record = opts.captureHandshakes ? handshakeRecord(rig) : null;
    /** A failed connection's SYNs, SYN-ACKs and RSTs on the client's link, as the record has them. */
    const recordOf = (ports: (number | undefined)[]): string => {
      const known = ports.filter((p): p is number => !!p);
      if (!record || !known.length) return '';
      return `\n    handshakes on the client's link:\n      ${record.linesOf(known).join('\n      ')}`;
    };

    /** The bridges' log lines about the client port `port` (a failed transfer's story). */
    const logLinesOf = (port: number | undefined): string => {
      if (!port) return '';
      const timeline =
        /took over|roles swapped|secondary failed|rejoined|aborted|taking the primary role|primary is (up|down)/;
      // Per node: the last lines about this port or the pair's roles.
      const per = pair
        .logs()
        .split(/^(?=--- )/m)
        .map((part) => {
          const lines = part.split('\n');
          return [
            lines[0] ?? '',
            ...lines
              .slice(1)
              .filter((l) => l.includes(`:${port}"`) || timeline.test(l))
              .slice(-12),
          ];
        });
      return `\n    ${per
        .flat()
        .map((l) => l.slice(0, 300))
        .join('\n    ')}`;
    };
    /** What a node's bridge(s) say: role, connections, what waits for the secondary, drops. */
    const bridgeStatus = async (node: string): Promise<string> => {
      const r = await rig
        .host(node)
        .exec([process.execPath, distScript('cli.js'), 'status', '--json', '-c', pair.configFor(node)], {
          allowFail: true,
          timeoutMs: 5000,
        });
      const out: string[] = [];
      for (const chunk of r.stdout.split(/\n(?=\{)/)) {
        try {
          const st = JSON.parse(chunk) as Record<string, unknown>;
          const m = st.merger as { drops?: unknown } | undefined;
          out.push(
            `${node}:${String(st.role)} ${JSON.stringify({ connections: st.connections, stuck: st.stuck, drops: m?.drops, handshakes: st.handshakes, kernel: st.kernelInbound })}`,
          );
        } catch {
          // not a status
        }
      }
      return out.join(' ; ').slice(0, 5000) || `${node}: no bridge`;
    };
    const transfers = async () => {
      while (Date.now() < end) {
        const mode = seed % 2 ? 'get' : 'put';
        const bytes = 1_000_000 + ((seed * 7919) % 30) * 1_000_000;
        // A transfer normally takes ≤ 3 s here: after 10 s, record what the
        // three hosts' TCP stacks say about it (once), for the report.
        const watchdog = setTimeout(() => {
          void (async () => {
            const ss = async (host: string, filter: string) =>
              (await rig.host(host).sh(`ss -tinH ${filter}`, { allowFail: true })).stdout
                .replace(/\s+/g, ' ')
                .slice(0, 1500);
            const client = await ss('client', `dst ${VIP}`);
            // Where the client sends to the service address, and what each node's TCP did with SYNs.
            const neigh = (await c.sh(`ip neigh show ${VIP}`, { allowFail: true })).stdout.trim();
            const synState = async (host: string) =>
              (
                await rig
                  .host(host)
                  .sh(
                    'nstat -asz TcpPassiveOpens TcpExtListenDrops TcpExtListenOverflows TcpExtTCPReqQFullDrop TcpExtSyncookiesSent' +
                      ' | awk \'NR > 1 { printf "%s=%s ", $1, $2 }\';' +
                      ` echo "listening $(ss -ltnH sport = :${DEMO_PORT} | wc -l) syn-recv $(ss -tnH state syn-recv src ${VIP} | awk '{print $4}' | sed 's/.*://' | sort -n | tr '\\n' ' ')"`,
                    { allowFail: true },
                  )
              ).stdout.trim();
            const port = Number(/192\.0\.2\.10:(\d+) 192\.0\.2\.100:7000/.exec(client)?.[1] ?? 0);
            // The client's connections still opening: what each node's programs hold of their handshakes.
            const opening = (await c.sh(`ss -tnH state syn-sent dst ${VIP}`, { allowFail: true })).stdout
              .split('\n')
              .map((l) => Number(/:(\d+)\s+\S+:\d+\s*$/.exec(l.trim())?.[1] ?? NaN))
              .filter((n) => Number.isInteger(n));
            const syns = { primary: await synState('primary'), secondary: await synState('secondary') };
            // And the connections either node still has half-open.
            const halfOpen = Object.values(syns).flatMap((t) =>
              (/syn-recv ([\d ]*)/.exec(t)?.[1] ?? '').split(' ').filter(Boolean).map(Number),
            );
            const recorded = [...new Set([...opening, ...halfOpen])].slice(0, 30);
            errors.push(
              `${new Date().toISOString()} ${mode} ${bytes} seed ${seed - 1} slow (10 s): client ${client} | primary ${await ss('primary', `src ${VIP}`)} | secondary ${await ss('secondary', `src ${VIP}`)}` +
                `\n    client's neighbour ${neigh}; primary ${syns.primary}; secondary ${syns.secondary}` +
                `\n    bridges: ${await bridgeStatus('primary')} | ${await bridgeStatus('secondary')}` +
                `\n    programs: primary ${await bpfView(rig, 'primary', opening)} | secondary ${await bpfView(rig, 'secondary', opening)}` +
                recordOf(recorded) +
                logLinesOf(port),
            );
          })();
        }, 10_000);
        try {
          const r = await transfer(c, mode, bytes, seed++, 180_000);
          clearTimeout(watchdog);
          const ok =
            !r.error && (mode === 'get' ? r.bytes === bytes && r.sha256 === r.expected : r.reply === `OK ${r.sha256}`);
          tot.transfers++;
          if (ok) tot.bytes += bytes;
          else {
            tot.transferFailures++;
            const what =
              r.error ??
              (mode === 'get'
                ? `got ${r.bytes} bytes, first differing at ${r.firstDiff}`
                : `reply ${JSON.stringify(r.reply)}`);
            errors.push(
              `${new Date().toISOString()} ${mode} ${bytes} port ${r.localPort}: ${what}${logLinesOf(r.localPort)}${recordOf([r.localPort])}`,
            );
          }
        } catch (e) {
          clearTimeout(watchdog);
          tot.transfers++;
          tot.transferFailures++;
          errors.push(`${new Date().toISOString()} ${mode} ${bytes}: ${(e as Error).message.slice(0, 300)}`);
        }
      }
    };
    const shorts = async () => {
      while (Date.now() < end) {
        {
          const r = await c.exec(
            [process.execPath, distScript('rig/servers/demo-client.js'), 'many', VIP, String(DEMO_PORT), '20000', '20'],
            { timeoutMs: 120_000, allowFail: true },
          );
          const out = JSON.parse(r.stdout.trim() || '{"ok":0,"failed":20,"errors":["no output"]}') as {
            ok: number;
            failed: number;
            errors: string[];
          };
          tot.short += out.ok + out.failed;
          tot.shortFailures += out.failed;
          if (out.errors.length) {
            const port = Number(/port (\d+)/.exec(out.errors[0]!)?.[1] ?? 0);
            errors.push(
              `${new Date().toISOString()} short connections: ${out.errors.slice(0, 3).join('; ')}${logLinesOf(port)}${recordOf([port])}`,
            );
          }
        }
        await new Promise((res) => setTimeout(res, 500));
      }
    };
    const count = (re: RegExp) => logCount(pair, re);
    const REACTED = /secondary failed: continuing alone|took over the service address/g;
    const REJOINED = /secondary rejoined|now the primary \(roles swapped\)/g;
    const waitCount = (re: RegExp, n: number, what: string) => waitForLogCount(pair, re, n, 15_000, what);
    const failovers = async () => {
      // Alternately each node dies (link cut, bridge and server SIGKILLed) and
      // comes back 2 s later: as the secondary of the survivor — which, if it
      // had taken over, becomes the merging primary (roles swapped).
      let next: 'secondary' | 'primary' = 'secondary';
      while (Date.now() + opts.failoverEveryMs < end) {
        await new Promise((res) => setTimeout(res, opts.failoverEveryMs));
        try {
          const reacted = count(REACTED);
          const rejoined = count(REJOINED);
          // One reaction per kill; another one means a node took over, or
          // dropped its secondary, with nobody killed: a false detection.
          if (reacted > tot.primary + tot.secondary)
            throw new Error(
              `${reacted} reactions to ${tot.primary + tot.secondary} kills: a node reacted to a failure that did not happen (split brain?)`,
            );
          await killNode(pair, next);
          tot[next]++;
          await waitCount(REACTED, reacted + 1, 'reaction of the survivor');
          await new Promise((res) => setTimeout(res, 2000));
          await restartNode(pair, next);
          await waitCount(REJOINED, rejoined + 1, 'rejoin');
        } catch (e) {
          // The pair did not react as it should (a split brain, a node that
          // never came back): killing more nodes would only take down the
          // survivor and fail everything after. Stop here, with the story.
          errors.push(
            `${new Date().toISOString()} failover (${next}): ${(e as Error).message.slice(0, 500)}; soak stopped here\n    ${await bridgeStatus('primary')} | ${await bridgeStatus('secondary')}`,
          );
          end = Date.now();
          bridgeLogs = pair.logs();
          break;
        }
        if (alternate) next = next === 'secondary' ? 'primary' : 'secondary';
      }
    };
    const reports = async () => {
      const every = opts.reportEveryMs ?? 60_000;
      while (Date.now() < end) {
        await new Promise((res) => setTimeout(res, Math.min(every, Math.max(0, end - Date.now()))));
        const row: SoakInterval = {
          atS: Math.round((Date.now() - t0) / 1000),
          transfers: tot.transfers,
          transferFailures: tot.transferFailures,
          megabytes: Math.round(tot.bytes / 1e6),
          shortConnections: tot.short,
          shortFailures: tot.shortFailures,
          failovers: { primary: tot.primary, secondary: tot.secondary },
          primaryRssMb: await rssMb(rig, 'primary'),
          secondaryRssMb: await rssMb(rig, 'secondary'),
        };
        intervals.push(row);
        opts.onReport?.(row);
      }
    };
    try {
      await Promise.all([transfers(), shorts(), failovers(), reports()]);
    } finally {
      record?.close();
      await pair.stop();
    }
    return { intervals, errors, ...(bridgeLogs ? { bridgeLogs } : {}) };
  });
}

/**
 * tcpdump on the client's switch port, in the background: every SYN,
 * SYN-ACK and RST of the service port, with MAC addresses (who sent it),
 * to a file in the rig's directory (removed with the rig).
 */
function handshakeRecord(rig: Rig): { linesOf(ports: readonly number[]): string[]; close(): void } {
  const file = join(rig.tmpdir, 'handshakes.txt');
  const out = openSync(file, 'w');
  const proc = rig.track(
    spawn(
      'ip',
      [
        ...['netns', 'exec', rig.switchNs, 'tcpdump', '-i', rig.portOf('client'), '-nn', '-e', '-l', '-tt'],
        `tcp port ${DEMO_PORT} and (tcp[tcpflags] & (tcp-syn|tcp-rst) != 0)`,
      ],
      { stdio: ['ignore', out, 'ignore'], detached: true },
    ),
  );
  closeSync(out); // the child has its own
  return {
    linesOf(ports) {
      let text = '';
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        return ['(no record)'];
      }
      const lines = text.split('\n').filter((l) => ports.some((p) => l.includes(`.${p} `) || l.includes(`.${p}:`)));
      return lines.slice(-120);
    },
    close() {
      proc.kill('SIGTERM');
    },
  };
}
