/**
 * Two nodes configured differently say so: the secondary restarted with
 * another port list makes both bridges log what differs, export
 * tcpfo_peer_config_mismatch 1 and show it in status; the right file again
 * clears it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { waitForLog } from '../../rig/failover.js';
import { distScript } from '../../rig/dist.js';
import { TcpfoPair } from '../../rig/pair.js';
import { scrapeMetrics } from '../../rig/metrics.js';
import { withRig, type Rig } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

async function mismatch(rig: Rig, node: string): Promise<number> {
  return (await scrapeMetrics(rig, node))('tcpfo_peer_config_mismatch');
}

async function until(what: () => Promise<boolean>, ms: number, why: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await what())) {
    if (Date.now() > end) throw new Error(why());
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('mismatched nodes (hub mode)', () => {
  it(
    'the secondary with another port list: a log line naming it, the metric on both nodes, status; the same file again clears it',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await TcpfoPair.start(rig);
        try {
          await until(
            async () => (await mismatch(rig, 'primary')) === 0,
            5000,
            () => `never matched:\n${pair.logs()}`,
          );
          const file = pair.configFor('secondary');
          const good = readFileSync(file, 'utf8');
          writeFileSync(file, good.replace(/ports: \[7000\]/, 'ports: [7000, 7001]'));
          await TcpfoPair.stopDaemon(pair.secondary);
          pair.secondary = await pair.startDaemon(rig.host('secondary'), 'secondary');
          await waitForLog(
            pair,
            /the peer’s configuration differs: service.ports 7000 here, 7000,7001 on the peer: connections on a port only one node lists are not protected/,
          );
          await waitForLog(pair, /the peer’s configuration differs: service.ports 7000,7001 here, 7000 on the peer/);
          await until(
            async () => (await mismatch(rig, 'primary')) === 1 && (await mismatch(rig, 'secondary')) === 1,
            5000,
            () => `no metric:\n${pair.logs()}`,
          );
          const st = await rig
            .host('primary')
            .exec([process.execPath, distScript('cli.js'), 'status', '-c', pair.configFor('primary')]);
          expect(st.stdout).toMatch(
            /^config\s+differs from the peer's: service.ports 7000 here, 7000,7001 on the peer/m,
          );
          writeFileSync(file, good);
          await TcpfoPair.stopDaemon(pair.secondary);
          pair.secondary = await pair.startDaemon(rig.host('secondary'), 'secondary');
          await until(
            async () => (await mismatch(rig, 'primary')) === 0 && (await mismatch(rig, 'secondary')) === 0,
            5000,
            () => `not cleared:\n${pair.logs()}`,
          );
        } finally {
          await pair.stop();
        }
      });
    },
    slow(60_000),
  );
});
