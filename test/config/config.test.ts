/** The YAML configuration: every error names the file, the path and the problem; the CLI exits 3. */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../config/config.js';
import { distScript, REPO_ROOT } from '../rig/dist.js';

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

  it('exits 3 for a missing file and 2 for bad usage', () => {
    const r = spawnSync(process.execPath, [distScript('cli.js'), 'check-config', '-c', join(dir, 'nope.yaml')], { encoding: 'utf8' });
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/cannot read: ENOENT/);
    const u = spawnSync(process.execPath, [distScript('cli.js'), 'check-config'], { encoding: 'utf8' });
    expect(u.status).toBe(2);
    expect(u.stderr).toMatch(/--config/);
  });
});
