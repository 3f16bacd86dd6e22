/**
 * What every bridge runs around its data path, whichever role: the metrics
 * server, the control socket (`tcpfo status`), the liveness guard of its
 * queues, the test-fault socket. Opened once its data path is in, torn down
 * in one order; the "front" (metrics and status) can be handed to another
 * bridge on this node (a promotion) and taken back.
 */
import type { Server } from 'node:http';
import type { Server as NetServer } from 'node:net';
import { metricsListen, type Config } from '../../config/config.js';
import { controlSocketPath, startControl, stopControl } from './control.js';
import { faultSocketPath, holdLoop, startFaults, stopFaults, type FaultHandlers } from './faults.js';
import { startLivenessGuard, type Guard, type QueueProbe } from './liveness.js';
import type { Logger } from '../log.js';
import { kernelStatus } from '../io/kernel-facilities.js';
import { buildRegistry, pairName, startMetricsServer, type MetricsSnapshot } from './metrics.js';
import type { NodeStatus } from './status.js';

/** What the shell asks of its bridge. */
export interface ShellBridge {
  metricsSnapshot(): MetricsSnapshot;
  status(): NodeStatus;
  /** The data path is stuck: stop heartbeats and ARP answers (the guard exits the process next). */
  halt(): void;
}

export class NodeShell {
  private metrics: Server | undefined;
  private control: NetServer | undefined;
  private guard: Guard | undefined;
  private faults: NetServer | undefined;
  private readonly controlPath: string;
  private readonly faultPath: string;

  /** `role`: which of the node's two sockets ('p' or 's'), as in the journal's names. */
  constructor(
    private readonly cfg: Config,
    private readonly role: 'p' | 's',
    private readonly log: Logger,
    private readonly bridge: ShellBridge,
  ) {
    this.controlPath = controlSocketPath(cfg.state_dir, cfg.instance, role);
    this.faultPath = faultSocketPath(cfg.state_dir, cfg.instance, role);
  }

  /**
   * Opens everything: the front, the guard over `queues` (none on the
   * kernel data path), the fault socket (tests only; `faults.deafen` turns a
   * queue deaf, the loop stall is common to both roles).
   */
  async open(queues: readonly QueueProbe[], deafen: (which: string) => void): Promise<void> {
    await this.openFront();
    this.guard = startLivenessGuard(queues, this.cfg.liveness.queue_stall_ms, this.log, () => this.bridge.halt());
    const handlers: FaultHandlers = { deafen, stall: (ms) => holdLoop(Number(ms)) };
    this.faults = startFaults(this.faultPath, handlers);
  }

  /** Metrics and status on: this node's own metrics address and control socket. */
  async openFront(): Promise<void> {
    const node = this.role === 'p' ? this.cfg.primary : this.cfg.secondary;
    this.metrics = await startMetricsServer(
      metricsListen(this.cfg, node),
      buildRegistry(() => this.bridge.metricsSnapshot(), pairName(this.cfg)),
    );
    this.control = await startControl(this.controlPath, () => ({ ...this.bridge.status(), kernel: kernelStatus() }));
  }

  /** Metrics and status off, for another bridge on this node to take (a promotion). */
  closeFront(): void {
    this.metrics?.close();
    this.metrics = undefined;
    stopControl(this.control, this.controlPath);
    this.control = undefined;
  }

  /** The guard off: the data path it watched is gone (a takeover) or going. */
  stopGuard(): void {
    this.guard?.stop();
  }

  /** A reloaded bound (SIGHUP). */
  setQueueStallMs(ms: number): void {
    this.guard?.setStallMs(ms);
  }

  /** First step of a stop: nothing may end the process or change the bridge from outside any more. */
  closeWatchers(): void {
    this.stopGuard();
    stopFaults(this.faults, this.faultPath);
    this.faults = undefined;
  }

  /** Everything off (a stop): the watchers, then the front. */
  close(): void {
    this.closeWatchers();
    this.closeFront();
  }
}
