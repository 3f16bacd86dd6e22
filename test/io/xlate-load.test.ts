/**
 * The primary's programs (native/xlate.bpf.c: tc ingress and egress, the
 * netfilter match as a socket filter, the control program) and the
 * capabilities a bridge keeps after setup — CAP_BPF, CAP_NET_ADMIN,
 * CAP_NET_RAW, no CAP_PERFMON. A secondary that takes the primary role has
 * only those: it loads the programs at its start, as root, and attaches and
 * uses them then. (The verifier of kernels before 6.14 refuses them without
 * CAP_PERFMON: a narrow write onto a stack slot that holds a spilled scalar
 * is taken for a corrupted pointer; Debian 12's 6.1 does.)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { release } from 'node:os';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBpffs, XLATE_OBJECT } from '../../bridge/io/xlate.js';
import { versionOf } from '../../bridge/io/kernel-facilities.js';
import { distScript } from '../../rig/dist.js';
import { withRig } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

const PROGRAMS = [
  'tcpfo_merge_ctl',
  'tcpfo_order_only',
  'tcpfo_primary_only',
  'tcpfo_sent',
  'tcpfo_skips_queue',
  'tcpfo_xlate',
];

/** bpftool loads every program of the object, pinned under a fresh directory, with `setpriv` args first (none: root's). */
function loadAll(setpriv: string[]): string[] {
  const pins = `/sys/fs/bpf/tcpfo-test-${process.pid}`;
  try {
    const cmd = setpriv.length
      ? ['setpriv', [...setpriv, 'bpftool', 'prog', 'loadall', XLATE_OBJECT, pins]]
      : ['bpftool', ['prog', 'loadall', XLATE_OBJECT, pins]];
    execFileSync(cmd[0] as string, cmd[1] as string[], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return execFileSync('ls', [pins], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(
      `the verifier refused the programs${setpriv.length ? ' with a promoted bridge’s capabilities' : ''}:\n${(err.stderr ?? err.message).split('\n').slice(-25).join('\n')}`,
      { cause: e },
    );
  } finally {
    rmSync(pins, { recursive: true, force: true });
  }
}

describe('the primary’s BPF programs', () => {
  // As a bridge does at its start, as root (a fresh machine without systemd may have none).
  beforeAll(ensureBpffs);

  it('load; from Linux 6.14 on with CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW only, before as root', () => {
    expect(existsSync(XLATE_OBJECT), `${XLATE_OBJECT}: run npm install (node-gyp builds it)`).toBe(true);
    const [major, minor] = versionOf(release());
    const modern = major > 6 || (major === 6 && minor >= 14);
    expect(loadAll(modern ? ['--bounding-set=-all,+bpf,+net_admin,+net_raw'] : [])).toEqual(PROGRAMS);
  });

  it('load while signals keep coming (a profiler’s, a child’s): the verifier is not interrupted into a refusal', () => {
    // The verifier gives up with EAGAIN when a signal is pending for the loading thread.
    const r = execFileSync(process.execPath, [distScript('test/fixtures/load-under-signals.js'), '3'], {
      encoding: 'utf8',
      // Three loads take 0.3 s here, 5–15 s under emulation (scripts/kernel-vm.sh) with the
      // storm on one of its two CPUs; below the test's own timeout, so a hang says where.
      timeout: slow(50_000),
    });
    const out = JSON.parse(r) as { ok: number; loads: number; error?: string; signals: number };
    expect(out.signals, r).toBeGreaterThan(0);
    expect(out.error, r).toBeUndefined();
    expect(out.ok, r).toBe(3);
  });

  it(
    'loaded as root, then attached and used with a promoted bridge’s capabilities (every kernel)',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const p = rig.host('primary');
        const pin = `/sys/fs/bpf/tcpfo_test${process.pid}_primary_only`;
        try {
          await p.exec(['tc', 'qdisc', 'add', 'dev', 'eth0', 'clsact']);
          const r = await p.exec([process.execPath, distScript('test/fixtures/promoted-xlate.js'), 'eth0', pin]);
          const out = JSON.parse(r.stdout) as {
            permitted: string;
            started: boolean;
            skips: boolean;
            taken: { relNxt: number; handover: number } | null;
          };
          // CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_BPF (39): nothing else.
          expect(BigInt(`0x${out.permitted}`)).toBe((1n << 12n) | (1n << 13n) | (1n << 39n));
          expect(out.started).toBe(true);
          // P's next in-order segment of a connection the kernel merges skips the queue.
          expect(out.skips).toBe(true);
          // Taken back by the bridge (handover 1: HANDOVER_BRIDGE), as the kernel had it.
          expect(out.taken).toEqual({ relNxt: 5000, handover: 1 });
        } finally {
          rmSync(pin, { force: true });
          rmSync(`${pin}_order`, { force: true });
        }
      });
    },
    slow(60_000),
  );
});
