/** The rig cleans up when its process is interrupted, and after a SIGKILL the next run sweeps it. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { distScript } from '../../rig/dist.js';
import { namespacesOf, sweepStaleRigs } from '../../rig/rig.js';

async function holdRig(): Promise<{ id: string; tmp: string; proc: ReturnType<typeof spawn> }> {
  const proc = spawn(process.execPath, [distScript('rig/helpers/hold-rig.js')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  for await (const chunk of proc.stdout!) {
    out += String(chunk);
    if (out.includes('\n')) break;
  }
  const [id, tmp] = out.trim().split(' ');
  if (!id || !tmp) throw new Error(`hold-rig printed ${JSON.stringify(out)}`);
  expect(namespacesOf(id).length).toBe(4);
  return { id, tmp, proc };
}

describe('rig cleanup on signals', () => {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    it(`removes everything on ${sig}`, async () => {
      const { id, tmp, proc } = await holdRig();
      const exited = once(proc, 'exit');
      proc.kill(sig);
      const [code, signal] = (await exited) as [number | null, string | null];
      expect(signal ?? code).toBe(sig);
      expect(namespacesOf(id)).toEqual([]);
      expect(existsSync(tmp)).toBe(false);
    });
  }

  it('after SIGKILL the leftovers are swept by the next run', async () => {
    const { id, tmp, proc } = await holdRig();
    const exited = once(proc, 'exit');
    proc.kill('SIGKILL');
    await exited;
    expect(namespacesOf(id).length).toBe(4); // nothing could clean up
    const removed = sweepStaleRigs();
    expect(removed.filter((n) => n.startsWith(id)).length).toBe(4);
    expect(namespacesOf(id)).toEqual([]);
    expect(existsSync(tmp)).toBe(false);
  });
});
