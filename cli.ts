#!/usr/bin/env node
/** tcpfo — transparent TCP connection failover. The one command-line entry point. */
import { Command } from 'commander';
import { cleanupNode, DEFAULT_STATE_DIR } from './bridge/io/cleanup.js';

const program = new Command();
program
  .name('tcpfo')
  .description('Transparent TCP connection failover for a primary/secondary server pair (Koch et al.)')
  .version('0.1.0');

program
  .command('cleanup')
  .description('remove rules, addresses and settings a killed tcpfo daemon left on this node')
  .option('--state-dir <dir>', 'where daemons journal their changes', DEFAULT_STATE_DIR)
  .action(async (opts: { stateDir: string }) => {
    const r = await cleanupNode(opts.stateDir);
    const what = [
      ...r.ruleTags.map((t) => `rules of instance ${t}`),
      ...r.changes.map((c) => (c.kind === 'sysctl' ? `sysctl ${c.key}=${c.previous}` : c.kind === 'promisc' ? `promisc ${c.dev} ${c.previous ? 'on' : 'off'}` : `address ${c.cidr} off ${c.dev}`)),
    ];
    console.log(what.length ? `cleanup: restored ${what.length}: ${what.join(', ')}` : 'cleanup: nothing to do');
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  console.error(`tcpfo: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
