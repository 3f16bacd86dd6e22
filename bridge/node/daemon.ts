/**
 * The daemon around a bridge (`tcpfo primary`, `tcpfo secondary`): the
 * configuration, the scheduling priority, signals (SIGTERM/SIGINT stop and
 * undo everything; SIGHUP reloads what can change without touching a
 * connection), the role hook, the server check (track), and systemd's
 * readiness and watchdog notifications. One process plays the roles its node
 * takes in turn: a primary daemon that finds the other node serving joins it
 * as its secondary (failover.rejoin: swap-roles).
 */
import { setPriority } from 'node:os';
import { allowRealtime } from '../io/realtime.js';
import { ConfigError, loadConfig, serviceAddressList, swapRoles, type Config } from '../../config/config.js';
import { createLogger, type Logger } from '../log.js';
import { RoleHooks } from './hooks.js';
import { EXIT_SERVER_DOWN, ServerTrack } from './track.js';
import { sdNotify } from '../io/systemd.js';
import { InstanceLocked, lockInstance } from '../io/lock.js';
import { describeKernel, lacking, thisKernel } from '../io/kernel-facilities.js';
import { noteReload } from './metrics.js';
import type { Role, StartPrimaryRole, SwitchResult } from './roles.js';
import { commandSocketPath, startCommands, stopControl, type Command, type CommandAnswer } from './control.js';
import { inStandby, markStandby, StandbyNode, standbyFile } from './standby.js';
import { commandPlan, onClaimAtStart, partAtStart, type RunningPart } from './parts.js';
import { monotonicMs } from '../clock.js';

/** Exit codes scripts can rely on. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 3,
  stalled: 4,
  notRunning: 5,
  permission: 6,
  serverDown: EXIT_SERVER_DOWN,
  alreadyRunning: 8,
  refused: 9,
} as const;

interface Bridge {
  stop(): Promise<void>;
  halt(): void;
  reload(cfg: Config): void;
  /** A planned switchover asked on this node (absent in standby). */
  switchover?(why: string): Promise<SwitchResult>;
}

/** Settings a reload cannot change: they shape the rules, the queues and the addresses in place. */
const RESTART_ONLY = [
  'service',
  'primary',
  'secondary',
  'datapath',
  'inbound',
  'merge',
  'lan',
  'heartbeat',
  'failover',
  'security',
  'metrics',
  'queue_base',
  'state_dir',
  'instance',
  'scheduling',
  'liveness.loop_stall_ms',
  'limits.queue_buffer_bytes',
] as const;

function pick(cfg: Config, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], cfg);
}

