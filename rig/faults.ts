/**
 * One transfer through a tcpfo pair on faulty links (loss, duplication,
 * reordering per host link), optionally with a node killed in the middle.
 * Shared by test/rig/faulty-links.test.ts and bench/failover/faulty-links.ts.
 */
import { Capture } from './capture.js';
import { killNode } from './failover.js';
import { checkTransparency, framesAroundRst } from './oracle.js';
import { DEMO_PORT, finalCounters, TcpfoPair, transfer, VIP, VIP6, type TransferResult } from './pair.js';
import { withRig, type LinkShape } from './rig.js';

export type LinkName = 'client' | 'primary' | 'secondary';

export interface FaultCase {
  /** Impairment per host link (each applies to both directions of that link). */
  links: Partial<Record<LinkName, LinkShape>>;
  mode: 'get' | 'put';
  bytes: number;
  /** Kill this node this many ms into the transfer. */
  kill?: { node: 'primary' | 'secondary'; afterMs: number };
  seed?: number;
  timeoutMs?: number;
  /** More configuration for both nodes (YAML lines), e.g. `merge: release`. */
  extraYaml?: string;
  /** A dual-stack pair, the transfer over IPv6. */
  ipv6?: boolean;
}

export interface FaultResult {
  ok: boolean;
  /** Why not ok: transfer error, wrong bytes, oracle findings. */
  problems: string[];
  ms: number;
  maxGapMs: number;
  /** Frames the switch dropped, duplicated or delayed (nft counters). */
  impaired: { dropped: number; duplicated: number; delayed: number };
  /** Of those, IPv6 TCP frames. */
  impaired6: { dropped: number; duplicated: number; delayed: number };
  /** Re-sends by the primary bridge outside the normal merge (from its final counters; absent after it was killed). */
  retransmissions?: { primary: number; secondary: number; prefix: number };
  logs: string;
}

/** "client: loss 5%, dup 1%" and so on, for test names and reports. */
export function describeLinks(links: FaultCase['links']): string {
  const parts: string[] = [];
  for (const [name, s] of Object.entries(links)) {
    const f: string[] = [];
    if (s.loss) f.push(`loss ${s.loss * 100}%`);
    if (s.duplicate) f.push(`dup ${s.duplicate * 100}%`);
    if (s.reorder) f.push(`reorder ${s.reorder * 100}%`);
    if (s.rateMbit) f.push(`${s.rateMbit} Mbit/s`);
    parts.push(`${name}: ${f.join(', ')}`);
  }
  return parts.join('; ') || 'clean';
}

function check(c: FaultCase, r: TransferResult): string[] {
  if (r.error) return [`transfer failed: ${r.error}`];
  if (c.mode === 'get') {
    if (r.bytes !== c.bytes) return [`got ${r.bytes} of ${c.bytes} bytes`];
    if (r.sha256 !== r.expected) return ['downloaded bytes differ'];
  } else if (r.reply !== `OK ${r.sha256}`) return [`upload reply ${JSON.stringify(r.reply)}`];
  return [];
}

export async function runFaultCase(c: FaultCase): Promise<FaultResult> {
  return withRig({ mode: 'hub', links: c.links }, async (rig) => {
    // No node fails unless asked: a 500 ms detector timeout keeps a CPU-starved
    // machine from a false takeover; with a kill, the product default (100 ms).
    const pair = await TcpfoPair.start(rig, {
      heartbeatTimeoutMs: c.kill ? 100 : 500,
      ...(c.extraYaml ? { extraYaml: c.extraYaml } : {}),
      ipv6: c.ipv6 ?? false,
    });
    const vip = c.ipv6 ? VIP6 : VIP;
    let stopped = false;
    try {
      const client = rig.host('client');
      const cap = await Capture.start(client, `tcp port ${DEMO_PORT}`, 'faults', 96);
      const t = transfer(client, c.mode, c.bytes, c.seed ?? 51, c.timeoutMs ?? 240_000, vip);
      if (c.kill) {
        await new Promise((res) => setTimeout(res, c.kill!.afterMs));
        await killNode(pair, c.kill.node);
      }
      const r = await t;
      const problems = check(c, r);
      const frames = await cap.stop();
      const found = checkTransparency(frames, vip, DEMO_PORT).problems;
      problems.push(...found);
      if (found.some((p) => p.startsWith('RST')))
        problems.push(`frames around the RST:\n${framesAroundRst(frames, vip, DEMO_PORT)}`);
      const ruleset = (await rig.switchExec(['nft', 'list', 'ruleset'])).stdout;
      const count = (re: RegExp, text = ruleset) => [...text.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
      const impairedIn = (text: string) => ({
        dropped: count(/packets (\d+) bytes \d+ drop/g, text),
        duplicated: count(/packets (\d+) bytes \d+ dup to/g, text),
        delayed: count(/packets (\d+) bytes \d+ meta priority set/g, text),
      });
      const impaired = impairedIn(ruleset);
      // The IPv6 rules' share (nft lists them as `ip6 nexthdr tcp …`).
      const impaired6 = impairedIn(
        ruleset
          .split('\n')
          .filter((l) => l.includes('ip6 nexthdr tcp'))
          .join('\n'),
      );
      const logs = pair.logs();
      await pair.stop();
      stopped = true;
      let retransmissions: FaultResult['retransmissions'];
      if (c.kill?.node !== 'primary') {
        const p = finalCounters(pair.primary!.log) as {
          merger: { retransmissions: number; secondaryRetransmissions: number; prefixReleases: number };
        };
        retransmissions = {
          primary: p.merger.retransmissions,
          secondary: p.merger.secondaryRetransmissions,
          prefix: p.merger.prefixReleases,
        };
      }
      return {
        ok: problems.length === 0,
        problems,
        ms: r.ms,
        maxGapMs: r.maxGapMs,
        impaired,
        impaired6,
        retransmissions,
        logs,
      };
    } finally {
      if (!stopped) await pair.stop();
    }
  });
}
