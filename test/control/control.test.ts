/** The daemon's control socket (bridge/node/control.ts): a health probe must never take a node out. */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { distScript } from '../../rig/dist.js';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  readStatus,
  sendCommand,
  startCommands,
  startControl,
  stopControl,
  type Command,
} from '../../bridge/node/control.js';
import { statSync } from 'node:fs';

const dir = mkdtempSync(join(tmpdir(), 'tcpfo-control-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('control socket', () => {
  it('clients that connect and leave before the answer is written do not take the daemon down; the next status is answered', async () => {
    const path = join(dir, 'c1.sock');
    // An answer larger than the socket buffer: the write is still under way when the client has gone (EPIPE).
    const big = 'x'.repeat(4 << 20);
    let asked = 0;
    const server = await startControl(path, () => ({ asked: ++asked, big }));
    const errors: unknown[] = [];
    const onUncaught = (e: unknown) => errors.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      for (let i = 0; i < 50; i++) {
        await new Promise<void>((resolve) => {
          const c = createConnection(path);
          c.on('connect', () => {
            c.destroy();
            resolve();
          });
          c.on('error', () => resolve());
        });
      }
      // Let the server's writes fail meanwhile.
      await new Promise((r) => setTimeout(r, 300));
      const st = await readStatus(path, 5000);
      // This test's server answers { asked: n }, not a node's status.
      expect(st.ok && (st.status as unknown as { asked: number }).asked).toBeGreaterThan(50);
      expect(errors).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      stopControl(server, path);
    }
  });

  it('a status function that throws answers with the error, and the socket stays up', async () => {
    const path = join(dir, 'c2.sock');
    let fail = true;
    const server = await startControl(path, () => {
      if (fail) throw new Error('not ready');
      return { ok: true };
    });
    try {
      expect(await readStatus(path)).toEqual({ ok: true, status: { error: 'status failed: not ready' } });
      fail = false;
      expect(await readStatus(path)).toEqual({ ok: true, status: { ok: true } });
    } finally {
      stopControl(server, path);
    }
  });

  it('tcpfo status tells no bridge running (exit 5) from permission denied (exit 6)', async () => {
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir, { recursive: true, mode: 0o755 });
    chmodSync(dir, 0o755);
    const cfgFile = join(dir, 'st.yaml');
    writeFileSync(
      cfgFile,
      `service: { address: 192.0.2.100, ports: [7000] }\nprimary: { address: 192.0.2.1, interface: eth0, mac: "02:00:00:00:00:01" }\nsecondary: { address: 192.0.2.2, interface: eth0, mac: "02:00:00:00:00:02" }\nheartbeat: { key_file: /nonexistent }\nstate_dir: ${stateDir}\ninstance: st\n`,
    );
    chmodSync(cfgFile, 0o644);
    const status = (uid?: number) =>
      spawnSync(process.execPath, [distScript('cli.js'), 'status', '-c', cfgFile], {
        encoding: 'utf8',
        ...(uid !== undefined ? { uid, gid: uid } : {}),
      });
    let r = status();
    expect(r.status, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/no bridge is running here/);
    const path = join(stateDir, 'stp.sock');
    const server = await startControl(path, () => ({ role: 'primary' }));
    try {
      r = await new Promise((resolve) => setImmediate(() => resolve(status(65534))));
      expect(r.status, r.stderr).toBe(6);
      expect(r.stderr).toMatch(/permission denied/);
      const root = await new Promise<ReturnType<typeof status>>((resolve) => {
        const child = spawn(process.execPath, [distScript('cli.js'), 'status', '-c', cfgFile], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('exit', (code) => resolve({ status: code, stdout: out, stderr: err } as ReturnType<typeof status>));
      });
      expect(root.status, root.stderr).toBe(0);
      expect(root.stdout).toMatch(/^role\s+primary$/m);
    } finally {
      stopControl(server, path);
    }
  });

  it('the command socket: root-only, one command per connection answered by the daemon; unknown, malformed and oversized requests refused; none listening says so', async () => {
    const path = join(dir, 'cmd.ctl');
    const seen: Command[] = [];
    const server = await startCommands(path, async (cmd) => {
      seen.push(cmd);
      return cmd === 'switchover' ? { ok: true, message: 'switched' } : { ok: false, message: `no ${cmd} here` };
    });
    try {
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(await sendCommand(path, 'switchover', 2000)).toEqual({
        ok: true,
        answer: { ok: true, message: 'switched' },
      });
      expect(await sendCommand(path, 'standby', 2000)).toEqual({
        ok: true,
        answer: { ok: false, message: 'no standby here' },
      });
      const raw = (line: string) =>
        new Promise<string>((resolve) => {
          const c = createConnection(path);
          let buf = '';
          c.on('data', (d) => (buf += d.toString()));
          c.on('end', () => resolve(buf.trim()));
          c.on('connect', () => c.write(line));
        });
      expect(JSON.parse(await raw('{"cmd":"reboot"}\n'))).toEqual({
        ok: false,
        message: 'unknown command "reboot" (known: switchover, standby, unstandby)',
      });
      expect(JSON.parse(await raw('switchover\n'))).toEqual({ ok: false, message: 'request is not JSON' });
      expect(JSON.parse(await raw('x'.repeat(2000)))).toEqual({ ok: false, message: 'request too long' });
      expect(seen).toEqual(['switchover', 'standby']);
    } finally {
      server.close();
    }
    const gone = await sendCommand(join(dir, 'none.ctl'), 'switchover', 500);
    expect(gone).toMatchObject({ ok: false, why: 'not-running' });
  });
});
