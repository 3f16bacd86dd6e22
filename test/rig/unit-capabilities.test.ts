/**
 * The bridges run with the capabilities the systemd unit gives them
 * (deploy/systemd/tcpfo.service, CapabilityBoundingSet) and nothing else:
 * every kernel path comes up on both nodes, also in the node that takes the
 * primary role after a role swap (it keeps fewer: NET_ADMIN, NET_RAW, BPF).
 * On kernels before 6.14 the verifier needs CAP_PERFMON while the programs
 * load; a unit without it leaves the primary on the queue there.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { killNode, restartNode, waitForLog } from '../../rig/failover.js';
import { REPO_ROOT } from '../../rig/dist.js';
import { fifoThreads } from '../../rig/metrics.js';
import { TcpfoPair, transfer } from '../../rig/pair.js';
import { withRig } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

/** The unit's capability bounding set, as setpriv takes it ("net_admin,net_raw,…"). */
function unitCapabilities(): string[] {
  const unit = readFileSync(join(REPO_ROOT, 'deploy', 'systemd', 'tcpfo.service'), 'utf8');
  const line = /^CapabilityBoundingSet=(.*)$/m.exec(unit);
  expect(line, 'the unit names its capabilities').not.toBeNull();
  return line![1]!
    .trim()
    .split(/\s+/)
    .map((c) => c.replace(/^CAP_/, '').toLowerCase());
}

describe('the systemd unit’s capabilities', () => {
  it(
    'are enough for every kernel path, on both nodes and after a role swap',
    async () => {
      const caps = unitCapabilities();
      expect(caps).toEqual(expect.arrayContaining(['net_admin', 'net_raw', 'bpf']));
      // On a node systemd has mounted the bpffs; `ip netns exec` gives each bridge a /sys of its own: mounted first, as root.
      const setpriv = `setpriv --bounding-set=-all,${caps.map((c) => `+${c}`).join(',')} --inh-caps=-all --`;
      const wrap = [
        'sh',
        '-c',
        `mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf; exec ${setpriv} "$@"`,
        'wrap',
      ];
      await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { daemonWrap: wrap, extraYaml: 'failover:\n  rejoin: swap-roles\n' });
        try {
          const up = (re: RegExp) => (pair.logs().match(re) ?? []).length;
          expect(up(/"inbound":"kernel","merge":"kernel".*primary bridge up: merging/g), pair.logs()).toBe(1);
          expect(up(/"datapath":"kernel".*secondary bridge up/g), pair.logs()).toBe(1);
          const c = rig.host('client');
          const first = await transfer(c, 'get', 2_000_000, 7, 60_000);
          expect(first.sha256, pair.logs()).toBe(first.expected);
          // The secondary takes over; the primary comes back as its secondary; the
          // former secondary, its capabilities limited since its start, takes the primary role.
          await killNode(pair, 'primary');
          await waitForLog(pair, /took over the service address/);
          await restartNode(pair, 'primary');
          await waitForLog(pair, /now the primary \(roles swapped\)/);
          expect(up(/"inbound":"kernel","merge":"kernel".*primary bridge up: merging/g), pair.logs()).toBe(2);
          // Its ARP thread, started after the capabilities were limited, runs SCHED_FIFO too (the unit
          // keeps CAP_SYS_NICE); so does every time-critical thread of both nodes.
          for (const d of [pair.primary!, pair.secondary!])
            expect(
              fifoThreads(d.proc.pid!).map(([, prio]) => prio),
              pair.logs(),
            ).toEqual([10, 10]);
          const second = await transfer(c, 'get', 2_000_000, 8, 60_000);
          expect(second.sha256, pair.logs()).toBe(second.expected);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(150_000),
  );
});
