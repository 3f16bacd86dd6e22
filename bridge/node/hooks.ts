/**
 * `hooks.on_role_change`: a command of the operator's run on every role
 * change, as keepalived's notify scripts: `sh -c COMMAND tcpfo ROLE REASON`
 * (the role and the reason are $1 and $2, never spliced into the command),
 * with TCPFO_ROLE, TCPFO_REASON and TCPFO_INSTANCE in its environment. It
 * runs in the background with a timeout; its exit is logged; it never holds
 * up the data path. It runs with the bridge's limited capabilities.
 */
import type { Logger } from '../log.js';
import { run } from '../io/run.js';
import { monotonicMs } from '../clock.js';

export interface HooksConfig {
  on_role_change?: string;
  timeout_ms: number;
}

export class RoleHooks {
  constructor(
    private cfg: HooksConfig,
    private readonly instance: string,
    private readonly log: Logger,
  ) {}

  reconfigure(cfg: HooksConfig): void {
    this.cfg = cfg;
  }

  /** Runs the hook for a new role; resolves when it has ended (callers need not wait). */
  roleChanged(role: string, reason: string): Promise<void> {
    const cmd = this.cfg.on_role_change;
    if (!cmd) return Promise.resolve();
    const t0 = monotonicMs();
    return run('/bin/sh', ['-c', cmd, 'tcpfo', role, reason], {
      timeoutMs: this.cfg.timeout_ms,
      env: { ...process.env, TCPFO_ROLE: role, TCPFO_REASON: reason, TCPFO_INSTANCE: this.instance },
    }).then(
      () => this.log.info({ role, reason, ms: monotonicMs() - t0 }, 'role hook ran'),
      (e: unknown) => {
        const err = e as { code?: number | string; killed?: boolean; stderr?: string; message: string };
        this.log.error(
          {
            role,
            reason,
            ms: monotonicMs() - t0,
            exit: err.code,
            timedOut: err.killed === true,
            stderr: err.stderr?.slice(0, 500),
          },
          'role hook failed',
        );
      },
    );
  }
}
