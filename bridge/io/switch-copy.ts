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
 */
import { ipv4ToString } from '../../net/addr.js';
import type { PortSet } from '../../net/ports.js';
import { nftApply } from './rules.js';

export interface CopySpec {
  /** The bridge's rule tag: table `netdev tcpfo_<tag>`. */
  tag: string;
  lanInterface: string;
  vip: number;
  ports: PortSet;
  /** This node's (the primary's) MAC, and the secondary's. */
  selfMac: string;
  secondaryMac: string;
}

function portSet(ports: PortSet): string {
  return `{ ${ports.map((p) => (typeof p === 'number' ? String(p) : `${p[0]}-${p[1]}`)).join(', ')} }`;
}

/** The table, created anew (a predecessor's of the same tag replaced in the same transaction). */
export function copyRuleset(k: CopySpec): string {
  const t = `tcpfo_${k.tag}`;
  const match = `ether daddr ${k.selfMac.toLowerCase()} ip daddr ${ipv4ToString(k.vip)} tcp dport ${portSet(k.ports)}`;
  return [
    `table netdev ${t} {}`,
    `delete table netdev ${t}`,
    `table netdev ${t} {`,
    '  chain copy {',
    `    type filter hook ingress device "${k.lanInterface}" priority -500; policy accept;`,
    `    ${match} dup to "${k.lanInterface}" counter comment "tcpfo: the client's frame, copied to the secondary"`,
    '  }',
    '  chain readdress {',
    `    type filter hook egress device "${k.lanInterface}" priority -500; policy accept;`,
    `    ${match} ether daddr set ${k.secondaryMac.toLowerCase()} ether saddr set ${k.selfMac.toLowerCase()} counter comment "tcpfo: the copy, to the secondary's MAC, from ours"`,
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
