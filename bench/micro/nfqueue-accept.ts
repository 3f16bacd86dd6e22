/**
 * Accept-all NFQUEUE program for bench/nfqueue-throughput: queues a port's
 * outgoing TCP and accepts each drained batch with one batch verdict, parsing
 * every packet's IPv4/TCP header on the way (as a bridge would). Prints stats
 * as JSON on SIGTERM.
 *
 *   node nfqueue-accept.js TAG QNUM PORT gso|nogso [copyRange]
 */
import { PacketQueue } from '../../bridge/io/nfqueue.js';
import { RuleSet } from '../../bridge/io/rules.js';
import { parseIpv4Tcp } from '../../bridge/wire/tcp.js';
import { WireError } from '../../bridge/wire/error.js';

const [tag, qnum, port, mode, copy] = process.argv.slice(2);
let bytes = 0;
let maxLen = 0;
let parseErrors = 0;
const q = new PacketQueue(
  Number(qnum),
  { maxLen: 8192, gso: mode === 'gso', rcvbuf: 32 << 20, copyRange: Number(copy ?? 0xffff) },
  (batch, qq) => {
    for (let i = 0; i < batch.count; i++) {
      const len = batch.length(i);
      bytes += len;
      if (len < 40) continue;
      if (len > maxLen) maxLen = len;
      // With a short copy range only the headers are here: check them, not the lengths.
      if (copy === undefined && parseIpv4Tcp(batch.packet(i)) instanceof WireError) parseErrors++;
    }
    qq.acceptAll(batch.lastId());
  },
);
const rules = await RuleSet.install(
  tag!,
  [
    {
      hook: 'output',
      match: { dports: [Number(port)] },
      action: { queue: Number(qnum), bypass: false },
      comment: 'bench',
    },
  ],
  0x100,
);
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
const t0 = process.hrtime.bigint();
const cpu0 = process.cpuUsage();
process.once('SIGTERM', () => {
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  q.close();
  void rules.remove().then(() => {
    process.stdout.write(
      JSON.stringify({ ...q.stats(), bytes, maxLen, parseErrors, secs, cpuSecs: (cpu.user + cpu.system) / 1e6 }) + '\n',
    );
    process.exit(0);
  });
});
