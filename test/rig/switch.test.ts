/**
 * An ordinary learning switch (lan.mode: switch): the secondary sees none of
 * the client's frames to the primary, so the primary copies each one to it,
 * in the kernel. Replication, failover of either node, the secondary leaving
 * and rejoining, a role swap — all byte-exact, on the kernel paths and on the
 * paper's user-space path.
 */
import { describe, expect, it } from 'vitest';
import { Capture } from '../../rig/capture.js';
import { killNode, restartNode, waitForLog } from '../../rig/failover.js';
import { nstatCounters } from '../../rig/metrics.js';
import { checkTransparency } from '../../rig/oracle.js';
import { DEMO_PORT, finalCounters, TcpfoPair, transfer, VIP, VIP6 } from '../../rig/pair.js';
import { withRig, type Rig } from '../../rig/rig.js';
import { distScript } from '../../rig/dist.js';
import { slow } from '../../rig/slow.js';

const MB = 1_000_000;
/** The kernel paths on both nodes, or the paper's user-space path (the nft copy then). */
const PATHS = [
  { datapath: 'kernel', inbound: 'kernel' },
  { datapath: 'pcap', inbound: 'queue' },
] as const;
const yaml = (p: (typeof PATHS)[number], extra = '') => `inbound: ${p.inbound}\n${extra}`;

/**
 * The secondary's segments that did not fit the MTU on their way to the primary: IPv4
 * ones it could not fragment, IPv6 ones it told itself were too big. The copies reach
 * its TCP unclamped; the pcap path clamps their SYNs' MSS so that the divert option fits.
 */
async function oversized(rig: Rig): Promise<Record<string, number | undefined>> {
  return nstatCounters(rig.host('secondary'), ['IpFragFails', 'Icmp6OutPktTooBigs']);
}

