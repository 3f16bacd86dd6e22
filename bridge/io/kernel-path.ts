/**
 * The secondary's data path in the kernel (docs/kernel-fast-path.md): no
 * capture, no injection, no queue — the secondary's bridge keeps only the
 * control plane.
 *
 * Ingress: a netdev ingress chain on S's LAN interface takes the client's
 * frames for the primary's MAC, the service address and a failover port,
 * marks them as addressed to this host and rewrites the destination MAC to
 * S's own: S's TCP takes them straight from the NIC (the VIP is dormant on
 * S's `lo`).
 *
 * Egress (the divert): a route chain marks S's segments from the service
 * address and a failover port, and sets their TTL to 1; a policy-routing
 * rule sends marked packets to the primary's own address as next hop. They
 * leave unchanged (source VIP, destination the client) to P's MAC, where
 * P's bridge merges them. TTL 1: a node that forwards never routes one on
 * to the client, even with its bridge dead. A second rule blackholes marked
 * packets if the route is ever missing, so none reaches a client by the
 * main table.
 *
 * IPv6 (`v6`): the same rules for the IPv6 service address (`ip6 daddr`, the
 * hop limit set to 1), in a table `ip6 tcpfo_<tag>` beside the IPv4 one, and
 * the same policy routing for `ip -6` to the primary's IPv6 address.
 *
 * The nft tables are replaced (and later removed) in one transaction. The
 * routes are not in the bridge's journal: a restarting bridge must not take
 * them away before its own path is in (marked packets would then leave by
 * the main table, straight to the client); they are made sure of (added if
 * missing, the route replaced in place) and removed only once no table marks
 * packets any more — at a takeover, a stop, or by `tcpfo cleanup`.
 */
import { ipAddrToString, ipv4ToString } from '../../net/addr.js';
import type { PortSet } from '../../net/ports.js';
import { nftApply } from './rules.js';
import { run } from './run.js';

/** The fwmark bit of diverted segments, and the routing table and rule priority that route them. */
export const DIVERT_MARK = 0x00400000;
export const DIVERT_TABLE = 7466;
export const DIVERT_RULE_PRIORITY = 7466;

export interface KernelPathSpec {
  /** The bridge's rule tag: tables `netdev tcpfo_<tag>` and `ip tcpfo_<tag>`. */
  tag: string;
  lanInterface: string;
  vip: number;
  ports: PortSet;
  /** The primary's MAC: the client's frames to it are S's too. */
  primaryMac: string;
  /** S's own MAC, written into those frames. */
  selfMac: string;
  /** The primary's own address: the next hop of S's segments. */
  primaryAddress: number;
  /** The IPv6 service address and the primary's own IPv6 address (IpAddr hex), if the service has one. */
  v6?: { vip: string; primaryAddress: string } | null;
}

function portSet(ports: PortSet): string {
  return `{ ${ports.map((p) => (typeof p === 'number' ? String(p) : `${p[0]}-${p[1]}`)).join(', ')} }`;
}

/** The nft tables of the kernel path, created anew (a predecessor's of the same tag replaced in the same transaction). */
export function kernelPathRuleset(k: KernelPathSpec): string {
  const vip = ipv4ToString(k.vip);
  const vip6 = k.v6 ? ipAddrToString(k.v6.vip) : null;
  const ports = portSet(k.ports);
  const t = `tcpfo_${k.tag}`;
  const mark = `meta mark set meta mark | 0x${DIVERT_MARK.toString(16)}`;
  const toS = `meta pkttype set host ether daddr set ${k.selfMac.toLowerCase()} counter comment "tcpfo: the client's segments to P, into S's TCP"`;
  const toP = `counter comment "tcpfo: S's segments to clients, routed to P (fail closed)"`;
  const divertChain = (match: string) => [
    '  chain divert {',
    '    type route hook output priority -150; policy accept;',
    `    oifname != "lo" ${match}`,
    '  }',
  ];
  return [
    `table netdev ${t} {}`,
    `delete table netdev ${t}`,
    `table ip ${t} {}`,
    `delete table ip ${t}`,
    // The ip6 table only with an IPv6 address (a kernel without IPv6 takes the rest as ever).
    ...(vip6 ? [`table ip6 ${t} {}`, `delete table ip6 ${t}`] : []),
    `table netdev ${t} {`,
    '  chain ingress {',
    `    type filter hook ingress device "${k.lanInterface}" priority -500; policy accept;`,
    `    ether daddr ${k.primaryMac.toLowerCase()} ip daddr ${vip} tcp dport ${ports} ${toS}`,
    ...(vip6 ? [`    ether daddr ${k.primaryMac.toLowerCase()} ip6 daddr ${vip6} tcp dport ${ports} ${toS}`] : []),
    '  }',
    '}',
    `table ip ${t} {`,
    ...divertChain(`ip saddr ${vip} tcp sport ${ports} ${mark} ip ttl set 1 ${toP}`),
    '}',
    ...(vip6
      ? [
          `table ip6 ${t} {`,
          ...divertChain(`ip6 saddr ${vip6} tcp sport ${ports} ${mark} ip6 hoplimit set 1 ${toP}`),
          '}',
        ]
      : []),
    '',
  ].join('\n');
}

