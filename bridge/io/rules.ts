/**
 * Netfilter rules of one bridge instance, in chains of its own.
 *
 * Backends: native nftables (`queue` statement) where the kernel has
 * CONFIG_NFT_QUEUE, iptables-nft (`-j NFQUEUE` through nft_compat) otherwise;
 * detected once at start. Every chain or table carries the instance tag, so
 * stale rules of a killed bridge are found and removed on the next start and
 * by `tcpfo cleanup`.
 *
 * Fail-open vs fail-closed is a per-rule decision (`bypass`): with bypass the
 * kernel accepts packets while no program listens on the queue; without it
 * they are dropped. The bridge's own rules say which they use and why.
 *
 * A rule's family is its addresses': IPv6 ones go to `table ip6` (nft) or
 * ip6tables-nft beside the IPv4 ones; a rule without addresses is IPv4's.
 */
import { ipAddrToString, isIp6, type IpAddr } from '../../net/addr.js';
import { failureOf, run } from './run.js';
export type { PortSet } from '../../net/ports.js';

export type Hook = 'prerouting' | 'input' | 'output' | 'postrouting';

import type { PortSet } from '../../net/ports.js';

export interface Match {
  /** Only TCP is ever matched by the bridge. Both addresses of one family (IpAddr). */
  src?: IpAddr;
  dst?: IpAddr;
  sports?: PortSet;
  dports?: PortSet;
  /** Ethernet source (inbound hooks only), aa:bb:cc:dd:ee:ff. */
  srcMac?: string;
  iif?: string;
  oif?: string;
  /** Any interface but this one (the node's own traffic to the service address runs over `lo`). */
  iifNot?: string;
  oifNot?: string;
  /** A BPF socket filter pinned at this path returns non-zero (xt_bpf; the iptables-nft backend only). */
  bpfPinned?: string;
  /** A connection's opening segment: SYN set, ACK, FIN and RST clear (ECN flags either way). */
  synOnly?: boolean;
  /** A SYN or a SYN-ACK: SYN set, RST clear (the segments that carry an MSS option). */
  syn?: boolean;
}

/**
 * `orMark`: sets these mark bits and goes on to the next rule (iptables MARK
 * --or-mark). `clampMss`: an MSS option above this value is set to it, and
 * the packet goes on (iptables TCPMSS; its rule must match `syn`).
 */
export type Action = { queue: number; bypass: boolean } | { orMark: number } | { clampMss: number } | 'drop' | 'accept';

export interface Rule {
  hook: Hook;
  match: Match;
  action: Action;
  /** Why the rule exists (kept as a comment in the ruleset). */
  comment: string;
}

export type Backend = 'nft' | 'iptables-nft';

export class RuleError extends Error {
  override readonly name = 'RuleError';
}

type Family = 4 | 6;
const FAMILIES: readonly Family[] = [4, 6];
/** The nft table family of each. */
const NFT_FAMILY: Record<Family, string> = { 4: 'ip', 6: 'ip6' };

/** A rule's family: its addresses' (IPv4 without any). */
export function ruleFamily(r: Rule): Family {
  const fams = [r.match.src, r.match.dst].filter((a) => a !== undefined).map((a) => (isIp6(a) ? 6 : 4));
  if (fams.length === 2 && fams[0] !== fams[1])
    throw new RuleError(`a rule with addresses of two families: ${r.comment}`);
  return fams[0] ?? 4;
}

function ofFamily(rules: readonly Rule[], fam: Family): Rule[] {
  return rules.filter((r) => ruleFamily(r) === fam);
}

async function sh(argv: string[], input?: string): Promise<string> {
  const [cmd, ...args] = argv;
  try {
    return await run(cmd!, args, { timeoutMs: 15_000, input });
  } catch (e) {
    throw new RuleError(failureOf(cmd!, args, e));
  }
}

async function shOk(argv: string[], input?: string): Promise<boolean> {
  try {
    await sh(argv, input);
    return true;
  } catch {
    return false;
  }
}

const TAG_RE = /^[a-z0-9]{1,12}$/;

function checkTag(tag: string): void {
  if (!TAG_RE.test(tag)) throw new RuleError(`bad rule tag ${JSON.stringify(tag)}: 1-12 of [a-z0-9]`);
}

let detected: Backend | undefined;

