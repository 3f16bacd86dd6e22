#!/usr/bin/env node
/** tcpfo — transparent TCP connection failover. The one command-line entry point. */
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Argument, Command, Option } from 'commander';
import { cleanupNode, DEFAULT_STATE_DIR } from './bridge/io/cleanup.js';
import { describeChange } from './bridge/io/node-state.js';
import { ConfigError, lenientYaml, loadConfig, type Config } from './config/config.js';
import { VERSION } from './bridge/version.js';

import { EXIT, runDaemon } from './bridge/node/daemon.js';
import { isPrimaryStatus, isSecondaryStatus, type ReportedStatus } from './bridge/node/status.js';
import { STEP_WORDS } from './bridge/node/role-machine.js';

const program = new Command();
program
  .name('tcpfo')
  .description(
    'Transparent TCP connection failover for a primary/secondary server pair (Koch et al., active replication).',
  )
  .version(VERSION)
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 invalid configuration,
4 a daemon stopped itself because its event loop or data path was stuck (the peer takes over),
5 status: no bridge runs here, 6 status: permission denied (run as root),
7 a daemon gave up its part because its local server failed its checks (track),
8 a bridge of this instance already runs on this node (primary, secondary, cleanup: nothing was changed),
9 switchover, standby, unstandby: refused, with why (nothing was changed).
Example: tcpfo check-config -c /etc/tcpfo/tcpfo.yaml && tcpfo primary -c /etc/tcpfo/tcpfo.yaml`,
  );
program.exitOverride((err) => {
  process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage);
});

const DEFAULT_CONFIG = '/etc/tcpfo/tcpfo.yaml';

function configOption(): Option {
  return new Option('-c, --config <file>', 'YAML configuration (same file on both nodes)').default(DEFAULT_CONFIG);
}

function load(file: string): Config {
  try {
    return loadConfig(file);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      process.exit(EXIT.config);
    }
    throw e;
  }
}

program
  .command('primary')
  .description('run the primary bridge: merge both servers’ output, hold the service address')
  .addOption(configOption())
  .action(async (o: { config: string }) => runDaemon('primary', o.config));

program
  .command('secondary')
  .description('run the secondary bridge: capture client frames, divert replies to the primary')
  .addOption(configOption())
  .action(async (o: { config: string }) => runDaemon('secondary', o.config));

program
  .command('check-config')
  .description('validate a configuration file and print it normalised; installs nothing')
  .addOption(configOption())
  .option('-q, --quiet', 'print nothing when the file is valid (for ExecStartPre)')
  .action(async (o: { config: string; quiet?: boolean }) => {
    const cfg = load(o.config);
    // What the file names must be usable too: the heartbeat key.
    const { readKey } = await import('./bridge/detector/peer-link.js');
    try {
      readKey(cfg.heartbeat.key_file);
    } catch (e) {
      console.error(`${cfg.file}: invalid configuration:\n  - heartbeat.key_file: ${(e as Error).message}`);
      process.exit(EXIT.config);
    }
    // And the role hook's program, where the command names one by its path.
    const hook = cfg.hooks.on_role_change?.trim().split(/\s+/)[0];
    if (hook?.startsWith('/')) {
      try {
        accessSync(hook, constants.X_OK);
      } catch (e) {
        console.error(
          `${cfg.file}: invalid configuration:\n  - hooks.on_role_change: ${hook}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'not executable'}`,
        );
        process.exit(EXIT.config);
      }
    }
    if (o.quiet) return;
    console.log(JSON.stringify(cfg, null, 2));
    // What the data paths will find on this node's kernel (to stderr: stdout is the config).
    const { describeKernel, thisKernel } = await import('./bridge/io/kernel-facilities.js');
    console.error(describeKernel(thisKernel()));
  });

/**
 * Where the running bridge answers (state_dir, instance): from the file, or —
 * a file half edited since the bridge started — from what of it still reads,
 * else the defaults, with a warning: the bridge runs on what it loaded.
 */
function whereBridgeListens(file: string): { state_dir: string; instance: string } {
  try {
    return loadConfig(file);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const raw = lenientYaml(file);
    const at = {
      state_dir: typeof raw.state_dir === 'string' ? raw.state_dir : '/run/tcpfo',
      instance: typeof raw.instance === 'string' ? raw.instance : 'tcpfo',
    };
    console.error(`${e.message}\ntcpfo: asking the bridge at ${at.state_dir} (instance ${at.instance}) all the same`);
    return at;
  }
}

program
  .command('status')
  .description('role, peer health and connections of the bridge running on this node')
  .addOption(configOption())
  .option('--json', 'print the full status as JSON')
  .action(async (o: { config: string; json?: boolean }) => {
    const cfg = whereBridgeListens(o.config);
    const { controlSocketPath, readStatus } = await import('./bridge/node/control.js');
    const found: ReportedStatus[] = [];
    const failed: Array<{ why: string; detail: string }> = [];
    for (const r of ['p', 's'] as const) {
      const st = await readStatus(controlSocketPath(cfg.state_dir, cfg.instance, r));
      if (st.ok) found.push(st.status);
      else failed.push(st);
    }
    if (!found.length) {
      const denied = failed.find((f) => f.why === 'permission-denied');
      const silent = failed.find((f) => f.why === 'no-answer');
      const why = denied
        ? `permission denied: ${denied.detail}`
        : silent
          ? `a bridge runs but does not answer: ${silent.detail}`
          : `no bridge is running here (no control socket answers at ${cfg.state_dir}/${cfg.instance}{p,s}.sock)`;
      const code = denied ? EXIT.permission : silent ? EXIT.failure : EXIT.notRunning;
      // --json: still one JSON document on stdout, for a script.
      if (o.json) console.log(JSON.stringify({ running: false, why, exitCode: code }, null, 2));
      console.error(`tcpfo: ${why}`);
      process.exit(code);
    }
    for (const st of found) {
      if (o.json) {
        console.log(JSON.stringify(st, null, 2));
        continue;
      }
      // What the daemon answered, each part only where present: a daemon of another version
      // (during an upgrade) may lack one, and one whose status failed says only why.
      if ('error' in st) {
        console.log(`status       ${st.error}`);
        continue;
      }
      const step = 'step' in st && st.step ? STEP_WORDS[st.step] : undefined;
      console.log(`role         ${st.role}${step ? ` (${step})` : ''}`);
      if (isPrimaryStatus(st)) {
        if (st.inbound)
          console.log(
            `inbound      ${st.inbound}${st.inboundUnavailable ? ` (kernel translation unavailable: ${st.inboundUnavailable})` : ''}`,
          );
        if (st.merge)
          console.log(
            `merge        ${st.merge === 'kernel' ? 'kernel (the common case in tc programs; closes and the rest in the queue)' : st.merge === 'release' ? 'release (primary-only connections in the kernel; the merge in the queue)' : 'queue'}${st.mergeUnavailable ? ` (kernel release unavailable: ${st.mergeUnavailable})` : ''}`,
          );
        if (st.handshakes) console.log(`handshakes   merged in the ${st.handshakes}`);
      } else if (isSecondaryStatus(st) && st.datapath)
        console.log(
          `datapath     ${st.datapath}${st.kernelPathUnavailable ? ` (kernel path unavailable: ${st.kernelPathUnavailable})` : ''}`,
        );
      const kern = st.kernel;
      if (kern)
        console.log(
          `kernel       ${kern.release}; retransmission bound on ${kern.rtoBound ?? '-'}${kern.lacks.length ? `; lacks ${kern.lacks.join(', ')}` : ''}`,
        );
      if (st.role === 'standby') {
        console.log(`peer         ${st.peer}`);
        console.log(`standby      since ${st.since} (${st.reason}): tcpfo unstandby rejoins the pair`);
        continue;
      }
      const hb = st.heartbeat;
      console.log(
        `peer         ${st.peer ?? 'not yet known'} (heartbeats received ${hb?.received ?? 0}, rtt ${hb?.lastRttMs ?? '-'} ms)`,
      );
      // The threads whose lateness the peer would take for death (scheduling.realtime_priority).
      const rt = [
        st.arp?.realtime ? `ARP answers ${st.arp.realtime}` : null,
        st.heartbeatSocket?.realtime ? `heartbeats ${st.heartbeatSocket.realtime}` : null,
      ].filter((x) => x !== null);
      if (rt.length) console.log(`realtime     ${rt.join(', ')}`);
      const pc = st.peerConfig;
      if (pc)
        console.log(
          `config       ${pc.differences.length ? `differs from the peer's: ${pc.differences.join('; ')}` : `matches the peer's (tcpfo ${pc.peer.version})`}`,
        );
      if (isPrimaryStatus(st)) {
        if (st.connections)
          console.log(
            `connections  ${
              Object.entries(st.connections)
                .map(([k, v]) => `${k} ${v}`)
                .join(', ') || 'none'
            }`,
          );
        if (st.switchover)
          console.log(
            `switchover   ${st.switchover === 'ready' ? 'ready (tcpfo switchover)' : `refused now: ${st.switchover}`}`,
          );
      } else if (typeof st.divergedReported === 'number')
        console.log(`diverged     ${st.divergedReported} (reset, not continued, if this node takes over)`);
    }
  });

/** Sends an operator's command to the daemon running on this node; prints its answer; exits 0, 9 (refused), 5 (none runs) or 6. */
async function commandAction(
  cmd: 'switchover' | 'standby' | 'unstandby',
  o: { config: string; timeout: string },
): Promise<void> {
  const cfg = whereBridgeListens(o.config);
  const secs = Number(o.timeout);
  if (!Number.isFinite(secs) || secs <= 0) {
    console.error(`tcpfo: --timeout ${o.timeout}: a number of seconds above 0`);
    process.exit(EXIT.usage);
  }
  const { commandSocketPath, sendCommand } = await import('./bridge/node/control.js');
  const r = await sendCommand(commandSocketPath(cfg.state_dir, cfg.instance), cmd, secs * 1000);
  if (!r.ok) {
    console.error(`tcpfo: ${r.why === 'not-running' ? `no tcpfo daemon runs here: ${r.detail}` : r.detail}`);
    process.exit(
      r.why === 'not-running' ? EXIT.notRunning : r.why === 'permission-denied' ? EXIT.permission : EXIT.failure,
    );
  }
  if (r.answer.ok) console.log(`tcpfo ${cmd}: ${r.answer.message}`);
  else console.error(`tcpfo ${cmd}: refused: ${r.answer.message}`);
  process.exit(r.answer.ok ? EXIT.ok : EXIT.refused);
}

const timeoutOption = () => new Option('--timeout <seconds>', 'how long to wait for the daemon’s answer').default('30');

program
  .command('switchover')
  .description(
    'planned switchover, run on either node: the secondary takes the service over and the primary becomes its secondary; every connection stays open; refused (exit 9) unless the pair is in sync',
  )
  .addOption(configOption())
  .addOption(timeoutOption())
  .action(async (o: { config: string; timeout: string }) => commandAction('switchover', o));

program
  .command('standby')
  .description(
    'take this node out of the pair for maintenance (a primary hands the service over first); it stays out, across restarts, until unstandby',
  )
  .addOption(configOption())
  .addOption(timeoutOption())
  .action(async (o: { config: string; timeout: string }) => commandAction('standby', o));

program
  .command('unstandby')
  .description('bring this node back from standby: it rejoins the pair as the secondary')
  .addOption(configOption())
  .addOption(timeoutOption())
  .action(async (o: { config: string; timeout: string }) => commandAction('unstandby', o));

/**
 * The demo and the benches live in a source checkout (bench/, rig/), not
 * in the installed package: import the script and call its main (its rig
 * removes itself on Ctrl-C); its status is ours.
 */
const scriptFile = (script: string) => join(dirname(fileURLToPath(import.meta.url)), script);
/** The demo and the benches are listed only where they can run (a source checkout, built). */
const fromCheckout = { hidden: !existsSync(scriptFile('bench/demo.js')) };

async function runScript(script: string, args: string[]): Promise<void> {
  const file = scriptFile(script);
  if (!existsSync(file)) {
    console.error(
      `tcpfo: ${script} is not part of the installed package; run it from a source checkout (npm ci && npm run build)`,
    );
    process.exit(EXIT.failure);
  }
  const { main } = (await import(pathToFileURL(file).href)) as { main: (args: string[]) => Promise<number> };
  process.exitCode = await main(args);
}

program
  .command('demo', fromCheckout)
  .description('run the failover demo in network namespaces on this machine (root; from a source checkout)')
  .option('--ipv6', 'a dual-stack pair, the download over IPv6')
  .action((opts: { ipv6?: boolean }) => runScript('bench/demo.js', opts.ipv6 ? ['--ipv6'] : []));

program
  .command('bench', fromCheckout)
  .description(
    'plain TCP against tcpfo in network namespaces (root; from a source checkout): paper — the paper’s measurements at 100 Mbit/s, 1 Gbit/s and unshaped; interactive — request/answer workloads; all — both on every LAN mode, with bench/results/summary.md',
  )
  .addArgument(new Argument('[suite]', 'what to measure').choices(['paper', 'interactive', 'all']).default('paper'))
  .option('--quick', 'smaller streams and fewer repetitions')
  .addOption(
    new Option(
      '--lan <mode>',
      'paper only: hub (as in the paper), mirror (a switch mirroring the client’s frames to both nodes) or switch (an ordinary learning switch); reports under bench/results/',
    )
      .choices(['hub', 'mirror', 'switch'])
      .default('hub'),
  )
  .action((suite: string, o: { quick?: boolean; lan: string }) => {
    const quick = o.quick ? ['--quick'] : [];
    if (suite === 'paper') return runScript('bench/figures/paper.js', [...quick, '--lan', o.lan]);
    return runScript(suite === 'all' ? 'bench/figures/all.js' : 'bench/figures/interactive.js', quick);
  });

program
  .command('campaign', fromCheckout)
  .description(
    'kill campaign: kill either node at random moments during transfers (root; from a source checkout); N kills per workload',
  )
  .argument('[kills]', 'kills per workload', '30')
  .action((kills: string) => {
    if (!/^[1-9][0-9]*$/.test(kills)) program.error(`campaign: kills must be a positive whole number, not "${kills}"`);
    return runScript('bench/failover/failover-campaign.js', [kills]);
  });

program
  .command('cleanup')
  .description(
    'remove rules, addresses and settings a killed tcpfo daemon left on this node; refuses while a bridge runs',
  )
  .option('--state-dir <dir>', 'where daemons journal their changes', DEFAULT_STATE_DIR)
  .option(
    '--force',
    'stop the bridges that run (SIGTERM: each undoes its own changes; SIGKILL after 30 s), then clean up',
  )
  .action(async (opts: { stateDir: string; force?: boolean }) => {
    const { lockIdleInstances } = await import('./bridge/io/lock.js');
    // The locks of idle instances are ours from here on: no bridge starts while we clean.
    let running = lockIdleInstances(opts.stateDir);
    if (running.length && !opts.force) {
      const who = running.map((r) => `instance ${r.instance}${r.pid ? ` (pid ${r.pid})` : ''}`).join(', ');
      console.error(
        `tcpfo cleanup: a bridge runs on this node: ${who}. Nothing was changed: cleaning up would take a live node's rules and service address away. Stop it (systemctl stop tcpfo), or run cleanup --force to stop it first.`,
      );
      process.exit(EXIT.alreadyRunning);
    }
    if (running.length) running = await stopBridges(opts.stateDir, running, lockIdleInstances);
    if (running.length) {
      console.error(
        `tcpfo cleanup: ${running.map((r) => `pid ${r.pid}`).join(', ')} still hold their locks after SIGKILL; nothing was changed`,
      );
      process.exit(EXIT.failure);
    }
    const r = await cleanupNode(opts.stateDir);
    const what = [
      ...r.ruleTags.map((t) => `rules of instance ${t}`),
      ...(r.divertRoutes ? ['the secondary’s divert routing'] : []),
      ...r.xlate.map((dev) => `the primary’s translation program on ${dev}`),
      ...r.pins.map((path) => `the primary’s netfilter match ${path}`),
      ...r.changes.map(describeChange),
    ];
    console.log(what.length ? `cleanup: restored ${what.length}: ${what.join(', ')}` : 'cleanup: nothing to do');
  });

