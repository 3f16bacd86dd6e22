/**
 * Bad input on the data path: mutated packets of real
 * connections into every entry of the merger and the diverter. CI runs a few
 * hundred thousand; `node dist/bench/failover/fuzz.js` runs millions.
 */
import { describe, expect, it } from 'vitest';
import { ipv4 } from '../../net/addr.js';
import { readPcap } from '../../rig/capture.js';
import { captureCorpus, fuzz, harnessCorpus } from '../../rig/in-process/fuzz-engine.js';
import { V4, V6 } from '../../rig/in-process/harness.js';

const expectClean = (r: ReturnType<typeof fuzz>) => {
  expect(r.firstThrow).toBeUndefined();
  expect(r.throws).toBe(0);
  expect(r.badVerdicts).toBe(0);
  expect(r.leftWithoutVerdict).toBe(0);
  expect(r.boundViolations).toBe(0);
};

describe('fuzzing the merger and the diverter', () => {
  it('a harness connection (handshake, data, SACK, FIN, wrapping numbers), mutated: 300k packets', () => {
    for (const seed of [1, 2, 3]) {
      const r = fuzz(100_000, seed, harnessCorpus());
      expectClean(r);
      // The mutations reached the merger's tables, not only its parsers.
      expect(r.maxConnections).toBeGreaterThan(5);
      expect(r.maxStoredBytes).toBeGreaterThan(0);
    }
  });

  it('an IPv6 harness connection, mutated: 200k packets', () => {
    for (const seed of [21, 22]) {
      const r = fuzz(100_000, seed, harnessCorpus(V6));
      expectClean(r);
      expect(r.maxConnections).toBeGreaterThan(5);
      expect(r.maxStoredBytes).toBeGreaterThan(0);
    }
  });

  it('both families at once (an address of one family naming a packet of the other too), mutated: 100k packets', () => {
    const v4 = harnessCorpus(V4);
    const v6 = harnessCorpus(V6);
    const both = { ...v4 };
    for (const k of ['primary', 'diverted', 'client', 'secondaryOut', 'frames'] as const)
      both[k] = [...v4[k], ...v6[k]];
    for (const clientAddr of [V4.client, V6.client]) {
      const r = fuzz(50_000, 31, { ...both, clientAddr });
      expectClean(r);
      expect(r.maxConnections).toBeGreaterThan(5);
    }
  });

  it('a real client capture through the pair (test/fixtures/client-capture.pcap), mutated: 200k packets', async () => {
    const frames = await readPcap('test/fixtures/client-capture.pcap');
    expect(frames.length).toBeGreaterThan(40);
    const corpus = captureCorpus(frames, ipv4('192.0.2.100'));
    expect(corpus.client.length).toBeGreaterThan(10);
    expect(corpus.primary.length).toBeGreaterThan(10);
    for (const seed of [11, 12]) {
      const r = fuzz(100_000, seed, corpus);
      expectClean(r);
      expect(r.maxConnections).toBeGreaterThan(1);
    }
  });
});
