/** What the bridges say of the kernel (bridge/io/kernel-facilities.ts) and the route text the RTO fallback rewrites (node-state.ts). */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  describeKernel,
  moduleAvailable,
  probeKernel,
  thisKernel,
  versionOf,
  type KernelSources,
} from '../../bridge/io/kernel-facilities.js';
import { routeArgs, unipathRoutes, withoutRtoMin } from '../../bridge/io/node-state.js';

const dir = mkdtempSync(join(tmpdir(), 'tcpfo-kf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A kernel's module lists: `builtin` and `loadable` module paths, `loaded` names. */
function sources(
  rel: string,
  o: { builtin?: string[]; loadable?: string[]; loaded?: string[]; sysctls?: string[]; noLists?: boolean },
): KernelSources {
  const base = mkdtempSync(join(dir, 'k-'));
  const modulesDir = join(base, 'lib');
  mkdirSync(modulesDir);
  if (!o.noLists) {
    writeFileSync(join(modulesDir, 'modules.builtin'), (o.builtin ?? []).map((m) => `${m}\n`).join(''));
    writeFileSync(
      join(modulesDir, 'modules.dep'),
      (o.loadable ?? []).map((m) => `${m}: kernel/net/netfilter/x_tables.ko\n`).join(''),
    );
  }
  const sysModule = join(base, 'sys');
  mkdirSync(sysModule);
  for (const m of o.loaded ?? []) mkdirSync(join(sysModule, m));
  return { release: rel, modulesDir, sysModule, hasSysctl: (k) => (o.sysctls ?? []).includes(k) };
}

const ALL_MODULES = [
  'kernel/net/netfilter/nfnetlink_queue.ko',
  'kernel/net/netfilter/nf_tables.ko',
  'kernel/net/sched/sch_ingress.ko',
  'kernel/net/sched/cls_bpf.ko',
  'kernel/net/netfilter/xt_bpf.ko.xz',
];

describe('kernel facilities', () => {
  it('reads the release', () => {
    expect(versionOf('6.1.0-57-amd64')).toEqual([6, 1]);
    expect(versionOf('6.18.3')).toEqual([6, 18]);
    expect(versionOf('garbage')).toEqual([0, 0]);
  });

  it('finds a module built in, loadable (compressed too) or loaded, and says when it cannot tell', () => {
    const k = sources('6.1.0', {
      builtin: ['kernel/net/sched/sch_ingress.ko'],
      loadable: ['kernel/net/netfilter/xt_bpf.ko.xz'],
      loaded: ['nf_tables'],
    });
    expect(moduleAvailable(k, 'sch_ingress')).toBe(true);
    expect(moduleAvailable(k, 'xt_bpf')).toBe(true);
    expect(moduleAvailable(k, 'nf_tables')).toBe(true);
    expect(moduleAvailable(k, 'cls_bpf')).toBe(false);
    // A name that is a suffix of another's is not it.
    expect(moduleAvailable(sources('6.1.0', { loadable: ['kernel/net/sched/act_bpf.ko'] }), 'bpf')).toBe(false);
    expect(moduleAvailable(sources('6.1.0', { noLists: true }), 'cls_bpf')).toBeNull();
  });

  it('Debian 12’s kernel: everything but tcp_rto_min_us, whose fallback is the routes', () => {
    const r = probeKernel(sources('6.1.0-57-amd64', { loadable: ALL_MODULES }));
    const lacking = r.facilities.filter((f) => f.present === false);
    expect(lacking.map((f) => f.name)).toEqual(['net.ipv4.tcp_rto_min_us']);
    expect(describeKernel(r)).toBe(
      'kernel 6.1.0-57-amd64: lacks net.ipv4.tcp_rto_min_us (Linux 6.11; instead failover.rto_bound: routes (the rto_min metric of the LAN routes))',
    );
  });

  it('a kernel too old for the primary’s programs, without xt_bpf, and one that has it all', () => {
    const old = probeKernel(sources('5.4.0', { loadable: ALL_MODULES.filter((m) => !m.includes('xt_bpf')) }));
    const lacking = old.facilities.filter((f) => f.present === false).map((f) => f.name);
    expect(lacking).toHaveLength(3);
    expect(lacking[0]).toMatch(/tc clsact/);
    expect(lacking[1]).toMatch(/xt_bpf/);
    const now = probeKernel(sources('6.18.0', { loadable: ALL_MODULES, sysctls: ['net.ipv4.tcp_rto_min_us'] }));
    expect(describeKernel(now)).toBe('kernel 6.18.0: has every facility the data paths use');
    const blind = probeKernel(sources('6.18.0', { noLists: true, sysctls: ['net.ipv4.tcp_rto_min_us'] }));
    expect(describeKernel(blind)).toMatch(
      /has every facility the data paths use: cannot tell \(no module lists\): NFQUEUE/,
    );
  });

  it('on this machine: its own release, and the sysctl exactly when /proc has it', () => {
    const r = thisKernel();
    expect(r.release).toBe(release());
    const sysctl = r.facilities.find((f) => f.name === 'net.ipv4.tcp_rto_min_us')!;
    expect(sysctl.present).toBe(
      versionOf(release())[0] > 6 || (versionOf(release())[0] === 6 && versionOf(release())[1] >= 11),
    );
  });
});

describe('route text for the rto_min fallback', () => {
  const shown = [
    'default via 10.9.0.254 proto dhcp src 10.9.0.1 metric 100 linkdown ',
    '10.9.0.0/24 proto kernel scope link src 10.9.0.1 rto_min lock 20ms',
    '10.8.0.0/16 proto static ',
    '\tnexthop via 10.9.0.2 weight 1',
    '\tnexthop via 10.9.0.3 weight 1',
    '',
  ].join('\n');

  it('keeps single-path routes, one per line, and leaves multipath ones out', () => {
    expect(unipathRoutes(shown)).toEqual([
      'default via 10.9.0.254 proto dhcp src 10.9.0.1 metric 100 linkdown',
      '10.9.0.0/24 proto kernel scope link src 10.9.0.1 rto_min lock 20ms',
    ]);
  });

  it('takes the rto_min out, and the state words `ip route change` refuses', () => {
    expect(withoutRtoMin('10.9.0.0/24 proto kernel scope link src 10.9.0.1 rto_min lock 20ms')).toBe(
      '10.9.0.0/24 proto kernel scope link src 10.9.0.1',
    );
    expect(withoutRtoMin('10.9.0.0/24 rto_min 20ms metric 5')).toBe('10.9.0.0/24 metric 5');
    expect(routeArgs('default via 10.9.0.254 proto dhcp src 10.9.0.1 metric 100 linkdown')).toEqual([
      'default',
      'via',
      '10.9.0.254',
      'proto',
      'dhcp',
      'src',
      '10.9.0.1',
      'metric',
      '100',
    ]);
  });
});
