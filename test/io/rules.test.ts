/** The rule text tcpfo hands to iptables-nft-restore (pure; the rig tests install it for real). */
import { describe, expect, it } from 'vitest';
import { iptRestoreScript, nftRuleset, RuleError, ruleFamily, type Rule } from '../../bridge/io/rules.js';
import { ipAddr, ipv4 } from '../../net/addr.js';

const RULES: Rule[] = [
  {
    hook: 'output',
    match: { src: ipv4('192.0.2.100'), sports: [21, [7000, 7010]] },
    action: { queue: 7, bypass: false },
    comment: 'tcpfo: P output (fail "closed")',
  },
  {
    hook: 'prerouting',
    match: { dst: ipv4('192.0.2.100'), dports: [21] },
    action: { queue: 8, bypass: true },
    comment: 'fail open',
  },
];

describe('iptRestoreScript', () => {
  it('declares (creates or flushes) each chain, fills it, and jumps to it first from its hook when no jump exists', () => {
    const s = iptRestoreScript('tp', RULES, 0x100, '');
    const lines = s.trim().split('\n');
    expect(lines[0]).toBe('*mangle');
    expect(lines.at(-1)).toBe('COMMIT');
    expect(lines).toContain(':TCPFO_tp_OUTPUT - [0:0]');
    expect(lines).toContain(':TCPFO_tp_PREROUTING - [0:0]');
    // Chain declarations come before any rule (restore needs the chains first).
    expect(lines.findIndex((l) => l.startsWith('-A'))).toBeGreaterThan(lines.indexOf(':TCPFO_tp_PREROUTING - [0:0]'));
    expect(lines).toContain('-A TCPFO_tp_OUTPUT -m mark --mark 0x100/0x100 -j RETURN');
    expect(lines).toContain(
      '-A TCPFO_tp_OUTPUT -s 192.0.2.100 -p tcp -m multiport --sports 21,7000:7010 -m comment --comment "tcpfo: P output (fail closed)" -j NFQUEUE --queue-num 7',
    );
    expect(lines).toContain(
      '-A TCPFO_tp_PREROUTING -d 192.0.2.100 -p tcp -m multiport --dports 21 -m comment --comment "fail open" -j NFQUEUE --queue-num 8 --queue-bypass',
    );
    expect(lines).toContain('-I OUTPUT 1 -j TCPFO_tp_OUTPUT');
    expect(lines).toContain('-I PREROUTING 1 -j TCPFO_tp_PREROUTING');
  });

  it('leaves an existing jump alone (the chain is refilled in place), adds only a missing one', () => {
    const current = [
      '*mangle',
      ':OUTPUT ACCEPT [0:0]',
      ':TCPFO_tp_OUTPUT - [0:0]',
      '-A OUTPUT -j TCPFO_tp_OUTPUT',
      '-A TCPFO_tp_OUTPUT -j NFQUEUE --queue-num 5',
      'COMMIT',
    ].join('\n');
    const lines = iptRestoreScript('tp', RULES, 0x100, current).trim().split('\n');
    expect(lines.filter((l) => l.startsWith('-I OUTPUT'))).toEqual([]);
    expect(lines).toContain('-I PREROUTING 1 -j TCPFO_tp_PREROUTING');
    // Another instance's jump does not count as ours.
    const other = current.replaceAll('TCPFO_tp_', 'TCPFO_tpx_');
    expect(iptRestoreScript('tp', RULES, 0x100, other)).toContain('-I OUTPUT 1 -j TCPFO_tp_OUTPUT');
  });
});

describe('the kernel release’s match (xt_bpf)', () => {
  const release: Rule = {
    hook: 'output',
    match: { src: ipv4('192.0.2.100'), sports: [7000], oifNot: 'lo', bpfPinned: '/sys/fs/bpf/tcpfo_x_primary_only' },
    action: 'accept',
    comment: 'primary-only',
  };
  it('comes before the queue rule in iptables form, its pinned program named, returning from the chain', () => {
    const lines = iptRestoreScript('tp', [release, ...RULES], 0x100, '')
      .trim()
      .split('\n');
    const at = lines.findIndex((l) => l.includes('-m bpf --object-pinned /sys/fs/bpf/tcpfo_x_primary_only'));
    expect(at).toBeGreaterThan(0);
    expect(lines[at]).toMatch(/-j RETURN$/);
    expect(at).toBeLessThan(lines.findIndex((l) => l.includes('--queue-num 7')));
  });
  it('the order’s match marks (or-mark, then on to the queue rule) what the first let through', () => {
    const waits: Rule = {
      ...release,
      match: { ...release.match, bpfPinned: '/sys/fs/bpf/tcpfo_x_primary_only_order' },
      action: { orMark: 0x800000 },
      comment: 'waits',
    };
    const lines = iptRestoreScript('tp', [release, waits, ...RULES], 0x100, '')
      .trim()
      .split('\n');
    const at = lines.findIndex((l) => l.includes('--object-pinned /sys/fs/bpf/tcpfo_x_primary_only_order'));
    expect(lines[at]).toMatch(/-j MARK --or-mark 0x800000$/);
    expect(at).toBeGreaterThan(lines.findIndex((l) => l.includes('--object-pinned /sys/fs/bpf/tcpfo_x_primary_only ')));
    expect(at).toBeLessThan(lines.findIndex((l) => l.includes('--queue-num 7')));
  });
  it('is refused by the nftables backend (it has no BPF match)', () => {
    expect(() => nftRuleset('tp', [release, ...RULES], 0x100)).toThrow(/no BPF match/);
  });
});

