/**
 * A node in standby (`tcpfo standby`): out of the pair for maintenance, its
 * daemon still running. Nothing of the bridge is on the node — no rules, no
 * addresses, no heartbeats: the other node serves alone. Metrics and status
 * stay up and say `standby`, so a scrape does not read as a dead node.
 * `tcpfo unstandby` rejoins the pair as the secondary. The state survives a
 * restart of the daemon (a file in the state directory), until unstandby.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Config } from '../../config/config.js';
import type { Logger } from '../log.js';
import type { MetricsSnapshot } from './metrics.js';
import { NodeShell } from './shell.js';

/** The file that keeps a node in standby across restarts. */
export function standbyFile(cfg: Pick<Config, 'state_dir' | 'instance'>): string {
  return `${cfg.state_dir}/${cfg.instance}.standby`;
}

export function inStandby(cfg: Pick<Config, 'state_dir' | 'instance'>): boolean {
  return existsSync(standbyFile(cfg));
}

export function markStandby(cfg: Pick<Config, 'state_dir' | 'instance'>, on: boolean): void {
  const f = standbyFile(cfg);
  if (!on) return rmSync(f, { force: true });
  mkdirSync(dirname(f), { recursive: true });
  writeFileSync(f, `${new Date().toISOString()}\n`, { mode: 0o600 });
}

export class StandbyNode {
  private readonly shell: NodeShell;
  private readonly since = new Date();

  /** `cfg`: the configuration as this node's secondary role sees it (its metrics address). */
  private constructor(
    cfg: Config,
    log: Logger,
    private readonly reason: string,
  ) {
    this.shell = new NodeShell(cfg, 's', log, this);
  }

  static async start(cfg: Config, log: Logger, reason: string): Promise<StandbyNode> {
    const n = new StandbyNode(cfg, log, reason);
    await n.shell.openFront();
    return n;
  }

  status() {
    return {
      role: 'standby' as const,
      since: this.since.toISOString(),
      reason: this.reason,
      peer: 'not watched' as const,
      hint: 'tcpfo unstandby: rejoin the pair as its secondary',
    };
  }

  metricsSnapshot(): MetricsSnapshot {
    return {
      role: 'standby',
      datapath: 'none',
      peerUp: false,
      heartbeatRttSeconds: null,
      heartbeatsReceived: 0,
      heartbeatsSent: 0,
      heartbeatsRejected: {},
      loopStalls: 0,
      failovers: 0,
      lastFailoverSeconds: null,
      connections: {},
      drops: {},
      nfqueue: {},
    };
  }

  halt(): void {}

  reload(): void {}

  async stop(): Promise<void> {
    this.shell.close();
  }
}

/** What `tcpfo status` shows of a node in standby. */
export type StandbyStatus = ReturnType<StandbyNode['status']>;