export async function runDaemon(role: 'primary' | 'secondary', file: string): Promise<void> {
  let cfg: Config;
  try {
    cfg = loadConfig(file);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      process.exit(EXIT.config);
    }
    throw e;
  }
  const log = createLogger(`tcpfo-${role}`, process.env.TCPFO_LOG_LEVEL ?? cfg.log_level);
  const kernel = thisKernel();
  log.info({ kernel: kernel.release, lacks: lacking(kernel).map((f) => f.name) }, describeKernel(kernel));
  // Before anything changes on the node: a second bridge of this instance
  // would undo the running one's rules and address as "leftovers".
  try {
    lockInstance(cfg.state_dir, cfg.instance);
  } catch (e) {
    if (!(e instanceof InstanceLocked)) throw e;
    log.error(
      { instance: e.instance, holder: e.pid || undefined, lock: e.path, why: e.message },
      'a tcpfo bridge of this instance already runs on this node: not starting; nothing was changed',
    );
    process.exit(EXIT.alreadyRunning);
  }
  // Scheduled ahead of ordinary processes on a busy node (scheduling.nice).
  try {
    setPriority(cfg.scheduling.nice);
  } catch (e) {
    log.warn(
      { nice: cfg.scheduling.nice, err: (e as Error).message },
      'could not set the scheduling priority (needs CAP_SYS_NICE): running at the default',
    );
  }
  // Before any thread starts: the priority they take, and a bound on a spinning one.
  try {
    allowRealtime(cfg.scheduling.realtime_priority);
  } catch (e) {
    log.warn(
      { priority: cfg.scheduling.realtime_priority, err: (e as Error).message },
      'could not bound real-time threads (RLIMIT_RTTIME): they run without real-time priority',
    );
  }
  const hooks = new RoleHooks(cfg.hooks, cfg.instance, log);
  const onRoleChange = (r: Role, reason: string) => {
    void hooks.roleChanged(r, reason);
    sdNotify(`STATUS=${r}: ${reason}`);
  };
  /** The configuration as this node's secondary role sees it (a primary daemon joins the other node as its secondary with the roles swapped). */
  const asSecondary = (): Config => (role === 'primary' ? swapRoles(cfg) : cfg);
  let bridge: Bridge | undefined;
  let track: ServerTrack | undefined;
  // Signal handlers first: a stop requested while the bridge is still
  // starting waits for the start, then undoes it.
  let starting: Promise<Bridge> | undefined;
  let stopping = false;
  // oxlint-disable-next-line prefer-const -- set below, once the bridge runs; stop() above clears it
  let preferTimer: NodeJS.Timeout | undefined;
  let stopCommandSocket = () => {};
  const stop = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'stopping');
    sdNotify('STOPPING=1');
    track?.stop();
    clearInterval(preferTimer);
    try {
      const b = await starting;
      await b?.stop();
      stopCommandSocket();
      // The hook hears it (bounded by hooks.timeout_ms): a stopped node serves nothing.
      await hooks.roleChanged('stopped', `the daemon was stopped (${sig})`);
      process.exit(EXIT.ok);
    } catch (e) {
      log.error({ err: e }, 'stop failed');
      process.exit(EXIT.failure);
    }
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void stop(sig));
  process.on('SIGHUP', () => {
    if (!bridge || stopping) return;
    reload(file, cfg, log, (next) => {
      cfg = next;
      hooks.reconfigure(next.hooks);
      if (track && next.track) track.reconfigure(next.track);
      else if (track) {
        track.stop();
        track = undefined;
      } else if (next.track) track = startTrack(next);
      bridge?.reload(next);
    });
  });
  /** The local server failed its checks: give up this node's part (the peer serves), then exit. */
  const giveUp = (why: string) => {
    log.error({ why }, 'giving up this node’s part in the pair: the other node serves (exit 7)');
    void hooks.roleChanged('stopped', why);
    bridge?.halt();
    setTimeout(() => process.exit(EXIT.serverDown), 200).unref();
  };
  const startTrack = (c: Config): ServerTrack => {
    const t = new ServerTrack(c.track!, serviceAddressList(c), log, giveUp);
    t.start();
    return t;
  };
  // Both roles' modules are loaded now: compiling the primary's during a
  // promotion would stall the heartbeats.
  const [{ PrimaryBridge, ServiceAddressInUse }, { SecondaryBridge }] = await Promise.all([
    import('../primary/daemon.js'),
    import('../secondary/daemon.js'),
  ]);
  /** Where a planned switchover's handover ends on this node: its secondary role, or standby. */
  let afterHandover: 'secondary' | 'standby' = 'secondary';
  /** The other node took the service over (a planned switchover): this node becomes its secondary (or goes to standby). */
  const onHandedOver = () =>
    void replaceBridge(
      afterHandover === 'standby'
        ? () => enterStandby('planned switchover, then standby')
        : () => startSecondary(asSecondary(), 'planned switchover: the other node serves'),
    );
  const startPrimaryRole: StartPrimaryRole = (c, l, o) => PrimaryBridge.start(c, l, o);
  const startSecondary = (c: Config, why?: string): Promise<Bridge> =>
    SecondaryBridge.start(c, log, { onRoleChange, startPrimaryRole, onHandedOver, why });
  const enterStandby = async (reason: string): Promise<Bridge> => {
    const n = await StandbyNode.start(asSecondary(), log, reason);
    log.warn(
      { reason },
      'in standby: this node serves nothing and replicates nothing; tcpfo unstandby rejoins the pair as its secondary',
    );
    onRoleChange('standby', reason);
    return n;
  };
  const startPrimary = async (): Promise<Bridge> => {
    try {
      return await PrimaryBridge.start(cfg, log, { onRoleChange, onHandedOver });
    } catch (e) {
      if (!(e instanceof ServiceAddressInUse) || onClaimAtStart(e.bySecondary, cfg.failover.rejoin) === 'refuse')
        throw e;
      // The secondary took over while this node was down and still serves:
      // join it as its secondary; it becomes the merging primary for new connections.
      log.warn(
        { rejoin: 'swap-roles' },
        'the secondary serves the service address: joining as its secondary (roles swapped)',
      );
      return startSecondary(swapRoles(cfg));
    }
  };
  /** What runs, as the operator's commands see it. */
  const runningPart = (b: Bridge | undefined): RunningPart => {
    if (b instanceof StandbyNode) return 'standby';
    if (!b?.switchover) return 'starting';
    if (!(b instanceof SecondaryBridge)) return 'primary';
    if (b.role === 'secondary') return 'secondary';
    return b.promotedPrimary ? 'promoted' : 'active';
  };
  /**
   * This node changes part (a planned switchover, standby, unstandby): the
   * running bridge stops — undoing its rules and addresses — and the next
   * starts. Should the next fail to start, the node is left with nothing
   * (fail closed) and the daemon exits for its supervisor to restart it.
   */
  let changing: Promise<void> | null = null;
  const replaceBridge = (next: () => Promise<Bridge>): Promise<void> => {
    const run = async () => {
      const old = bridge;
      bridge = undefined;
      starting = (async () => {
        await old?.stop();
        return next();
      })();
      try {
        bridge = await starting;
      } catch (e) {
        log.error(
          { err: e instanceof Error ? e.message : String(e) },
          'could not start this node’s next part; everything it set up was undone: exiting for a restart',
        );
        await hooks.roleChanged('stopped', 'could not start this node’s next part');
        process.exit(EXIT.failure);
      }
    };
    changing = (changing ?? Promise.resolve()).then(run).finally(() => (changing = null));
    return changing;
  };
  const part = partAtStart(role, inStandby(cfg));
  if (part === 'standby') {
    log.warn(
      { file: standbyFile(cfg) },
      'this node was put in standby (tcpfo standby): staying out of the pair until tcpfo unstandby',
    );
    starting = enterStandby('in standby since before this start');
  } else starting = part === 'primary' ? startPrimary() : startSecondary(cfg);
  try {
    bridge = await starting;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    log.error({ err: why }, `${role} bridge failed to start; everything it set up was undone`);
    await hooks.roleChanged('stopped', `failed to start: ${why}`);
    process.exit(EXIT.failure);
  }
  if (cfg.track) track = startTrack(cfg);

  /** The operator's commands (tcpfo switchover, standby, unstandby), one at a time. */
  const command = async (cmd: Command): Promise<CommandAnswer> => {
    if (stopping) return { ok: false, message: 'the daemon is stopping' };
    if (changing) await changing;
    const b = bridge;
    const plan = commandPlan(cmd, runningPart(b));
    // Present wherever the plan asks for it (runningPart: not starting, not standby).
    const switchover = (why: string): Promise<SwitchResult> =>
      b?.switchover?.(why) ?? Promise.resolve({ ok: false, message: 'this node is still starting' });
    switch (plan.do) {
      case 'refuse':
        return { ok: false, message: plan.message };
      case 'rejoin':
        markStandby(cfg, false);
        await replaceBridge(() => startSecondary(asSecondary(), 'back from standby'));
        return { ok: true, message: 'rejoined the pair as its secondary (new connections are replicated from now on)' };
      case 'switchover':
        return switchover('tcpfo switchover');
      case 'leave':
        markStandby(cfg, true);
        await replaceBridge(() => enterStandby('tcpfo standby'));
        return {
          ok: true,
          message:
            'in standby: the other node serves alone (its connections intact, unprotected) until tcpfo unstandby here',
        };
      case 'hand-over-then-standby': {
        // This node holds the service (the primary, or the promoted one): hand it over first.
        afterHandover = 'standby';
        const r = await switchover('tcpfo standby');
        if (!r.ok) {
          afterHandover = 'secondary';
          return { ok: false, message: `could not hand the service over first: ${r.message}` };
        }
        markStandby(cfg, true);
        await changing;
        afterHandover = 'secondary';
        return {
          ok: true,
          message: `handed over, then in standby: ${r.message.replace(/; this node becomes its secondary$/, '')}; tcpfo unstandby rejoins as its secondary`,
        };
      }
    }
  };
  const cmdPath = commandSocketPath(cfg.state_dir, cfg.instance);
  const cmdServer = await startCommands(cmdPath, command);
  stopCommandSocket = () => stopControl(cmdServer, cmdPath);

  // failover.preferred: the preferred node, back as the secondary and in
  // sync for preferred_delay_s, asks for the service back (the primary
  // refuses while any connection lives in one server only; asked again later).
  let lastAsk = -Infinity;
  let lastRefusal = '';
  preferTimer = setInterval(() => {
    const b = bridge;
    if (cfg.failover.preferred !== role || stopping || changing || !(b instanceof SecondaryBridge)) return;
    const since = b.inSyncSince();
    const now = monotonicMs();
    const delay = cfg.failover.preferred_delay_s * 1000;
    if (since === null || now - since < delay || now - lastAsk < delay) return;
    lastAsk = now;
    void b.switchover('failover.preferred').then((r) => {
      if (r.ok) log.warn({ preferred: role }, `failover.preferred: this node serves again: ${r.message}`);
      else if (r.message !== lastRefusal)
        log.info({ why: r.message }, 'failover.preferred: not switched back yet (asked again later)');
      lastRefusal = r.ok ? '' : r.message;
    });
  }, 1000);
  preferTimer.unref();
  // systemd (Type=notify): the rules are in and the service address is on lo —
  // a server ordered After= this unit can bind it now.
  sdNotify('READY=1');
  startWatchdog();
}

