/**
 * The primary's programs (native/xlate.bpf.c: tc ingress and egress, and the
 * netfilter match as a socket filter) pass the verifier with the
 * capabilities a bridge keeps after setup — CAP_BPF, CAP_NET_ADMIN,
 * CAP_NET_RAW, no CAP_PERFMON — as a secondary has when it takes the primary
 * role: without CAP_PERFMON the verifier refuses more (comparing packet
 * pointers, for one), and the bridge would fall back to the queue.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { XLATE_OBJECT } from '../../bridge/io/xlate.js';

describe('the primary’s BPF programs', () => {
  it('load with CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW only (a promoted secondary’s)', () => {
    expect(existsSync(XLATE_OBJECT), `${XLATE_OBJECT}: run npm install (node-gyp builds it)`).toBe(true);
    const pins = `/sys/fs/bpf/tcpfo-test-${process.pid}`;
    try {
      const out = execFileSync('setpriv', ['--bounding-set=-all,+bpf,+net_admin,+net_raw', 'bpftool', 'prog', 'loadall', XLATE_OBJECT, pins], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      expect(out).toBe('');
      const progs = execFileSync('ls', [pins], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
      expect(progs).toEqual(['tcpfo_merge_ctl', 'tcpfo_primary_only', 'tcpfo_sent', 'tcpfo_skips_queue', 'tcpfo_xlate']);
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`the verifier refused the programs with a promoted bridge's capabilities:\n${(err.stderr ?? err.message).split('\n').slice(-25).join('\n')}`);
    } finally {
      rmSync(pins, { recursive: true, force: true });
    }
  });
});
