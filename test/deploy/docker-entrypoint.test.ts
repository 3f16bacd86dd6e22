/**
 * The container's entrypoint (deploy/docker/entrypoint.sh), run here as a
 * container would run it: it names what a `docker run` line left out (the
 * capabilities, a writable /proc/sys, the host's network) and refuses to
 * start the bridge without it; other commands pass straight to tcpfo. No
 * Docker engine runs here: each lack is made for real (setpriv, a mount
 * namespace with /proc/sys read-only, a network namespace of its own).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { distScript, REPO_ROOT } from '../../rig/dist.js';

const ENTRY = join(REPO_ROOT, 'deploy', 'docker', 'entrypoint.sh');
// `tcpfo` on the PATH, as in the image.
const bin = mkdtempSync(join(tmpdir(), 'tcpfo-entry-'));
writeFileSync(join(bin, 'tcpfo'), `#!/bin/sh\nexec ${process.execPath} ${distScript('cli.js')} "$@"\n`, { mode: 0o755 });
afterAll(() => rmSync(bin, { recursive: true, force: true }));
const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, TCPFO_CHECK_ONLY: '1' };

function run(argv: string[]): { code: number | null; err: string; out: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { env, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, err: r.stderr, out: r.stdout };
}

describe('the container entrypoint', () => {
  it('as root on the host (everything a bridge needs): starts; says what is only advised', () => {
    expect(process.getuid?.(), 'needs root').toBe(0);
    const r = run(['sh', ENTRY, 'primary', '-c', '/etc/tcpfo/tcpfo.yaml']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).not.toMatch(/missing/);
    expect(r.err).toMatch(/\/run\/tcpfo is not mounted from the host/);
  });

  it('without NET_ADMIN and NET_RAW: names both and the option, exits 78', () => {
    const r = run(['setpriv', '--inh-caps=-net_admin,-net_raw', '--bounding-set=-net_admin,-net_raw', '--', 'sh', ENTRY, 'secondary']);
    expect(r.code, r.err).toBe(78);
    expect(r.err).toMatch(/missing: CAP_NET_ADMIN \(--cap-add NET_ADMIN\)/);
    expect(r.err).toMatch(/missing: CAP_NET_RAW \(--cap-add NET_RAW\)/);
    expect(r.err).toMatch(/not starting/);
  });

  it('with /proc/sys read-only (Docker’s default): asks for systempaths=unconfined', () => {
    const r = run(['unshare', '-m', 'sh', '-c', `mount --bind -o ro /proc/sys /proc/sys && exec sh ${ENTRY} primary`]);
    expect(r.code, r.err).toBe(78);
    expect(r.err).toMatch(/missing: a writable \/proc\/sys \(--security-opt systempaths=unconfined\)/);
  });

  it('in a network of its own (no --network host): says so', () => {
    const r = run(['unshare', '-n', 'sh', ENTRY, 'primary']);
    expect(r.code, r.err).toBe(78);
    expect(r.err).toMatch(/missing: the host's network \(--network host\)/);
  });

  it('any other command goes straight to tcpfo, checked or not', () => {
    const r = run(['unshare', '-n', 'sh', ENTRY, '--version']);
    expect(r.code, r.err).toBe(0);
    expect(r.out.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
