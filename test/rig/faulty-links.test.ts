/**
 * Hostile links: loss, duplication and reordering on each host's
 * link in turn — client (C–P and C–S), primary (C–P and S–P), secondary (C–S
 * and S–P) — with and without a failover, over IPv4 and over IPv6 (a
 * dual-stack pair). Every transfer byte-exact, one sequence space, no RST at
 * the client. The bigger matrix (100 MB, more kills) is
 * bench/failover/faulty-links.ts.
 */
import { describe, expect, it } from 'vitest';
import { describeLinks, runFaultCase, type FaultCase, type LinkName } from '../../rig/faults.js';
import { slow } from '../../rig/slow.js';

const MB = 1_000_000;
const LINKS: LinkName[] = ['client', 'primary', 'secondary'];

function expectOk(c: FaultCase, r: Awaited<ReturnType<typeof runFaultCase>>): void {
  const ctx = `${describeLinks(c.links)} ${c.mode}${c.kill ? ` kill ${c.kill.node} at ${c.kill.afterMs} ms` : ''}\n${r.problems.join('\n')}\n${r.logs.slice(-4000)}`;
  expect(r.problems, ctx).toEqual([]);
  console.log(
    `${describeLinks(c.links)} ${c.mode}${c.kill ? ` (kill ${c.kill.node})` : ''}: ${r.ms} ms, longest gap ${r.maxGapMs} ms, impaired ${JSON.stringify(r.impaired)}, re-sends ${JSON.stringify(r.retransmissions ?? null)}`,
  );
}

describe('faulty links, no failover (hub mode)', () => {
  for (const link of LINKS) {
    it(
      `5% loss on the ${link} link: 10 MB each way byte-exact`,
      async () => {
        for (const mode of ['get', 'put'] as const) {
          const c: FaultCase = { links: { [link]: { loss: 0.05 } }, mode, bytes: 10 * MB };
          const r = await runFaultCase(c);
          expectOk(c, r);
          expect(r.impaired.dropped).toBeGreaterThan(10);
        }
      },
      slow(400_000),
    );

    it(
      `duplication (2%) and reordering (5%) on the ${link} link: 20 MB each way byte-exact`,
      async () => {
        for (const mode of ['get', 'put'] as const) {
          const c: FaultCase = { links: { [link]: { duplicate: 0.02, reorder: 0.05 } }, mode, bytes: 20 * MB };
          const r = await runFaultCase(c);
          expectOk(c, r);
          expect(r.impaired.duplicated).toBeGreaterThan(10);
          expect(r.impaired.delayed).toBeGreaterThan(10);
        }
      },
      slow(400_000),
    );
  }
});

describe('faulty links with a failover (hub mode)', () => {
  const all = { loss: 0.01, duplicate: 0.01, reorder: 0.02 };
  for (const ipv6 of [false, true])
    for (const [node, mode] of [
      ['primary', 'get'],
      ['secondary', 'put'],
    ] as const) {
      it(
        `1% loss, 1% duplication, 2% reordering on every link; the ${node} dies during a 100 MB ${mode}${ipv6 ? ' over IPv6 (a dual-stack pair)' : ''}: byte-exact`,
        async () => {
          const c: FaultCase = {
            links: { client: all, primary: all, secondary: all },
            mode,
            bytes: 100 * MB,
            kill: { node, afterMs: 150 + Math.floor(Math.random() * 300) },
            ipv6,
          };
          const r = await runFaultCase(c);
          expectOk(c, r);
          // The node really died mid-transfer.
          expect(r.ms).toBeGreaterThan(c.kill!.afterMs + 100);
          expect(r.logs).toMatch(
            node === 'primary' ? /took over the service address/ : /secondary failed: continuing alone/,
          );
        },
        slow(400_000),
      );
    }
});

describe('faulty links over IPv6 (a dual-stack pair, hub mode)', () => {
  for (const link of LINKS) {
    it(
      `3% loss, 2% duplication and 5% reordering on the ${link} link: 10 MB each way over IPv6 byte-exact`,
      async () => {
        for (const mode of ['get', 'put'] as const) {
          const c: FaultCase = {
            links: { [link]: { loss: 0.03, duplicate: 0.02, reorder: 0.05 } },
            mode,
            bytes: 10 * MB,
            ipv6: true,
          };
          const r = await runFaultCase(c);
          expectOk(c, r);
          // The IPv6 frames themselves were impaired.
          expect(r.impaired6.dropped).toBeGreaterThan(10);
          expect(r.impaired6.duplicated).toBeGreaterThan(10);
          expect(r.impaired6.delayed).toBeGreaterThan(10);
        }
      },
      slow(400_000),
    );
  }
});
