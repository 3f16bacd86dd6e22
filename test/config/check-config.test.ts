/** The CLI on configuration files: check-config and a bridge's start refuse what they must (root: key ownership, rule snapshots). */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { distScript, REPO_ROOT } from '../../rig/dist.js';

const EXAMPLE = readFileSync(join(REPO_ROOT, 'config', 'tcpfo.example.yaml'), 'utf8');

describe('tcpfo check-config / primary with a bad file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tcpfo-cfg-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [distScript('cli.js'), ...args], { encoding: 'utf8', timeout: 20_000 });

  it('a YAML alias bomb and an oversized file: exit 3 at once, naming the file', () => {
    const bomb = join(dir, 'bomb.yaml');
    const rows = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++)
      rows.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(',')}]`,
      );
    writeFileSync(bomb, rows.join('\n') + '\n');
    const t0 = Date.now();
    let r = cli('check-config', '-c', bomb);
    expect(r.status, r.stderr).toBe(3);
    expect(r.stderr).toContain(`${bomb}: invalid configuration`);
    expect(r.stderr).toMatch(/alias/i);
    expect(Date.now() - t0).toBeLessThan(15_000);
    const big = join(dir, 'big.yaml');
    writeFileSync(big, `# ${'x'.repeat(2 << 20)}\n`);
    r = cli('check-config', '-c', big);
    expect(r.status).toBe(3);
    expect(r.stderr).toContain(`${big}: invalid configuration`);
    expect(r.stderr).toMatch(/larger than 1048576 bytes/);
  });

  it('-c defaults to /etc/tcpfo/tcpfo.yaml; check-config --quiet prints nothing for a valid file', () => {
    const r = cli('check-config', '--help');
    expect(r.stdout.replace(/\s+/g, ' ')).toContain('(default: "/etc/tcpfo/tcpfo.yaml")');
    const key = join(dir, 'quiet.key');
    writeFileSync(key, 'k'.repeat(32), { mode: 0o600 });
    const file = join(dir, 'quiet.yaml');
    writeFileSync(file, EXAMPLE.replace('/etc/tcpfo/heartbeat.key', key));
    const loud = cli('check-config', '-c', file);
    expect(loud.status, loud.stderr).toBe(0);
    expect(loud.stdout).toMatch(/"service"/);
    const quiet = cli('check-config', '--quiet', '-c', file);
    expect(quiet.status, quiet.stderr).toBe(0);
    expect(quiet.stdout + quiet.stderr).toBe('');
  });

  it('check-config refuses a role hook whose program does not exist or cannot run', () => {
    const key = join(dir, 'hook.key');
    writeFileSync(key, 'k'.repeat(32), { mode: 0o600 });
    const file = join(dir, 'hook.yaml');
    const withHook = (cmd: string) =>
      writeFileSync(
        file,
        EXAMPLE.replace('/etc/tcpfo/heartbeat.key', key).replace(
          '# on_role_change: /usr/local/sbin/tcpfo-notify',
          `on_role_change: ${cmd}`,
        ),
      );
    withHook(join(dir, 'missing-hook'));
    let r = cli('check-config', '-c', file);
    expect(r.status).toBe(3);
    expect(r.stderr).toContain(`hooks.on_role_change: ${join(dir, 'missing-hook')}: no such file`);
    const script = join(dir, 'hook.sh');
    writeFileSync(script, '#!/bin/sh\n', { mode: 0o644 });
    withHook(`${script} --verbose`);
    r = cli('check-config', '-c', file);
    expect(r.status).toBe(3);
    expect(r.stderr).toContain(`${script}: not executable`);
    chmodSync(script, 0o755);
    expect(cli('check-config', '-c', file).status).toBe(0);
  });

  it('status: with no bridge, --json still prints a document; a half-edited file still finds where the bridge answers', () => {
    const state = join(dir, 'state');
    const file = join(dir, 'half.yaml');
    writeFileSync(file, `state_dir: ${state}\ninstance: zz\nservice: [broken\n`);
    const r = cli('status', '--json', '-c', file);
    expect(r.status).toBe(5);
    expect(JSON.parse(r.stdout)).toEqual({
      running: false,
      why: `no bridge is running here (no control socket answers at ${state}/zz{p,s}.sock)`,
      exitCode: 5,
    });
    expect(r.stderr).toContain(`${file}: invalid configuration`);
    expect(r.stderr).toContain(`asking the bridge at ${state} (instance zz) all the same`);
  });

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
    const check = () =>
      spawnSync(process.execPath, [distScript('cli.js'), 'check-config', '-c', file], { encoding: 'utf8' });
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
    const r = spawnSync(process.execPath, [distScript('cli.js'), 'check-config', '-c', join(dir, 'nope.yaml')], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/cannot read: ENOENT/);
    const u = spawnSync(process.execPath, [distScript('cli.js'), 'check-config', '--no-such-option'], {
      encoding: 'utf8',
    });
    expect(u.status).toBe(2);
    expect(u.stderr).toMatch(/unknown option/);
  });
});
