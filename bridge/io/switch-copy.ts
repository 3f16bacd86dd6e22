/**
 * lan.mode: switch, where the primary translates in the queue (inbound:
 * queue) — with the kernel translation, its tc program makes the copies
 * (io/xlate.ts duplicateTo). On an ordinary learning switch the secondary
 * never sees the client's frames to the primary: the primary copies each
 * one to it. A netdev ingress chain duplicates the frame out of the same
 * interface; a netdev egress chain gives the copy the secondary's MAC as
 * destination (only copies leave the primary with its own MAC as
 * destination) and ours as source (the switch must not learn the client's
 * MAC on our port). One table, replaced and removed in one transaction.
 * Frames of either family: where the translation program copies IPv4's, the
 * table copies IPv6's alone.
 */
import { ipv4ToString } from '../../net/addr.js';
import type { PortSet } from '../../net/ports.js';
import { nftApply } from './rules.js';

export interface CopySpec {
  /** The bridge's rule tag: table `netdev tcpfo_<tag>`. */
  tag: string;
  lanInterface: string;
  /** The IPv4 service address whose frames the table copies (null: the translation program copies them). */
  vip: number | null;
  /** The IPv6 service address (text), if the service has one. */
  vip6: string | null;
  ports: PortSet;
  /** This node's (the primary's) MAC, and the secondary's. */
  selfMac: string;
  secondaryMac: string;
}

function portSet(ports: PortSet): string {
  return `{ ${ports.map((p) => (typeof p === 'number' ? String(p) : `${p[0]}-${p[1]}`)).join(', ')} }`;
}

/** Whether the table has frames to copy: an address of either family the program does not copy. */
export function copiesAny(k: CopySpec): boolean {
  return k.vip !== null || k.vip6 !== null;
}

/** The table, created anew (a predecessor's of the same tag replaced in the same transaction). */
export function copyRuleset(k: CopySpec): string {
  const t = `tcpfo_${k.tag}`;
  const dsts = [
    ...(k.vip === null ? [] : [`ip daddr ${ipv4ToString(k.vip)}`]),
    ...(k.vip6 === null ? [] : [`ip6 daddr ${k.vip6}`]),
  ];
  const matches = dsts.map((d) => `ether daddr ${k.selfMac.toLowerCase()} ${d} tcp dport ${portSet(k.ports)}`);
  return [
    `table netdev ${t} {}`,
    `delete table netdev ${t}`,
    `table netdev ${t} {`,
    '  chain copy {',
    `    type filter hook ingress device "${k.lanInterface}" priority -500; policy accept;`,
    ...matches.map(
      (m) => `    ${m} dup to "${k.lanInterface}" counter comment "tcpfo: the client's frame, copied to the secondary"`,
    ),
    '  }',
    '  chain readdress {',
    `    type filter hook egress device "${k.lanInterface}" priority -500; policy accept;`,
    ...matches.map(
      (m) =>
        `    ${m} ether daddr set ${k.secondaryMac.toLowerCase()} ether saddr set ${k.selfMac.toLowerCase()} counter comment "tcpfo: the copy, to the secondary's MAC, from ours"`,
    ),
    '  }',
    '}',
    '',
  ].join('\n');
}

export async function installCopy(k: CopySpec): Promise<void> {
  await nftApply(copyRuleset(k));
}

export async function removeCopy(tag: string): Promise<void> {
  const t = `tcpfo_${tag}`;
  await nftApply(`table netdev ${t} {}\ndelete table netdev ${t}\n`);
}
