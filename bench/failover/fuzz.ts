/**
 * The data-path fuzzer at scale: millions of mutated packets
 * into the merger and the diverter, from the harness's connection and from a
 * real capture. Prints packets/s, failures and the heap after each round.
 *
 *   npm run build && node dist/bench/failover/fuzz.js [millions=5] [capture.pcap]
 */
import { ipv4 } from '../../net/addr.js';
import { readPcap } from '../../rig/capture.js';
import { captureCorpus, fuzz, harnessCorpus } from '../../rig/in-process/fuzz-engine.js';
import { runAsProgram, UsageError } from '../../rig/main.js';

export async function main(argv: string[]): Promise<number> {
  const millions = Number(argv[0] ?? 5);
  const pcap = argv[1] ?? 'test/fixtures/client-capture.pcap';
  if (!(millions > 0)) {
    throw new UsageError('usage: fuzz.js [millions>0] [capture.pcap]');
  }
  const corpora = { harness: harnessCorpus(), capture: captureCorpus(await readPcap(pcap), ipv4('192.0.2.100')) };
  let failed = 0;
  let total = 0;
  const ROUND = 500_000;
  const rounds = Math.ceil((millions * 1e6) / ROUND);
  for (let i = 0; i < rounds; i++) {
    const name = i % 2 === 0 ? 'harness' : 'capture';
    const r = fuzz(ROUND, 1000 + i, corpora[name]);
    total += r.packets;
    const bad = r.throws + r.badVerdicts + r.leftWithoutVerdict + r.boundViolations;
    failed += bad;
    const heapMb = process.memoryUsage().heapUsed / 1e6;
    console.log(
      `round ${i + 1}/${rounds} (${name}, seed ${1000 + i}): ${r.packets} packets, ${Math.round(r.packets / (r.ms / 1000))} pkt/s, ` +
        `throws ${r.throws}, bad verdicts ${r.badVerdicts}, left held ${r.leftWithoutVerdict}, bound violations ${r.boundViolations}, ` +
        `peak table ${r.maxConnections}, peak store ${r.maxStoredBytes} B, heap ${heapMb.toFixed(1)} MB${r.firstThrow ? `\n  ${r.firstThrow}` : ''}`,
    );
  }
  console.log(`\n${total} packets, ${failed === 0 ? 'no failure' : `${failed} FAILURES`}`);
  return failed ? 1 : 0;
}

runAsProgram(import.meta.url, main);
