/** The daemon's control socket (bridge/control.ts): a health probe must never take a node out. */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readStatus, startControl, stopControl } from '../../bridge/control.js';

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
      expect(st?.asked).toBeGreaterThan(50);
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
      expect(await readStatus(path)).toEqual({ error: 'status failed: not ready' });
      fail = false;
      expect(await readStatus(path)).toEqual({ ok: true });
    } finally {
      stopControl(server, path);
    }
  });
});