/**
 * cleanup --force: SIGTERM to each running bridge (it stops in order and
 * undoes its own changes), SIGKILL to one still running after 30 s; returns
 * those whose lock is still held at the end.
 */
async function stopBridges(
  stateDir: string,
  running: Array<{ instance: string; pid: number }>,
  relock: (dir: string) => Array<{ instance: string; pid: number }>,
): Promise<Array<{ instance: string; pid: number }>> {
  const signal = (sig: NodeJS.Signals) => {
    for (const r of running) {
      if (!r.pid) continue;
      try {
        process.kill(r.pid, sig);
        console.error(`tcpfo cleanup: ${sig} to the bridge of instance ${r.instance} (pid ${r.pid})`);
      } catch {
        /* gone already */
      }
    }
  };
  const waitFor = async (ms: number) => {
    const until = performance.now() + ms;
    while (running.length && performance.now() < until) {
      await new Promise((res) => setTimeout(res, 100));
      running = relock(stateDir);
    }
  };
  signal('SIGTERM');
  await waitFor(30_000);
  if (!running.length) return running;
  signal('SIGKILL');
  await waitFor(5_000);
  return running;
}

program.parseAsync(process.argv).catch((e: unknown) => {
  console.error(`tcpfo: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(EXIT.failure);
});
