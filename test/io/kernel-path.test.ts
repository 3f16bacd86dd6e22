/** The kernel data path's nft text and the blind prompts (pure; the rig runs them for real). */
import { describe, expect, it } from 'vitest';
import { ipAddr, ipv4 } from '../../net/addr.js';
import { WireError } from '../../bridge/wire/error.js';
import { ipVersion, parseIpTcp } from '../../bridge/wire/ip.js';
import { parseIpv4Tcp, TCP_ACK_FLAG } from '../../bridge/wire/tcp.js';
import { seqSub } from '../../bridge/wire/seq.js';
import { DIVERT_MARK, DIVERT_TABLE, divertRoute, kernelPathRuleset } from '../../bridge/io/kernel-path.js';
import { BLIND_SEQS, blindProds, blindPrompts, owes } from '../../bridge/secondary/blind.js';

const SPEC = {
  tag: 'ts',
  lanInterface: 'eth0',
  vip: ipv4('192.0.2.100'),
  ports: [21, [7000, 7010] as const, 20] as Array<number | readonly [number, number]>,
  primaryMac: '02:00:00:00:00:0A',
  selfMac: '02:00:00:00:00:0B',
  primaryAddress: ipv4('192.0.2.1'),
};

describe('kernel path ruleset', () => {
  it('replaces both tables in one transaction: ingress rewrite to S, divert mark with TTL 1', () => {
    const text = kernelPathRuleset(SPEC);
    const lines = text
      .trim()
      .split('\n')
      .map((l) => l.trim());
    // A predecessor's tables of the same tag go in the same transaction.
    expect(lines.slice(0, 4)).toEqual([
      'table netdev tcpfo_ts {}',
      'delete table netdev tcpfo_ts',
      'table ip tcpfo_ts {}',
      'delete table ip tcpfo_ts',
    ]);
    expect(text).toContain('type filter hook ingress device "eth0" priority -500;');
    expect(text).toMatch(
      /ether daddr 02:00:00:00:00:0a ip daddr 192\.0\.2\.100 tcp dport \{ 21, 7000-7010, 20 \} meta pkttype set host ether daddr set 02:00:00:00:00:0b/,
    );
    expect(text).toContain('type route hook output priority -150;');
    expect(text).toMatch(
      new RegExp(
        `ip saddr 192\\.0\\.2\\.100 tcp sport \\{ 21, 7000-7010, 20 \\} meta mark set meta mark \\| 0x${DIVERT_MARK.toString(16)} ip ttl set 1`,
      ),
    );
  });

  it('with an IPv6 service address: the same two rules for it, the divert in a table ip6 of its own, hop limit 1', () => {
    const text = kernelPathRuleset({
      ...SPEC,
      v6: { vip: ipAddr('2001:db8::100') as string, primaryAddress: ipAddr('2001:db8::1') as string },
    });
    expect(text).toMatch(
      /ether daddr 02:00:00:00:00:0a ip6 daddr 2001:db8::100 tcp dport \{ 21, 7000-7010, 20 \} meta pkttype set host ether daddr set 02:00:00:00:00:0b/,
    );
    expect(text).toMatch(
      new RegExp(
        `table ip6 tcpfo_ts \\{\\n  chain divert \\{\\n    type route hook output priority -150; policy accept;\\n    oifname != "lo" ip6 saddr 2001:db8::100 tcp sport \\{ 21, 7000-7010, 20 \\} meta mark set meta mark \\| 0x${DIVERT_MARK.toString(16)} ip6 hoplimit set 1`,
      ),
    );
    // Without one, the transaction names no ip6 table (a kernel without IPv6 takes it as ever).
    expect(kernelPathRuleset(SPEC)).not.toContain('ip6');
    expect(divertRoute({ ...SPEC, primary6: ipAddr('2001:db8::1') as string }).slice(0, 3)).toEqual([
      'default',
      'via',
      '2001:db8::1',
    ]);
  });

  it('routes marked packets via the primary’s address, on-link, in a table of their own', () => {
    expect(divertRoute(SPEC)).toEqual([
      'default',
      'via',
      '192.0.2.1',
      'dev',
      'eth0',
      'onlink',
      'table',
      String(DIVERT_TABLE),
    ]);
  });
});

