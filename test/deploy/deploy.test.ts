/**
 * What operators install from deploy/ and from the package: the alert rules
 * (promtool checks them and runs their unit tests), the dashboard, the
 * systemd unit (systemd-analyze), and the npm package itself, installed the
 * way the README says and run. Every metric name the rules and the dashboard
 * use must be one the bridge exports.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildRegistry } from '../../bridge/node/metrics.js';
import { REPO_ROOT } from '../../rig/dist.js';
import { snap } from '../metrics/snapshot.js';

const DEPLOY = join(REPO_ROOT, 'deploy');
const tmp = mkdtempSync(join(tmpdir(), 'tcpfo-deploy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A tool the check needs; its absence fails the test, naming the package. */
function tool(name: string, pkg: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${name} is missing: run scripts/setup-system.sh --dev (Debian package ${pkg})`);
  return r.stdout.trim();
}

async function exportedNames(): Promise<Set<string>> {
  const reg = buildRegistry(() => snap());
  const names = new Set<string>(['up']);
  for (const m of await reg.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
  }
  return names;
}

/** Metric names in PromQL: identifiers that are not functions, keywords, labels or durations. */
function promqlNames(expr: string): string[] {
  const stripped = expr.replace(/\{[^}]*\}/g, '').replace(/\[[^\]]*\]/g, '').replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const words = stripped.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? [];
  const notNames = new Set(['sum', 'rate', 'increase', 'max', 'min', 'avg', 'count', 'and', 'or', 'unless', 'on', 'ignoring', 'bool', 'time', 'histogram_quantile', 'irate', 'delta', 'abs']);
  return words.filter((w) => !notNames.has(w));
}

describe('deploy/prometheus', () => {
  const rules = join(DEPLOY, 'prometheus', 'tcpfo.rules.yml');

  it('promtool accepts the rules and their unit tests pass', () => {
    const promtool = tool('promtool', 'prometheus');
    const check = spawnSync(promtool, ['check', 'rules', rules], { encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toMatch(/SUCCESS: \d+ rules found/);
    const test = spawnSync(promtool, ['test', 'rules', join(DEPLOY, 'prometheus', 'tcpfo.rules.test.yml')], { encoding: 'utf8', cwd: join(DEPLOY, 'prometheus') });
    expect(test.status, test.stdout + test.stderr).toBe(0);
    expect(test.stdout).toMatch(/SUCCESS/);
  });

  it('the rules and the dashboard only use metrics the bridge exports', async () => {
    const names = await exportedNames();
    const exprs = [
      ...[...readFileSync(rules, 'utf8').matchAll(/^\s*expr: (.*)$/gm)].map((m) => m[1]!),
      ...[...JSON.stringify(JSON.parse(readFileSync(join(DEPLOY, 'grafana', 'tcpfo.json'), 'utf8'))).matchAll(/"expr":"((?:[^"\\]|\\.)*)"/g)].map(
        (m) => JSON.parse(`"${m[1]}"`) as string,
      ),
    ];
    expect(exprs.length).toBeGreaterThan(15);
    const used = new Set(exprs.flatMap(promqlNames));
    const unknown = [...used].filter((n) => !names.has(n));
    expect(unknown).toEqual([]);
    // And the check can fail: a misspelt name is caught.
    expect(promqlNames('rate(tcpfo_merged_byte_total{job="tcpfo"}[5m])').filter((n) => !names.has(n))).toEqual(['tcpfo_merged_byte_total']);
  });

  it('the dashboard is Grafana JSON with a data source variable and a target in every panel', () => {
    const dash = JSON.parse(readFileSync(join(DEPLOY, 'grafana', 'tcpfo.json'), 'utf8')) as {
      title: string;
      templating: { list: Array<{ name: string; type: string }> };
      panels: Array<{ title: string; type: string; targets?: Array<{ expr: string }> }>;
    };
    expect(dash.title).toMatch(/tcpfo/);
    expect(dash.templating.list.some((v) => v.type === 'datasource')).toBe(true);
    for (const p of dash.panels.filter((x) => x.type !== 'row')) expect(p.targets?.length, p.title).toBeGreaterThan(0);
  });
});

describe('deploy/systemd', () => {
  const unit = join(DEPLOY, 'systemd', 'tcpfo.service');

  it('systemd-analyze verifies the unit and rates its sandbox OK (exposure 3.0 or less)', () => {
    const analyze = tool('systemd-analyze', 'systemd');
    const verify = spawnSync(analyze, ['verify', unit], { encoding: 'utf8' });
    expect(verify.status, verify.stderr).toBe(0);
    expect(verify.stderr).toBe('');
    const sec = spawnSync(analyze, ['security', '--offline=true', unit], { encoding: 'utf8' });
    const level = sec.stdout.match(/Overall exposure level for tcpfo\.service: ([\d.]+)/);
    expect(level, sec.stdout + sec.stderr).not.toBeNull();
    expect(Number(level![1])).toBeLessThanOrEqual(3.0);
  });

  it('the unit and the drop-in name what the bridge needs: notify, the role file, its capabilities, the server after it', () => {
    const text = readFileSync(unit, 'utf8');
    expect(text).toMatch(/^Type=notify$/m);
    expect(text).toMatch(/^EnvironmentFile=\/etc\/tcpfo\/role\.env$/m);
    expect(text).toMatch(/^ExecStart=.*tcpfo \$\{TCPFO_ROLE\} -c \/etc\/tcpfo\/tcpfo\.yaml$/m);
    for (const cap of ['CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_BPF', 'CAP_SYS_NICE'])
      expect(text).toMatch(new RegExp(`^CapabilityBoundingSet=.*${cap}`, 'm'));
    // The ARP and heartbeat threads run SCHED_FIFO (scheduling.realtime_priority): systemd must not refuse it.
    expect(text).not.toMatch(/^RestrictRealtime=yes/m);
    // A bad file (3), a server given up on (7), a second bridge (8): restarting would not help.
    expect(text).toMatch(/^RestartPreventExitStatus=3 7 8$/m);
    // The check before the start prints nothing when the file is valid (not the whole config into the journal).
    expect(text).toMatch(/^ExecStartPre=.* check-config --quiet /m);
    const dropIn = readFileSync(join(DEPLOY, 'systemd', 'server-after-tcpfo.conf'), 'utf8');
    expect(dropIn).toMatch(/^After=tcpfo\.service$/m);
    expect(dropIn).toMatch(/^Requires=tcpfo\.service$/m);
  });
});

describe('the npm package', () => {
  it('packs only what runs, installs as the README says, and its tcpfo command works', { timeout: 300_000 }, () => {
    const packDir = join(tmp, 'pack');
    mkdirSync(packDir);
    // --ignore-scripts: dist/ is built (npm test builds first); prepack's rebuild would rewrite
    // it under the other test files' running commands.
    execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', packDir, '--silent'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, npm_config_loglevel: 'error' } });
    const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const tarball = join(packDir, readdirSync(packDir).find((f) => f.endsWith('.tgz'))!);
    const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(files).toContain('package/dist/cli.js');
    expect(files).toContain('package/native/xlate.bpf.c');
    expect(files).toContain('package/deploy/systemd/tcpfo.service');
    expect(files).toContain('package/npm-shrinkwrap.json');
    expect(files.filter((f) => /^package\/(dist\/)?(test|bench|rig)\//.test(f) || f.endsWith('.test.js'))).toEqual([]);

    // The README's install line, into a scratch prefix.
    const prefix = join(tmp, 'prefix');
    const install = spawnSync('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', `--allow-scripts=${tarball},cap,raw-socket`, tarball], { encoding: 'utf8' });
    expect(install.status, install.stderr).toBe(0);
    // Without a warning: npm matches a tarball's package by its absolute path in --allow-scripts, not by its name.
    expect(install.stderr).not.toMatch(/allow-scripts|allowScripts|not allowed|skipped/i);
    const tcpfo = join(prefix, 'bin', 'tcpfo');
    expect(execFileSync(tcpfo, ['--version'], { encoding: 'utf8' }).trim()).toBe(version);

    // check-config with the example and a key of root's, mode 0600.
    const key = join(tmp, 'heartbeat.key');
    writeFileSync(key, 'a shared secret of 32 bytes here');
    chmodSync(key, 0o600);
    const cfg = join(tmp, 'tcpfo.yaml');
    writeFileSync(cfg, readFileSync(join(prefix, 'lib', 'node_modules', 'tcpfo', 'config', 'tcpfo.example.yaml'), 'utf8').replace('/etc/tcpfo/heartbeat.key', key));
    const checked = spawnSync(tcpfo, ['check-config', '-c', cfg], { encoding: 'utf8' });
    expect(checked.status, checked.stderr).toBe(0);
    expect(JSON.parse(checked.stdout).service.address).toBe('192.0.2.100');

    // The native parts were built at install: cleanup loads them and finds nothing to undo
    // (in a network namespace of its own, which goes with the process: the host's stays untouched).
    const cleanup = spawnSync('unshare', ['--net', tcpfo, 'cleanup', '--state-dir', join(tmp, 'state')], { encoding: 'utf8' });
    expect(cleanup.status, cleanup.stderr).toBe(0);
    expect(cleanup.stdout).toMatch(/^cleanup: nothing to do/);
    expect(readdirSync(join(prefix, 'lib', 'node_modules', 'tcpfo', 'build', 'Release'))).toEqual(expect.arrayContaining(['tcpfo_nfqueue.node', 'xlate.bpf.o', 'ccreset.bpf.o']));

    // The demo and the benches need a source checkout: not listed here, and they say so if run.
    const help = execFileSync(tcpfo, ['--help'], { encoding: 'utf8' });
    expect(help).toMatch(/^\s+switchover\b/m);
    expect(help).not.toMatch(/^\s+(demo|bench|campaign)\b/m);
    const demo = spawnSync(tcpfo, ['demo'], { encoding: 'utf8' });
    expect(demo.status).toBe(1);
    expect(demo.stderr).toMatch(/not part of the installed package; run it from a source checkout/);
  });
});
