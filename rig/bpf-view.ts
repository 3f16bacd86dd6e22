/**
 * What the kernel holds for a node's tcpfo programs, for a failure's report:
 * the tc programs on its LAN interface and the maps they use, every
 * netfilter match program loaded (the iptables rule keeps the one it was
 * given alive, pinned or not) with its maps, and the `handshakes` entries of
 * given client ports. A match that reads other maps than the tc programs
 * judges by another bridge's state.
 */
import type { Rig } from './rig.js';

interface ProgInfo {
  id: number;
  name?: string;
  map_ids?: number[];
  pids?: { pid: number; comm: string }[];
}

interface TcAttach {
  devname?: string;
  kind?: string;
  name?: string;
  prog_id?: number;
  id?: number;
}

/** The report for `node` (its LAN interface `dev`), with the handshake entries of client ports `ports`. */
export async function bpfView(rig: Rig, node: string, ports: readonly number[], dev = 'eth0'): Promise<string> {
  const h = rig.host(node);
  const json = async <T>(argv: string[]): Promise<T | null> => {
    const r = await h.exec(['bpftool', '-j', ...argv], { allowFail: true, timeoutMs: 5000 });
    try {
      return JSON.parse(r.stdout) as T;
    } catch {
      return null;
    }
  };
  const net = await json<{ tc?: TcAttach[] }[]>(['net', 'show', 'dev', dev]);
  const tc = (net?.[0]?.tc ?? []).map((t) => ({ kind: t.kind ?? '?', id: t.prog_id ?? t.id ?? 0 }));
  const progs = (await json<ProgInfo[]>(['prog', 'show'])) ?? [];
  const byId = new Map(progs.map((p) => [p.id, p]));
  const owners = (p: ProgInfo | undefined) => (p?.pids ?? []).map((o) => o.pid).join(',') || 'none';
  const parts: string[] = [];
  for (const t of tc) {
    const p = byId.get(t.id);
    parts.push(`${t.kind} ${p?.name ?? '?'}#${t.id} maps [${(p?.map_ids ?? []).join(',')}] pids ${owners(p)}`);
  }
  const tcMaps = new Set(tc.flatMap((t) => byId.get(t.id)?.map_ids ?? []));
  // (Names without BTF are cut at 15 characters.)
  for (const p of progs.filter((q) => q.name?.startsWith('tcpfo_primary_o'))) {
    const shared = (p.map_ids ?? []).filter((m) => tcMaps.has(m)).length;
    parts.push(
      `match#${p.id} maps [${(p.map_ids ?? []).join(',')}] pids ${owners(p)} shares ${shared} with the tc programs`,
    );
  }
  // The tc programs' `handshakes` entries of the ports asked for.
  for (const id of tcMaps) {
    const info = await json<{ name?: string }>(['map', 'show', 'id', String(id)]);
    if (info?.name !== 'handshakes') continue;
    const entries =
      (await json<{ key?: unknown; value?: unknown; formatted?: { key?: unknown; value?: unknown } }[]>([
        'map',
        'dump',
        'id',
        String(id),
      ])) ?? [];
    const wanted = new Set(ports.flatMap((p) => [p, ((p & 0xff) << 8) | (p >> 8)]));
    const hits = entries.filter((e) => {
      const k = (e.formatted?.key ?? e.key) as { cport?: number } | undefined;
      return k?.cport !== undefined && wanted.has(k.cport);
    });
    parts.push(
      `handshakes#${id}: ${entries.length} entries; of ports ${ports.join(',') || 'none'}: ${JSON.stringify(hits.map((e) => e.formatted ?? e)).slice(0, 1500)}`,
    );
  }
  return parts.join('; ') || 'no tcpfo programs';
}