describe('blind prompts after a takeover on the kernel path', () => {
  const keys = [
    { client: ipv4('192.0.2.10'), clientPort: 40001, servicePort: 7000 },
    { client: ipv4('192.0.2.11'), clientPort: 40002, servicePort: 21 },
  ];
  it('two bare ACKs per connection, half the sequence space apart: one is outside any window', () => {
    const p = blindPrompts(keys, { v4: SPEC.vip, v6: null }).map(
      (b) => parseIpv4Tcp(b) as Exclude<ReturnType<typeof parseIpv4Tcp>, WireError>,
    );
    expect(p).toHaveLength(4);
    for (const x of p) {
      expect(x.tcp.checksumValid()).toBe(true);
      expect(x.ip.checksumValid()).toBe(true);
      expect(x.tcp.flags).toBe(TCP_ACK_FLAG);
      expect(x.tcp.payloadLength).toBe(0);
      expect(x.ip.dst).toBe(SPEC.vip);
    }
    expect(seqSub(p[1]!.tcp.seq, p[0]!.tcp.seq)).toBe(2 ** 31);
    expect([p[0]!.ip.src, p[0]!.tcp.srcPort, p[0]!.tcp.dstPort]).toEqual([keys[0]!.client, 40001, 7000]);
    expect(BLIND_SEQS).toHaveLength(2);
  });

  it('prods go the other way, from the service address to each client', () => {
    const p = blindProds(keys, { v4: SPEC.vip, v6: null }).map(
      (b) => parseIpv4Tcp(b) as Exclude<ReturnType<typeof parseIpv4Tcp>, WireError>,
    );
    expect(p.map((x) => [x.ip.src, x.ip.dst, x.tcp.srcPort, x.tcp.dstPort])).toEqual([
      [SPEC.vip, keys[0]!.client, 7000, 40001],
      [SPEC.vip, keys[0]!.client, 7000, 40001],
      [SPEC.vip, keys[1]!.client, 21, 40002],
      [SPEC.vip, keys[1]!.client, 21, 40002],
    ]);
  });

  it('an IPv6 client is prompted from the IPv6 service address, in IPv6; with no IPv6 service address, not at all', () => {
    const VIP6 = ipAddr('2001:db8::100');
    const six = [{ client: ipAddr('2001:db8::10'), clientPort: 40003, servicePort: 7000 }, ...keys];
    const p = blindPrompts(six, { v4: SPEC.vip, v6: VIP6 as string }).map((b) => {
      const x = parseIpTcp(b);
      if (x instanceof WireError) throw x;
      expect(x.tcp.checksumValid()).toBe(true);
      return [x.tcp.src, x.tcp.dst, x.tcp.srcPort, x.tcp.dstPort];
    });
    expect(p).toEqual([
      [six[0]!.client, VIP6, 40003, 7000],
      [six[0]!.client, VIP6, 40003, 7000],
      [keys[0]!.client, SPEC.vip, 40001, 7000],
      [keys[0]!.client, SPEC.vip, 40001, 7000],
      [keys[1]!.client, SPEC.vip, 40002, 21],
      [keys[1]!.client, SPEC.vip, 40002, 21],
    ]);
    const prods = blindProds(six, { v4: SPEC.vip, v6: VIP6 as string }).map((b) => ipVersion(b));
    expect(prods).toEqual([6, 6, 4, 4, 4, 4]);
    expect(blindPrompts(six, { v4: SPEC.vip, v6: null })).toHaveLength(4);
  });

  it('prompts the sockets that owe their client something: unacknowledged bytes, or a close under way; not the idle ones', () => {
    const sock = (clientPort: number, state: string, sendQueue: number) => ({
      client: ipv4('192.0.2.10'),
      clientPort,
      servicePort: 7000,
      state,
      sendQueue,
    });
    const all = [
      sock(40000, 'ESTAB', 0),
      sock(40001, 'ESTAB', 7),
      sock(40002, 'FIN-WAIT-1', 0),
      sock(40003, 'CLOSE-WAIT', 0),
      sock(40004, 'LAST-ACK', 0),
      sock(40005, 'FIN-WAIT-2', 0),
    ];
    expect(all.filter(owes).map((s) => s.clientPort)).toEqual([40001, 40002, 40003, 40004, 40005]);
  });
});

describe('the primary’s copies on a learning switch (nft form, inbound: queue)', () => {
  it('duplicates the client’s frames for the service out of the same interface, to the secondary’s MAC and from ours, in one replacing transaction', async () => {
    const { copyRuleset } = await import('../../bridge/io/switch-copy.js');
    const text = copyRuleset({
      tag: 'tp',
      lanInterface: 'eth0',
      vip: ipv4('192.0.2.100'),
      vip6: null,
      ports: [7000],
      selfMac: '02:00:00:00:00:0A',
      secondaryMac: '02:00:00:00:00:0B',
    });
    expect(text.split('\n').slice(0, 2)).toEqual(['table netdev tcpfo_tp {}', 'delete table netdev tcpfo_tp']);
    expect(text).toMatch(
      /hook ingress device "eth0".*\n.*ether daddr 02:00:00:00:00:0a ip daddr 192\.0\.2\.100 tcp dport \{ 7000 \} dup to "eth0"/,
    );
    expect(text).toMatch(
      /hook egress device "eth0".*\n.*ether daddr 02:00:00:00:00:0a ip daddr 192\.0\.2\.100 tcp dport \{ 7000 \} ether daddr set 02:00:00:00:00:0b ether saddr set 02:00:00:00:00:0a/,
    );
  });

  it('copies the IPv6 service address’s frames too, or those alone where the translation program copies IPv4’s', async () => {
    const { copiesAny, copyRuleset } = await import('../../bridge/io/switch-copy.js');
    const spec = {
      tag: 'tp',
      lanInterface: 'eth0',
      vip: ipv4('192.0.2.100'),
      vip6: '2001:db8::100',
      ports: [7000, [8000, 8010] as [number, number]],
      selfMac: '02:00:00:00:00:0a',
      secondaryMac: '02:00:00:00:00:0b',
    };
    const both = copyRuleset(spec);
    for (const d of ['ip daddr 192\\.0\\.2\\.100', 'ip6 daddr 2001:db8::100']) {
      expect(both).toMatch(
        new RegExp(`ether daddr 02:00:00:00:00:0a ${d} tcp dport \\{ 7000, 8000-8010 \\} dup to "eth0"`),
      );
      expect(both).toMatch(
        new RegExp(
          `ether daddr 02:00:00:00:00:0a ${d} tcp dport \\{ 7000, 8000-8010 \\} ether daddr set 02:00:00:00:00:0b`,
        ),
      );
    }
    const six = copyRuleset({ ...spec, vip: null });
    expect(six).not.toMatch(/ip daddr/);
    expect(six.match(/ip6 daddr 2001:db8::100/g)).toHaveLength(2);
    expect(copiesAny({ ...spec, vip: null })).toBe(true);
    expect(copiesAny({ ...spec, vip: null, vip6: null })).toBe(false);
  });
});