/** Whether the kernel has native nft `queue` (CONFIG_NFT_QUEUE): a probe table that is removed at once. */
export async function detectBackend(): Promise<Backend> {
  if (detected) return detected;
  const table = `tcpfo_probe${process.pid}`;
  const probe = `table ip ${table} {\n chain c {\n  type filter hook output priority 0; policy accept;\n  meta mark 0x7fffffff queue num 65000 bypass\n }\n}\n`;
  const ok = await shOk(['nft', '-f', '-'], probe);
  await shOk(['nft', 'delete', 'table', 'ip', table]);
  detected = ok ? 'nft' : 'iptables-nft';
  return detected;
}

function portList(ports: PortSet): string[] {
  return ports.map((p) => (typeof p === 'number' ? String(p) : `${p[0]}-${p[1]}`));
}

// --- native nftables ---------------------------------------------------------

function nftMatch(m: Match): string {
  if (m.bpfPinned) throw new RuleError('the nftables backend has no BPF match: use iptables-nft');
  const parts: string[] = [];
  if (m.iif) parts.push(`iifname "${m.iif}"`);
  if (m.oif) parts.push(`oifname "${m.oif}"`);
  if (m.iifNot) parts.push(`iifname != "${m.iifNot}"`);
  if (m.oifNot) parts.push(`oifname != "${m.oifNot}"`);
  if (m.srcMac) parts.push(`ether saddr ${m.srcMac}`);
  if (m.src !== undefined) parts.push(`${isIp6(m.src) ? 'ip6' : 'ip'} saddr ${ipAddrToString(m.src)}`);
  if (m.dst !== undefined) parts.push(`${isIp6(m.dst) ? 'ip6' : 'ip'} daddr ${ipAddrToString(m.dst)}`);
  parts.push('meta l4proto tcp');
  if (m.sports) parts.push(`tcp sport { ${portList(m.sports).join(', ')} }`);
  if (m.dports) parts.push(`tcp dport { ${portList(m.dports).join(', ')} }`);
  if (m.synOnly) parts.push('tcp flags & (fin | syn | rst | ack) == syn');
  if (m.syn) parts.push('tcp flags & (syn | rst) == syn');
  return parts.join(' ');
}

function nftAction(a: Action): string {
  if (a === 'drop') return 'drop';
  if (a === 'accept') return 'accept';
  if ('orMark' in a) return `meta mark set meta mark or 0x${a.orMark.toString(16)}`;
  if ('clampMss' in a) return `tcp option maxseg size > ${a.clampMss} tcp option maxseg size set ${a.clampMss}`;
  return `queue num ${a.queue}${a.bypass ? ' bypass' : ''}`;
}

/** The nftables ruleset of one instance: a table of its own, and one `ip6` beside it for IPv6 rules. */
export function nftRuleset(tag: string, rules: readonly Rule[], skipMark: number): string {
  const v6 = ofFamily(rules, 6);
  return nftTable('ip', tag, ofFamily(rules, 4), skipMark) + (v6.length ? nftTable('ip6', tag, v6, skipMark) : '');
}