/** Reads the file again; applies what may change at run time, says what needs a restart. */
function reload(file: string, old: Config, log: Logger, apply: (cfg: Config) => void): void {
  let next: Config;
  try {
    next = loadConfig(file);
  } catch (e) {
    log.error(
      { err: (e as Error).message },
      'SIGHUP: the configuration is invalid: nothing reloaded, the running one stays',
    );
    noteReload(false);
    return;
  }
  const changed = RESTART_ONLY.filter((k) => JSON.stringify(pick(old, k)) !== JSON.stringify(pick(next, k)));
  if (changed.length)
    log.warn({ changed }, 'SIGHUP: these settings take effect only at a restart; they keep their running values');
  const kept = { ...next };
  for (const k of RESTART_ONLY) {
    const [top, sub] = k.split('.') as [keyof Config, string | undefined];
    if (sub)
      (kept as Record<string, unknown>)[top] = {
        ...(next[top] as object),
        [sub]: (old[top] as Record<string, unknown>)[sub],
      };
    else (kept as Record<string, unknown>)[top] = old[top];
  }
  if (!process.env.TCPFO_LOG_LEVEL) log.level = next.log_level;
  apply(kept);
  noteReload(true);
  log.info(
    { logLevel: log.level, track: Boolean(next.track), hooks: Boolean(next.hooks.on_role_change) },
    'SIGHUP: configuration reloaded (log level, hooks, track, limits); connections untouched',
  );
}

/**
 * systemd's watchdog (WatchdogSec=): WATCHDOG=1 from the event loop, at half
 * the interval systemd asked for. A loop stuck longer ends the process
 * anyway (io/presence.ts); this lets systemd see a hang it does not cause.
 */
function startWatchdog(): void {
  const us = Number(process.env.WATCHDOG_USEC);
  if (!(us > 0) || (process.env.WATCHDOG_PID && Number(process.env.WATCHDOG_PID) !== process.pid)) return;
  const t = setInterval(() => sdNotify('WATCHDOG=1'), Math.max(100, us / 2000));
  t.unref();
}