const MARK_SPEC = `0x${DIVERT_MARK.toString(16)}/0x${DIVERT_MARK.toString(16)}`;
/** The divert's policy rules, as `ip rule add` takes them: to the table, and a blackhole behind it. */
const LOOKUP_RULE = ['fwmark', MARK_SPEC, 'lookup', String(DIVERT_TABLE), 'priority', String(DIVERT_RULE_PRIORITY)];
// If the table's route is ever gone (the interface lost it), marked packets are dropped, not routed by the main table.
const BLACKHOLE_RULE = ['fwmark', MARK_SPEC, 'blackhole', 'priority', String(DIVERT_RULE_PRIORITY + 1)];

/** The divert's route: every marked packet to the primary's address (its IPv6 one: `ip -6`). */
export function divertRoute(
  k: Pick<KernelPathSpec, 'primaryAddress' | 'lanInterface'> & { primary6?: string },
): string[] {
  return [
    'default',
    'via',
    k.primary6 !== undefined ? ipAddrToString(k.primary6) : ipv4ToString(k.primaryAddress),
    'dev',
    k.lanInterface,
    'onlink',
    'table',
    String(DIVERT_TABLE),
  ];
}

type Family = '-4' | '-6';

async function ip(family: Family, args: string[]): Promise<string> {
  return run('ip', [family, ...args], { timeoutMs: 10_000 });
}

/** Whether `ip rule` lists a rule of `family` at `priority` (the divert's are the only ones we put there). */
async function ruleAt(family: Family, priority: number): Promise<boolean> {
  const out = await ip(family, ['rule', 'show', 'priority', String(priority)]).catch(() => '');
  return out.trim().length > 0;
}

/** The divert's routing of one family, made sure of without a moment in which marked packets have nowhere to go. */
async function ensureDivertRoutes(family: Family, route: string[]): Promise<void> {
  if (!(await ruleAt(family, DIVERT_RULE_PRIORITY + 1))) await ip(family, ['rule', 'add', ...BLACKHOLE_RULE]);
  await ip(family, ['route', 'replace', ...route]);
  if (!(await ruleAt(family, DIVERT_RULE_PRIORITY))) await ip(family, ['rule', 'add', ...LOOKUP_RULE]);
}

/** Removes the divert's routing (every copy, both families). Only once no table marks packets any more. */
export async function removeDivertRoutes(): Promise<boolean> {
  let removed = false;
  for (const family of ['-4', '-6'] as const) {
    for (const spec of [LOOKUP_RULE, BLACKHOLE_RULE]) {
      for (let i = 0; i < 16; i++) {
        const ok = await ip(family, ['rule', 'del', ...spec]).then(
          () => true,
          () => false,
        );
        if (!ok) break;
        removed = true;
      }
    }
    await ip(family, ['route', 'flush', 'table', String(DIVERT_TABLE)]).catch(() => '');
  }
  return removed;
}

/**
 * Installs the kernel path: the routing first (marked packets have nowhere
 * else to go), then both tables in one transaction, replacing what a killed
 * predecessor of the same tag left.
 */
export async function installKernelPath(k: KernelPathSpec): Promise<void> {
  await ensureDivertRoutes('-4', divertRoute(k));
  if (k.v6) await ensureDivertRoutes('-6', divertRoute({ ...k, primary6: k.v6.primaryAddress }));
  await nftApply(kernelPathRuleset(k));
  // A predecessor's IPv6 divert, when this one serves IPv4 only.
  if (!k.v6) await nftApply(`table ip6 tcpfo_${k.tag} {}\ndelete table ip6 tcpfo_${k.tag}\n`).catch(() => undefined);
}

/**
 * Takes the kernel path out in one transaction: S's TCP talks to the
 * clients directly from here on. `part`: 'divert' only (the first step of
 * a takeover: the client's frames still addressed to the primary's MAC,
 * sent before our gratuitous ARP reached the client, keep coming into S's
 * TCP), 'ingress' only (the rest, once the ARP is out), or both. `ip6`:
 * whether the divert has an IPv6 table (its spec's `v6`: then in the same
 * transaction), none (IPv4 only: its install removed a predecessor's), or
 * 'unknown' (a best-effort transaction of its own; a kernel without IPv6
 * refuses it). A takeover names it: an nft run costs it 15-20 ms.
 */
export async function detachKernelPath(
  tag: string,
  part: 'divert' | 'ingress' | 'all' = 'all',
  ip6: boolean | 'unknown' = 'unknown',
): Promise<void> {
  const t = `tcpfo_${tag}`;
  const ingress = `table netdev ${t} {}\ndelete table netdev ${t}\n`;
  const divert4 = `table ip ${t} {}\ndelete table ip ${t}\n`;
  const divert6 = `table ip6 ${t} {}\ndelete table ip6 ${t}\n`;
  const divert = divert4 + (ip6 === true ? divert6 : '');
  await nftApply(part === 'divert' ? divert : part === 'ingress' ? ingress : ingress + divert);
  if (part !== 'ingress' && ip6 === 'unknown') await nftApply(divert6).catch(() => undefined);
}

/**
 * Whether this kernel can carry the path: a netdev ingress chain that sets
 * `meta pkttype` and an `ip ttl` in a route chain, checked by nft against
 * the kernel without committing anything (`nft --check`).
 */
export async function kernelPathSupported(k: KernelPathSpec): Promise<{ ok: boolean; why?: string }> {
  try {
    await run('nft', ['--check', '-f', '-'], {
      timeoutMs: 10_000,
      input: kernelPathRuleset({ ...k, tag: `${k.tag}probe`.slice(0, 12) }),
    });
    return { ok: true };
  } catch (e) {
    return { ok: false, why: ((e as { stderr?: string }).stderr ?? (e as Error).message).trim().split('\n')[0] };
  }
}