describe('nftRuleset', () => {
  it('one table per instance, a chain per hook at mangle priority, our injected packets returned first', () => {
    const s = nftRuleset('tp', RULES, 0x100);
    expect(s).toMatch(/^table ip tcpfo_tp \{/);
    expect(s).toContain('type filter hook output priority -150; policy accept;');
    expect(s).toContain('meta mark & 0x100 == 0x100 return');
    expect(s).toContain('queue num 7 comment');
    expect(s).toContain('queue num 8 bypass comment');
  });
});

describe('a client’s opening SYN (synOnly)', () => {
  const syn: Rule = {
    hook: 'prerouting',
    match: { dst: ipv4('192.0.2.100'), dports: [21], iifNot: 'lo', synOnly: true },
    action: 'accept',
    comment: 'syn',
  };
  it('iptables: --syn (SYN set; ACK, FIN and RST clear), before the queue rule, returning from the chain', () => {
    const lines = iptRestoreScript('tp', [syn, ...RULES], 0x100, '')
      .trim()
      .split('\n');
    const at = lines.findIndex((l) => l.includes('--comment "syn"'));
    expect(lines[at]).toBe(
      '-A TCPFO_tp_PREROUTING ! -i lo -d 192.0.2.100 -p tcp --syn -m multiport --dports 21 -m comment --comment "syn" -j RETURN',
    );
    expect(at).toBeLessThan(lines.findIndex((l) => l.includes('--queue-num 8')));
  });
  it('nftables: the four flags masked, equal to syn alone (ECN flags either way)', () => {
    expect(nftRuleset('tp', [syn], 0x100)).toContain(
      'iifname != "lo" ip daddr 192.0.2.100 meta l4proto tcp tcp dport { 21 } tcp flags & (fin | syn | rst | ack) == syn accept comment "syn"',
    );
  });
});

describe('the MSS clamp (clampMss) of a SYN or SYN-ACK (syn)', () => {
  const clamp = (dst: string, mss: number): Rule => ({
    hook: 'prerouting',
    match: { dst: ipAddr(dst), dports: [7000], iifNot: 'lo', syn: true },
    action: { clampMss: mss },
    comment: 'clamp',
  });
  it('iptables: SYN set and RST clear, TCPMSS only above the value (it goes on to the next rule)', () => {
    const line = iptRestoreScript('ts', [clamp('192.0.2.100', 1452)], 0x100, '')
      .split('\n')
      .find((l) => l.includes('"clamp"'));
    expect(line).toBe(
      '-A TCPFO_ts_PREROUTING ! -i lo -d 192.0.2.100 -p tcp --tcp-flags SYN,RST SYN -m multiport --dports 7000 -m comment --comment "clamp" -m tcpmss --mss 1453:65535 -j TCPMSS --set-mss 1452',
    );
  });
  it('nftables: the option set where it is larger, in the table of the address’s family', () => {
    const text = nftRuleset('ts', [clamp('192.0.2.100', 1452), clamp('2001:db8::100', 1420)], 0x100);
    const [four, six] = text.split('table ip6');
    expect(four).toContain(
      'ip daddr 192.0.2.100 meta l4proto tcp tcp dport { 7000 } tcp flags & (syn | rst) == syn tcp option maxseg size > 1452 tcp option maxseg size set 1452 comment "clamp"',
    );
    expect(six).toContain(
      'ip6 daddr 2001:db8::100 meta l4proto tcp tcp dport { 7000 } tcp flags & (syn | rst) == syn tcp option maxseg size > 1420 tcp option maxseg size set 1420 comment "clamp"',
    );
  });
});

describe('IPv6 rules', () => {
  const V6: Rule[] = [
    {
      hook: 'prerouting',
      match: { dst: ipAddr('2001:db8::100'), dports: [21], iifNot: 'lo' },
      action: { queue: 8, bypass: false },
      comment: 'client to service over IPv6',
    },
  ];

  it('go to a table ip6 beside the ip one (nft), their addresses as IPv6 text; IPv4 alone keeps one table', () => {
    const text = nftRuleset('tp', [...RULES, ...V6], 0x100);
    expect(text).toMatch(/^table ip tcpfo_tp \{/);
    expect(text).toMatch(/\ntable ip6 tcpfo_tp \{\n  chain prerouting \{/);
    expect(text).toContain(
      'iifname != "lo" ip6 daddr 2001:db8::100 meta l4proto tcp tcp dport { 21 } queue num 8 comment "client to service over IPv6"',
    );
    expect(text.split('table ip6')[0]).not.toContain('2001:db8');
    expect(nftRuleset('tp', RULES, 0x100)).not.toContain('table ip6');
  });

  it('print IPv6 addresses for ip6tables-nft-restore, and a rule with two families is refused', () => {
    const s = iptRestoreScript('tp', V6, 0x100, '');
    expect(s).toContain('-A TCPFO_tp_PREROUTING ! -i lo -d 2001:db8::100 -p tcp -m multiport --dports 21');
    expect(ruleFamily(V6[0]!)).toBe(6);
    expect(ruleFamily(RULES[0]!)).toBe(4);
    expect(ruleFamily({ ...V6[0]!, match: { dports: [21] } })).toBe(4);
    expect(() => ruleFamily({ ...V6[0]!, match: { src: ipv4('192.0.2.1'), dst: ipAddr('2001:db8::1') } })).toThrow(
      RuleError,
    );
  });
});
