/**
 * The native addon (build/Release/tcpfo_nfqueue.node, built from native/*.cc
 * at `npm install`), loaded once and typed in one place: each I/O module
 * declares the part it uses, and the addon is their sum.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { CapsNative } from './caps.js';
import type { CcResetNative } from './cc-reset.js';
import type { HeartbeatNative } from './heartbeat-socket.js';
import type { LockNative } from './lock.js';
import type { QueueNative } from './nfqueue.js';
import { PACKAGE_ROOT } from './paths.js';
import type { PresenceNative } from './presence.js';
import type { RealtimeNative } from './realtime.js';
import type { RunNative } from './run.js';
import type { SockDiagNative } from './sockets.js';
import type { SystemdNative } from './systemd.js';
import type { XlateNative } from './xlate.js';

export interface Native
  extends
    QueueNative,
    CapsNative,
    RunNative,
    LockNative,
    HeartbeatNative,
    PresenceNative,
    SockDiagNative,
    SystemdNative,
    XlateNative,
    RealtimeNative,
    CcResetNative {}

let addon: Native | undefined;

/** The addon; throws, saying how to build it, where it is missing. */
export function native(): Native {
  if (!addon) {
    const path = join(PACKAGE_ROOT, 'build', 'Release', 'tcpfo_nfqueue.node');
    try {
      addon = createRequire(import.meta.url)(path) as Native;
    } catch (e) {
      throw new Error(
        `cannot load the native addon ${path} (run \`npm install\` to build it): ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
  }
  return addon;
}