describe.each(PATHS)('learning switch (datapath $datapath, inbound $inbound)', (path) => {
  it(
    '100 MB down and up, byte-exact, one sequence space at the client; the copies really made',
    async () => {
      await withRig({ mode: 'switch' }, async (rig) => {
        const pair = await TcpfoPair.start(rig, {
          heartbeatTimeoutMs: 500,
          datapath: path.datapath,
          extraYaml: yaml(path),
        });
        try {
          const c = rig.host('client');
          const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'sw', 96);
          const get = await transfer(c, 'get', 100 * MB, 51);
          expect(get.sha256, pair.logs()).toBe(get.expected);
          const put = await transfer(c, 'put', 100 * MB, 52);
          expect(put.reply, pair.logs()).toBe(`OK ${put.sha256}`);
          expect(await oversized(rig)).toEqual({ IpFragFails: 0, Icmp6OutPktTooBigs: 0 });
          expect(checkTransparency(await cap.stop(), VIP, DEMO_PORT).problems).toEqual([]);
        } finally {
          await pair.stop();
        }
        const p = finalCounters(pair.primary!.log) as {
          lanMode: string;
          kernelInbound?: { duplicated: number };
          merger: { divergences: number; divertedSegments: number };
        };
        expect(p.lanMode).toBe('switch');
        expect(p.merger.divergences).toBe(0);
        // S produced the answers: it got the client's segments (the copies) and diverted its own.
        expect(p.merger.divertedSegments).toBeGreaterThan(1000);
        if (path.inbound === 'kernel') expect(p.kernelInbound!.duplicated).toBeGreaterThan(1000);
      });
    },
    slow(180_000),
  );

  it(
    'over IPv6 (a dual-stack pair): the IPv6 frames are copied too: a download survives the death of the primary, byte-exact, no RST',
    async () => {
      await withRig({ mode: 'switch', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { datapath: path.datapath, extraYaml: yaml(path), ipv6: true });
        try {
          const c = rig.host('client');
          const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'sw6', 96);
          const t = transfer(c, 'get', 30 * MB, 54, 120_000, VIP6);
          await new Promise((res) => setTimeout(res, 500 + Math.floor(Math.random() * 1000)));
          // The secondary serves it from the copies alone: the primary's table made them.
          const table = await rig.host('primary').sh('nft list table netdev tcpfo_tp', { allowFail: true });
          expect(table.stdout, table.stderr).toMatch(
            /ip6 daddr 2001:db8::100 tcp dport 7000 dup to "eth0" counter packets [1-9]/,
          );
          await killNode(pair, 'primary');
          const r = await t;
          expect(await oversized(rig)).toEqual({ IpFragFails: 0, Icmp6OutPktTooBigs: 0 });
          console.log(
            `switch, IPv6 (${path.datapath}): connected in ${r.connectMs} ms, copies at the kill ${/ip6 daddr .* dup to "eth0" counter packets (\d+)/.exec(table.stdout)?.[1]}, stall ${r.maxGapMs} ms, total ${r.ms} ms`,
          );
          expect(r.error, pair.logs()).toBeUndefined();
          expect(r.sha256).toBe(r.expected);
          expect(checkTransparency(await cap.stop(), VIP6, DEMO_PORT).problems).toEqual([]);
          expect(pair.logs()).toMatch(/took over the service address/);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(150_000),
  );

  for (const node of ['primary', 'secondary'] as const) {
    for (const mode of ['get', 'put'] as const) {
      it(
        `kill the ${node} during a 50 MB ${mode === 'get' ? 'download' : 'upload'} (100 Mbit/s client link): byte-exact, no RST`,
        async () => {
          await withRig({ mode: 'switch', links: { client: { rateMbit: 100 } } }, async (rig) => {
            const pair = await TcpfoPair.start(rig, { datapath: path.datapath, extraYaml: yaml(path) });
            try {
              const c = rig.host('client');
              const cap = await Capture.start(c, `tcp port ${DEMO_PORT}`, 'swfo', 96);
              const t = transfer(c, mode, 50 * MB, 53, 120_000);
              await new Promise((res) => setTimeout(res, 500 + Math.floor(Math.random() * 1500)));
              await killNode(pair, node);
              const r = await t;
              expect(r.error, pair.logs()).toBeUndefined();
              if (mode === 'get') expect(r.sha256).toBe(r.expected);
              else expect(r.reply).toBe(`OK ${r.sha256}`);
              expect(checkTransparency(await cap.stop(), VIP, DEMO_PORT).problems).toEqual([]);
              expect(pair.logs()).toMatch(
                node === 'primary' ? /took over the service address/ : /secondary failed: continuing alone/,
              );
            } finally {
              await pair.stop();
            }
          });
        },
        slow(150_000),
      );
    }
  }
});

describe('learning switch: the life of the copies', () => {
  it(
    'the secondary leaves: the primary stops copying; it rejoins: copying again, and new connections survive a primary failure',
    async () => {
      await withRig({ mode: 'switch', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, {});
        try {
          const c = rig.host('client');
          const status = async () =>
            JSON.parse(
              (
                await rig
                  .host('primary')
                  .exec([process.execPath, distScript('cli.js'), 'status', '--json', '-c', pair.configFor('primary')])
              ).stdout,
            ) as { copyingToSecondary: boolean };
          expect((await status()).copyingToSecondary).toBe(true);
          await killNode(pair, 'secondary');
          await waitForLog(pair, /secondary failed: continuing alone/);
          for (let i = 0; i < 50 && (await status()).copyingToSecondary; i++)
            await new Promise((res) => setTimeout(res, 50));
          expect((await status()).copyingToSecondary).toBe(false);
          await restartNode(pair, 'secondary');
          await waitForLog(pair, /secondary rejoined/);
          for (let i = 0; i < 50 && !(await status()).copyingToSecondary; i++)
            await new Promise((res) => setTimeout(res, 50));
          expect((await status()).copyingToSecondary).toBe(true);
          const t = transfer(c, 'get', 30 * MB, 54, 120_000);
          await new Promise((res) => setTimeout(res, 800));
          await killNode(pair, 'primary');
          const r = await t;
          expect(r.error, pair.logs()).toBeUndefined();
          expect(r.sha256).toBe(r.expected);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(150_000),
  );

  it(
    'roles swapped: the restarted primary joins as secondary, the new primary copies to it; a new connection survives the next failure',
    async () => {
      await withRig({ mode: 'switch', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { extraYaml: 'failover:\n  rejoin: swap-roles\n' });
        try {
          const c = rig.host('client');
          const old = transfer(c, 'get', 40 * MB, 55, 120_000);
          await new Promise((res) => setTimeout(res, 500));
          await killNode(pair, 'primary');
          await waitForLog(pair, /took over the service address/);
          await restartNode(pair, 'primary');
          await waitForLog(pair, /now the primary \(roles swapped\)/);
          const fresh = transfer(c, 'get', 30 * MB, 56, 120_000);
          await new Promise((res) => setTimeout(res, 1000));
          const r1 = await old;
          expect(r1.error, pair.logs()).toBeUndefined();
          expect(r1.sha256).toBe(r1.expected);
          await killNode(pair, 'secondary'); // primary since the swap
          const r2 = await fresh;
          expect(r2.error, pair.logs()).toBeUndefined();
          expect(r2.sha256).toBe(r2.expected);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(150_000),
  );

  it(
    'only the primary’s bridge is SIGKILLed (node alive, its copy rules left): the secondary takes over, the download completes byte-exact',
    async () => {
      await withRig({ mode: 'switch', links: { client: { rateMbit: 100 } } }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { extraYaml: 'failover:\n  rejoin: swap-roles\n' });
        try {
          const c = rig.host('client');
          const t = transfer(c, 'get', 30 * MB, 57, 120_000);
          await new Promise((res) => setTimeout(res, 700));
          pair.primary!.proc.kill('SIGKILL');
          await waitForLog(pair, /took over the service address/);
          const r = await t;
          expect(r.error, pair.logs()).toBeUndefined();
          expect(r.sha256).toBe(r.expected);
        } finally {
          await pair.stop();
        }
      });
    },
    slow(150_000),
  );
});
