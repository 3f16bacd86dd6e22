/** The YAML configuration: every error names the file, the path and the problem; the CLI exits 3. */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../config/config.js';
import { distScript, REPO_ROOT } from '../../rig/dist.js';

const EXAMPLE = readFileSync(join(REPO_ROOT, 'config', 'tcpfo.example.yaml'), 'utf8');

function problems(yaml: string): string[] {
  try {
    parseConfig(yaml, 'test.yaml');
  } catch (e) {
    if (e instanceof ConfigError) {
      expect(e.message.startsWith('test.yaml: invalid configuration')).toBe(true);
      return e.problems;
    }
    throw e;
  }
  return [];
}

describe('configuration', () => {
  it('accepts the commented example and fills defaults', () => {
    const c = parseConfig(EXAMPLE, 'example.yaml');
    expect(c.service.ports).toEqual([21, 20, 7000, [8000, 8010]]);
    expect(c.heartbeat).toMatchObject({ interval_ms: 20, timeout_ms: 100 });
    expect(c.lan.mode).toBe('hub');
  });

  const cases: Array<[string, string, RegExp]> = [
    ['an unknown key', EXAMPLE.replace('lan:', 'lan:\n  speed: 100'), /^lan: unknown key "speed"/],
    ['an unknown top-level key', EXAMPLE + '\nverbose: true\n', /^\(top level\): unknown key "verbose"/],
    ['a bad address', EXAMPLE.replace('address: 192.0.2.100', 'address: 192.0.2.300'), /^service\.address: not an IPv4 address/],
    ['a bad MAC', EXAMPLE.replace('"02:00:00:00:00:03"', '"02:00:00:00:03"'), /^secondary\.mac: not a MAC address/],
    ['a reversed port range', EXAMPLE.replace('"8000-8010"', '"8010-8000"'), /^service\.ports\[3\]: bad port range/],
    ['a port out of range', EXAMPLE.replace('[21, 20,', '[70000, 20,'), /^service\.ports\[0\]/],
    ['no ports', EXAMPLE.replace(/ports: \[.*\]/, 'ports: []'), /^service\.ports: list at least one failover port/],
    ['a missing key file', EXAMPLE.replace(/\s+key_file: .*/, ''), /^heartbeat\.key_file:/],
    ['a missing node', EXAMPLE.replace(/secondary:\n(  .*\n)+/, ''), /^secondary:/],
    ['equal addresses', EXAMPLE.replace('address: 192.0.2.2', 'address: 192.0.2.1'), /must all differ/],
    ['a timeout below twice the interval', EXAMPLE.replace('timeout_ms: 100', 'timeout_ms: 30'), /at least twice/],
    ['broken YAML', 'service: [\n', /^YAML line/],
    ['the unspecified address as service address', EXAMPLE.replace('address: 192.0.2.100', 'address: 0.0.0.0'), /^service\.address: 0\.0\.0\.0 is the unspecified address/],
    ['a multicast service address', EXAMPLE.replace('address: 192.0.2.100', 'address: 239.1.2.3'), /^service\.address: 239\.1\.2\.3 is a multicast address/],
    ['a broadcast node address', EXAMPLE.replace('address: 192.0.2.1 ', 'address: 255.255.255.255 '), /^primary\.address: 255\.255\.255\.255 is the broadcast address/],
    ['a loopback node address', EXAMPLE.replace('address: 192.0.2.2', 'address: 127.0.0.2'), /^secondary\.address: .* loopback/],
    ['a multicast MAC', EXAMPLE.replace('"02:00:00:00:00:03"', '"03:00:00:00:00:03"'), /^secondary\.mac: .* multicast MAC/],
    ['an all-zero MAC', EXAMPLE.replace('"02:00:00:00:00:02"', '"00:00:00:00:00:00"'), /^primary\.mac: .* not a station/],
    ['a queue base whose third queue is out of range', EXAMPLE.replace('queue_base: 100', 'queue_base: 65534'), /^queue_base: /],
    ['a bad per-node metrics address', EXAMPLE.replace('mac: "02:00:00:00:00:03"', 'mac: "02:00:00:00:00:03"\n  metrics_listen: nowhere'), /^secondary\.metrics_listen: need ADDRESS:PORT/],
  ];
  for (const [what, yaml, re] of cases) {
    it(`rejects ${what} with a message naming the path`, () => {
      const p = problems(yaml);
      expect(p.length, JSON.stringify(p)).toBeGreaterThan(0);
      expect(p.some((x) => re.test(x)), JSON.stringify(p)).toBe(true);
    });
  }
});

describe('tcpfo check-config / primary with a bad file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tcpfo-cfg-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 3 with the file, path and problem, and installs nothing', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, EXAMPLE.replace('mtu: 1500', 'mtu: 15'));
    const before = execFileSync('iptables-nft-save', { encoding: 'utf8' }).replace(/^#.*$/gm, '');
    for (const cmd of ['check-config', 'primary', 'secondary']) {
      const r = spawnSync(process.execPath, [distScript('cli.js'), cmd, '-c', file], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(3);
      expect(r.stderr).toContain(`${file}: invalid configuration`);
      expect(r.stderr).toMatch(/lan\.mtu: /);
    }
    expect(execFileSync('iptables-nft-save', { encoding: 'utf8' }).replace(/^#.*$/gm, '')).toBe(before);
  });

  it('check-config verifies the heartbeat key file: present, root’s, mode 0600, 16 bytes or more', () => {
    const key = join(dir, 'hb.key');
    const file = join(dir, 'keyed.yaml');
    writeFileSync(file, EXAMPLE.replace('/etc/tcpfo/heartbeat.key', key));
    const check = () => spawnSync(process.execPath, [distScript('cli.js'), 'check-config', '-c', file], { encoding: 'utf8' });
    let r = check();
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/heartbeat\.key_file: .*ENOENT/);
    writeFileSync(key, 'x'.repeat(32), { mode: 0o644 });
    chmodSync(key, 0o644);
    r = check();
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/mode 644.*chmod 600/);
    chmodSync(key, 0o600);
    chownSync(key, 65534, 65534);
    r = check();
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/owned by uid 65534, not root/);
    chownSync(key, 0, 0);
    writeFileSync(key, 'short');
    r = check();
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/at least 16 bytes/);
    writeFileSync(key, 'k'.repeat(32));
    r = check();
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).heartbeat.key_file).toBe(key);
  });

  it('exits 3 for a missing file and 2 for bad usage', () => {
    const r = spawnSync(process.execPath, [distScript('cli.js'), 'check-config', '-c', join(dir, 'nope.yaml')], { encoding: 'utf8' });
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/cannot read: ENOENT/);
    const u = spawnSync(process.execPath, [distScript('cli.js'), 'check-config'], { encoding: 'utf8' });
    expect(u.status).toBe(2);
    expect(u.stderr).toMatch(/--config/);
  });
});