function nftTable(family: string, tag: string, rules: readonly Rule[], skipMark: number): string {
  const hooks = [...new Set(rules.map((r) => r.hook))];
  const lines = [`table ${family} tcpfo_${tag} {`];
  for (const h of hooks) {
    // mangle priority (-150): before filter, after conntrack.
    lines.push(`  chain ${h} {`, `    type filter hook ${h} priority -150; policy accept;`);
    lines.push(
      `    meta mark & 0x${skipMark.toString(16)} == 0x${skipMark.toString(16)} return comment "our own injected packets"`,
    );
    for (const r of rules.filter((x) => x.hook === h)) {
      lines.push(`    ${nftMatch(r.match)} ${nftAction(r.action)} comment ${JSON.stringify(r.comment.slice(0, 120))}`);
    }
    lines.push('  }');
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

// --- iptables-nft ------------------------------------------------------------

/** iptables-nft of each family. */
const IPT: Record<Family, string> = { 4: 'iptables-nft', 6: 'ip6tables-nft' };
const IPT_HOOK: Record<Hook, string> = {
  prerouting: 'PREROUTING',
  input: 'INPUT',
  output: 'OUTPUT',
  postrouting: 'POSTROUTING',
};
const IPT_TABLE = 'mangle';

function iptChain(tag: string, hook: Hook): string {
  return `TCPFO_${tag}_${IPT_HOOK[hook]}`;
}

function iptMatch(m: Match): string[] {
  const a: string[] = [];
  if (m.iif) a.push('-i', m.iif);
  if (m.oif) a.push('-o', m.oif);
  if (m.iifNot) a.push('!', '-i', m.iifNot);
  if (m.oifNot) a.push('!', '-o', m.oifNot);
  if (m.src !== undefined) a.push('-s', ipAddrToString(m.src));
  if (m.dst !== undefined) a.push('-d', ipAddrToString(m.dst));
  a.push('-p', 'tcp');
  if (m.synOnly) a.push('--syn');
  if (m.syn) a.push('--tcp-flags', 'SYN,RST', 'SYN');
  if (m.srcMac) a.push('-m', 'mac', '--mac-source', m.srcMac);
  const multiport = (flag: string, ports: PortSet) => {
    a.push(
      '-m',
      'multiport',
      flag,
      portList(ports)
        .map((p) => p.replace('-', ':'))
        .join(','),
    );
  };
  if (m.sports) multiport('--sports', m.sports);
  if (m.dports) multiport('--dports', m.dports);
  if (m.bpfPinned) a.push('-m', 'bpf', '--object-pinned', m.bpfPinned);
  return a;
}

function iptAction(a: Action): string[] {
  if (a === 'drop') return ['-j', 'DROP'];
  if (a === 'accept') return ['-j', 'RETURN'];
  if ('orMark' in a) return ['-j', 'MARK', '--or-mark', `0x${a.orMark.toString(16)}`];
  if ('clampMss' in a)
    return ['-m', 'tcpmss', '--mss', `${a.clampMss + 1}:65535`, '-j', 'TCPMSS', '--set-mss', String(a.clampMss)];
  return ['-j', 'NFQUEUE', '--queue-num', String(a.queue), ...(a.bypass ? ['--queue-bypass'] : [])];
}

/**
 * The iptables-restore input (table mangle, --noflush) that makes the chains
 * of `tag` hold exactly `rules`, jumped to first from each hook; `current`
 * (iptables-save of the table) says which jumps exist already.
 */
export function iptRestoreScript(tag: string, rules: readonly Rule[], skipMark: number, current: string): string {
  const hooks = [...new Set(rules.map((r) => r.hook))];
  const mark = `0x${skipMark.toString(16)}`;
  const lines = [`*${IPT_TABLE}`, ...hooks.map((h) => `:${iptChain(tag, h)} - [0:0]`)];
  for (const h of hooks) {
    const chain = iptChain(tag, h);
    lines.push(`-A ${chain} -m mark --mark ${mark}/${mark} -j RETURN`);
    for (const r of rules.filter((x) => x.hook === h)) {
      const comment = `"${r.comment.slice(0, 120).replace(/["\\]/g, '')}"`;
      lines.push(
        ['-A', chain, ...iptMatch(r.match), '-m', 'comment', '--comment', comment, ...iptAction(r.action)].join(' '),
      );
    }
    if (!current.split('\n').includes(`-A ${IPT_HOOK[h]} -j ${chain}`)) lines.push(`-I ${IPT_HOOK[h]} 1 -j ${chain}`);
  }
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

/** Chains of tcpfo instances present in the mangle table of `fam` (both without), by tag. */
async function iptTags(fam?: Family): Promise<Set<string>> {
  const tags = new Set<string>();
  for (const f of fam ? [fam] : FAMILIES) {
    const out = await sh([`${IPT[f]}-save`, '-t', IPT_TABLE]).catch(() => '');
    for (const m of out.matchAll(/^:TCPFO_([a-z0-9]+)_[A-Z]+ /gm)) tags.add(m[1]!);
  }
  return tags;
}

async function iptRemove(tag: string): Promise<void> {
  // IPv4's always (it also drops a mangle table left empty); IPv6's where the tag has chains.
  for (const fam of FAMILIES) if (fam === 4 || (await iptTags(fam)).has(tag)) await iptRemoveFamily(tag, fam);
}

async function iptRemoveFamily(tag: string, fam: Family): Promise<void> {
  const ipt = IPT[fam];
  // iptables-nft commits whole-table transactions; under concurrent rule
  // changes (other instances, other namespaces sharing the xtables lock) a
  // step can fail transiently. Verify, retry, and fail loudly if it sticks.
  let lastError = '';
  for (let attempt = 0; attempt < 6; attempt++) {
    for (const hook of Object.keys(IPT_HOOK) as Hook[]) {
      const chain = iptChain(tag, hook);
      // Delete every jump into our chain (a crash may have left more than one).
      for (let i = 0; i < 16; i++) {
        if (!(await shOk([ipt, '-w', '-t', IPT_TABLE, '-D', IPT_HOOK[hook], '-j', chain]))) break;
      }
      await sh([ipt, '-w', '-t', IPT_TABLE, '-F', chain]).catch((e: Error) => (lastError = e.message));
      await sh([ipt, '-w', '-t', IPT_TABLE, '-X', chain]).catch((e: Error) => (lastError = e.message));
    }
    if (!(await iptTags(fam)).has(tag)) {
      await dropEmptyIptTable(fam);
      return;
    }
    await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
  }
  throw new RuleError(`could not remove the iptables rules of instance ${tag}: ${lastError}`);
}

/**
 * iptables-nft creates the whole `mangle` table (an nftables table with five
 * base chains) on first use and leaves it behind. When nothing but empty
 * ACCEPT base chains is left in it, remove it, so the node is as it was.
 */
async function dropEmptyIptTable(fam: Family): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const out = await sh([`${IPT[fam]}-save`, '-t', IPT_TABLE]).catch(() => '');
    if (!out.includes(`*${IPT_TABLE}`)) return;
    const lines = out.split('\n').filter((l) => l && !l.startsWith('#') && l !== `*${IPT_TABLE}` && l !== 'COMMIT');
    const onlyEmptyBaseChains = lines.every((l) => /^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT /.test(l));
    if (!onlyEmptyBaseChains) return; // someone else's rules live there
    await shOk(['nft', 'delete', 'table', NFT_FAMILY[fam], IPT_TABLE]);
    // Verify: a concurrent iptables-nft call can recreate the builtin chains.
    if (!(await shOk(['nft', 'list', 'table', NFT_FAMILY[fam], IPT_TABLE]))) return;
    await new Promise((r) => setTimeout(r, 20 * (attempt + 1)));
  }
}

async function nftTags(): Promise<Set<string>> {
  const out = await sh(['nft', 'list', 'tables']).catch(() => '');
  const tags = new Set<string>();
  for (const m of out.matchAll(/^table (?:ip|ip6|netdev) tcpfo_([a-z0-9]+)$/gm)) tags.add(m[1]!);
  return tags;
}

/** The rules of one bridge instance, installed together and removed together. */
export class RuleSet {
  private installed = false;

  private constructor(
    readonly tag: string,
    readonly backend: Backend,
    private rules: readonly Rule[],
    readonly skipMark: number,
  ) {}

  /**
   * Installs `rules` under `tag`, replacing whatever a previous instance with
   * the same tag left (see apply). `skipMark`: packets carrying these mark bits (our
   * own raw-socket injections) pass every chain untouched.
   */
  static async install(tag: string, rules: readonly Rule[], skipMark: number, backend?: Backend): Promise<RuleSet> {
    checkTag(tag);
    if (!(skipMark > 0 && skipMark <= 0xffffffff)) throw new RuleError(`bad skip mark ${skipMark}`);
    const b = backend ?? (await detectBackend());
    const rs = new RuleSet(tag, b, rules, skipMark);
    try {
      await rs.apply();
    } catch (e) {
      await removeRules(tag);
      throw e;
    }
    rs.installed = true;
    // A set the other backend holds under this tag (the kernel changed, or
    // the secondary's kernel path) goes once ours is in: no packet meets neither.
    if (b === 'nft') {
      if ((await iptTags()).has(tag)) await iptRemove(tag);
    } else for (const fam of FAMILIES) await shOk(['nft', 'delete', 'table', NFT_FAMILY[fam], `tcpfo_${tag}`]);
    return rs;
  }

  /**
   * Puts the rules in, replacing what a previous instance left under the same
   * tag in one transaction: its rules (queues nobody reads: fail closed) hold
   * until ours take over, so no packet meets neither — a stale socket's
   * segment would reach a client raw, or a merged connection's untranslated.
   */
  private async apply(): Promise<void> {
    if (this.backend === 'nft') {
      // Create-if-missing, delete, create: one `nft -f` transaction.
      const table = `tcpfo_${this.tag}`;
      // The ip6 table only with IPv6 rules: a kernel without IPv6 takes the IPv4 rules as ever.
      const v6 = ofFamily(this.rules, 6).length > 0;
      const fresh = FAMILIES.filter((f) => f === 4 || v6).map(
        (f) => `table ${NFT_FAMILY[f]} ${table} {}\ndelete table ${NFT_FAMILY[f]} ${table}\n`,
      );
      await sh(['nft', '-f', '-'], `${fresh.join('')}${nftRuleset(this.tag, this.rules, this.skipMark)}`);
      if (!v6) await shOk(['nft', 'delete', 'table', 'ip6', table]); // a predecessor's, if any
      return;
    }
    for (const fam of FAMILIES) {
      const rules = ofFamily(this.rules, fam);
      // IPv4's set always (what the bridge has always installed); IPv6's where it has rules.
      if (fam === 4 || rules.length) await this.applyIpt(fam, rules);
    }
  }

  /**
   * iptables-nft-restore --noflush commits the table in one transaction: a
   * chain it declares is created, or flushed and refilled if it exists.
   */
  private async applyIpt(fam: Family, rules: readonly Rule[]): Promise<void> {
    let lastError = '';
    for (let attempt = 0; attempt < 4; attempt++) {
      const current = await sh([`${IPT[fam]}-save`, '-t', IPT_TABLE]).catch(() => '');
      try {
        await sh([`${IPT[fam]}-restore`, '-w', '--noflush'], iptRestoreScript(this.tag, rules, this.skipMark, current));
        return;
      } catch (e) {
        lastError = (e as Error).message; // a concurrent change of the table: read it again
        await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
      }
    }
    throw new RuleError(`could not install the ${IPT[fam]} rules of instance ${this.tag}: ${lastError}`);
  }

  /** Takes the rules `which` selects out, in one transaction; the others stay. */
  async drop(which: (r: Rule) => boolean): Promise<void> {
    if (!this.installed) return;
    this.rules = this.rules.filter((r) => !which(r));
    await this.apply();
  }

  /** The rules as installed, in the backend's own syntax (for logs and `status`). */
  async describe(): Promise<string> {
    const fams = FAMILIES.filter((f) => f === 4 || ofFamily(this.rules, f).length);
    const out: string[] = [];
    for (const f of fams) {
      if (this.backend === 'nft') out.push(await sh(['nft', 'list', 'table', NFT_FAMILY[f], `tcpfo_${this.tag}`]));
      else
        out.push(
          (await sh([`${IPT[f]}-save`, '-t', IPT_TABLE]))
            .split('\n')
            .filter((l) => l.includes(`TCPFO_${this.tag}_`))
            .join('\n'),
        );
    }
    return out.join('\n');
  }

  /**
   * Takes the chains out of the packet path at once (one command per hook),
   * leaving their removal to remove(): the fast path of a takeover.
   */
  async detach(): Promise<void> {
    if (!this.installed) return;
    if (this.backend === 'nft') {
      await sh(['nft', 'delete', 'table', 'ip', `tcpfo_${this.tag}`]);
      await shOk(['nft', 'delete', 'table', 'ip6', `tcpfo_${this.tag}`]);
      return;
    }
    await Promise.all(
      FAMILIES.flatMap((f) =>
        [...new Set(ofFamily(this.rules, f).map((r) => r.hook))].map((h) =>
          sh([IPT[f], '-w', '-t', IPT_TABLE, '-D', IPT_HOOK[h], '-j', iptChain(this.tag, h)]),
        ),
      ),
    );
  }

  async remove(): Promise<void> {
    if (!this.installed) return;
    this.installed = false;
    await removeRules(this.tag);
  }
}

/** Removes only the iptables-nft chains of instance `tag` (the queue rules a pcap-mode predecessor left). */
export async function removeIptablesRules(tag: string): Promise<void> {
  checkTag(tag);
  if ((await iptTags()).has(tag)) await iptRemove(tag);
}

/**
 * Removes the rules of instance `tag` from both backends, and the kernel
 * data path's tables (io/kernel-path.ts) of the same tag. Idempotent.
 */
export async function removeRules(tag: string): Promise<void> {
  checkTag(tag);
  await shOk(['nft', 'delete', 'table', 'ip', `tcpfo_${tag}`]);
  await shOk(['nft', 'delete', 'table', 'ip6', `tcpfo_${tag}`]);
  await shOk(['nft', 'delete', 'table', 'netdev', `tcpfo_${tag}`]);
  await iptRemove(tag);
}

/** Runs one `nft -f` transaction (the kernel data path's tables). */
export async function nftApply(script: string): Promise<void> {
  await sh(['nft', '-f', '-'], script);
}

/** Tags of every tcpfo instance with rules in this network namespace. */
export async function installedTags(): Promise<string[]> {
  const tags = new Set([...(await nftTags()), ...(await iptTags())]);
  return [...tags].sort();
}

/** Removes the rules of every tcpfo instance in this network namespace. */
export async function removeAllRules(): Promise<string[]> {
  const tags = await installedTags();
  for (const t of tags) await removeRules(t);
  return tags;
}
