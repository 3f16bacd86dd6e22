/**
 * One bridge per node and instance (native/lock.cc): `<state_dir>/<instance>.lock`
 * under an exclusive flock, held until the process ends. A second
 * `tcpfo primary|secondary` of the same instance stops before it changes
 * anything, and `tcpfo cleanup` takes the locks of the instances it cleans,
 * so it never undoes a live bridge's rules, and no bridge starts meanwhile.
 * The kernel drops a lock when its holder dies, whatever the signal: a
 * killed bridge's journal is undone at the next start, as before.
 */
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { native } from './native.js';

/** The addon's part for the instance lock (native/lock.cc). */
export interface LockNative {
  lockFile(path: string): { fd?: number; heldBy?: number; error?: string };
}

/** A bridge of this instance runs on this node already. */
export class InstanceLocked extends Error {
  override readonly name = 'InstanceLocked';
  constructor(
    readonly instance: string,
    /** The holder's pid, 0 when it did not write one. */
    readonly pid: number,
    readonly path: string,
  ) {
    super(
      `a tcpfo bridge of instance ${instance} already runs on this node${pid ? ` (pid ${pid})` : ''}; it holds ${path}`,
    );
  }
}

export class LockError extends Error {
  override readonly name = 'LockError';
}

const LOCK_SUFFIX = '.lock';

export function lockPath(stateDir: string, instance: string): string {
  return join(stateDir, `${instance}${LOCK_SUFFIX}`);
}

/** Tries the lock: null once it is ours (for the life of the process), else its holder's pid. */
function tryLock(path: string): number | null {
  const r = native().lockFile(path);
  if (r.error !== undefined) throw new LockError(`cannot lock ${path}: ${r.error}`);
  return r.fd !== undefined ? null : (r.heldBy ?? 0);
}

/** Takes this instance's lock for the life of the process, or throws InstanceLocked. */
export function lockInstance(stateDir: string, instance: string): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const path = lockPath(stateDir, instance);
  const holder = tryLock(path);
  if (holder !== null) throw new InstanceLocked(instance, holder, path);
}

/**
 * Takes the lock of every instance with a lock file in `stateDir` that no
 * live bridge holds (for the cleanup, until it exits); returns the
 * instances a running bridge holds, with its pid.
 */
export function lockIdleInstances(stateDir: string): Array<{ instance: string; pid: number }> {
  let files: string[];
  try {
    files = readdirSync(stateDir).filter((f) => f.endsWith(LOCK_SUFFIX));
  } catch {
    return [];
  }
  const running: Array<{ instance: string; pid: number }> = [];
  for (const f of files) {
    const holder = tryLock(join(stateDir, f));
    if (holder !== null) running.push({ instance: f.slice(0, -LOCK_SUFFIX.length), pid: holder });
  }
  return running;
}
