/**
 * The kernel's side of the secondary's failure, per connection, on the
 * primary's programs loaded but not attached (root): N connections merged
 * in the kernel, then what the bridge does for each as it goes on alone —
 * the batch of primary-only entries (one system call per 4,096, as the
 * merger's pass does), the same entries one by one, and taking
 * each connection's merge state (the control program's run and the stash).
 * Prints µs per connection. No traffic: what a loaded machine adds is
 * scale.js's to measure.
 *
 *   npm run build && node dist/bench/micro/alone-flush.js [N=50000]
 */
import { InboundXlate, type ConnAddr } from '../../bridge/io/xlate.js';
import type { PrimaryOnlyEntry } from '../../bridge/primary/merge/types.js';
import { ipv4 } from '../../net/addr.js';
import { runAsProgram, UsageError } from '../../rig/main.js';

const VIP = ipv4('192.0.2.100');
const PORT = 7000;
const BATCH = 4096;
const DSEQ = 12_345;
const DTS = 777;

export async function main(args: string[]): Promise<number> {
  const n = Number(args[0] ?? 50_000);
  if (!Number.isInteger(n) || n < 1 || n > 60_000) throw new UsageError('usage: alone-flush.js [N ≤ 60000]');
  const x = InboundXlate.loadOnly(65_536, VIP, [PORT]);
  try {
    const conns: ConnAddr[] = Array.from({ length: n }, (_, i) => ({
      client: (ipv4('10.0.0.0') + i) >>> 0,
      service: VIP,
      clientPort: 40_000 + (i % 20_000),
      servicePort: PORT,
    }));
    const entries: PrimaryOnlyEntry[] = conns.map((c) => ({
      c,
      dseq: DSEQ,
      dts: DTS,
      timestamps: true,
      wscaleP: 7,
      wscaleS: 7,
    }));
    const start = () => {
      for (const c of conns) {
        x.remove(c);
        x.add(c, DSEQ, DTS, true, 7);
        if (!x.mergeStart(c, mergeInit())) throw new Error('the kernel took no more connections');
      }
    };
    const perConn = (f: () => void) => {
      const t0 = process.hrtime.bigint();
      f();
      return Number(process.hrtime.bigint() - t0) / 1000 / n;
    };
    start();
    const batch = perConn(() => {
      for (let i = 0; i < n; i += BATCH) {
        const chunk = entries.slice(i, i + BATCH);
        if (x.primaryOnlyMany(chunk) !== chunk.length) throw new Error('the batch was refused');
      }
    });
    start();
    const single = perConn(() => {
      for (const e of entries)
        if (!x.primaryOnly(e.c, e.dseq, e.dts, e.timestamps, e.wscaleP, e.wscaleS)) throw new Error('refused');
    });
    let found = 0;
    const take = perConn(() => {
      for (const c of conns) if (x.mergeTake(c)) found++;
    });
    if (found !== n) throw new Error(`took ${found} of ${n}`);
    console.log(`${n} connections merged in the kernel, the secondary failed; µs per connection:`);
    console.log(`  primary-only entries in batches of ${BATCH}: ${batch.toFixed(2)}`);
    console.log(`  primary-only entries one by one:       ${single.toFixed(2)}`);
    console.log(`  taking the merge state (mergeTake):    ${take.toFixed(2)}`);
    for (const c of conns) x.remove(c);
    return 0;
  } finally {
    x.close();
  }
}

function mergeInit() {
  const ack = 5_000;
  return {
    acksKnown: true,
    dseq: DSEQ,
    dts: DTS,
    timestamps: true,
    wscaleP: 7,
    wscaleS: 7,
    relNxt: 1_000,
    ackP: ack,
    ackS: ack,
    winP: 64 << 7,
    winS: 64 << 7,
    ackSent: ack,
    edgeSent: ack + (64 << 7),
    tsvalMax: 40_000,
    tsecr: 9,
  };
}

runAsProgram(import.meta.url, main);
