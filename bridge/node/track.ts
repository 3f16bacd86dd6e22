/**
 * `track`: a check of the local server, as keepalived's track_script. A node
 * whose server is dead must not go on in the pair: its kernel would reset
 * the clients while the pair looks healthy. After `fall` failed checks in a
 * row the bridge gives up its part (the primary stops heartbeating and
 * answering ARP, so the secondary takes over; the secondary leaves, so the
 * primary goes on alone) and exits (code 7). Checks that fail before the
 * first success do not count: at boot the bridge starts before its server.
 */
import { connect } from 'node:net';
import type { Logger } from '../log.js';
import { run } from '../io/run.js';

export interface TrackConfig {
  /** Failover ports to connect to on each service address (from the node itself). */
  connect?: number[];
  /** Or a command: exit status 0 is healthy. */
  command?: string;
  interval_ms: number;
  timeout_ms: number;
  fall: number;
}

/** Pure: check results in, the verdict out. */
export class TrackState {
  healthy: boolean | null = null;
  failures = 0;
  private inARow = 0;
  private seenHealthy = false;

  constructor(private readonly fall: number) {}

  /** One result; true when the node must give up its part now. */
  result(ok: boolean): boolean {
    this.healthy = ok;
    if (ok) {
      this.seenHealthy = true;
      this.inARow = 0;
      return false;
    }
    this.failures++;
    if (!this.seenHealthy) return false;
    this.inARow++;
    return this.inARow === this.fall;
  }

  /** Whether the server has answered yet (failures before that are the server still starting). */
  get started(): boolean {
    return this.seenHealthy;
  }
}

/** The exit code of a bridge that gave up its part because its server is dead. */
export const EXIT_SERVER_DOWN = 7;

function connectOnce(host: string, port: number, timeoutMs: number): Promise<void> {
  const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`${where}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve();
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      reject(new Error(`${where}: ${e.code ?? e.message}`));
    });
  });
}

/**
 * The shell: checks at an interval, logs changes, calls `giveUp` once. A
 * `connect` check connects to each port on every service address (both
 * families of a dual-stack service): a server that stopped answering on one
 * of them fails it.
 */
export class ServerTrack {
  readonly state: TrackState;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private lastError = '';

  constructor(
    private cfg: TrackConfig,
    private readonly addresses: readonly string[],
    private readonly log: Logger,
    private readonly giveUp: (why: string) => void,
  ) {
    this.state = new TrackState(cfg.fall);
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.cfg.interval_ms);
    this.timer.unref();
  }

  /** A new configuration (SIGHUP): applies from the next check. */
  reconfigure(cfg: TrackConfig): void {
    this.cfg = cfg;
    this.stop();
    this.start();
  }

  private async check(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    let ok = true;
    let err = '';
    try {
      if (this.cfg.command) await run('/bin/sh', ['-c', this.cfg.command], { timeoutMs: this.cfg.timeout_ms });
      for (const address of this.addresses)
        for (const port of this.cfg.connect ?? []) await connectOnce(address, port, this.cfg.timeout_ms);
    } catch (e) {
      ok = false;
      err = (e as Error).message.split('\n')[0]!.slice(0, 200);
    } finally {
      this.busy = false;
    }
    const before = this.state.healthy;
    const started = this.state.started;
    const give = this.state.result(ok);
    if (ok && started && before === false) this.log.warn('the local server answers again');
    if (ok && !started) this.log.info('the local server answers: tracking it');
    if (!ok && started && (before !== false || err !== this.lastError))
      this.log.warn({ err, failures: this.state.failures }, 'the local server failed a check');
    this.lastError = err;
    if (give) this.giveUp(`the local server failed ${this.cfg.fall} checks in a row (${err})`);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
