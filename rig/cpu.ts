/**
 * CPU time as Linux counts it: one process's (/proc/PID/stat) and the whole
 * machine's (/proc/stat), in seconds. The rig's hosts are namespaces of one
 * kernel, so the machine's softirq time is every host's packet path.
 */
import { readFileSync } from 'node:fs';

/** USER_HZ: the unit of /proc's CPU times (100 on every Linux architecture tcpfo runs on). */
const HZ = 100;

/** A process's user and system CPU seconds so far. */
export function cpuSeconds(pid: number): { user: number; system: number } {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / HZ, system: Number(fields[12]) / HZ };
}

/** The machine's CPU seconds so far, over all cores: busy (all but idle and iowait), and of that softirq. */
export function machineSeconds(): { busy: number; softirq: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  // cpu user nice system idle iowait irq softirq steal guest guest_nice
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  return { busy: (user! + nice! + system! + irq! + softirq! + steal!) / HZ, softirq: softirq! / HZ };
}
