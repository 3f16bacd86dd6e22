/**
 * Run inside a rig host by the data-path I/O tests (test/rig/io.test.ts).
 * Each subcommand exercises one part of bridge/io for real and reports JSON.
 *
 *   queue TAG QNUM MODIFY_PORT DROP_PORT [reuse] [dst=ADDR]
 *                                          NFQUEUE on OUTPUT: uppercase payloads to MODIFY_PORT, drop DROP_PORT;
 *                                          reuse: one batch buffer for all (poisoned after each batch), the
 *                                          payloads uppercased in it; reports the buffers seen and whether a
 *                                          view kept past its batch reads poison; dst: only packets to ADDR
 *                                          (an IPv6 one: the rule goes to ip6tables)
 *   capture DEV FILTER SECONDS [COST_US]   count frames captured with libpcap (each handled for COST_US µs),
 *                                          and how late a 10 ms timer ran meanwhile
 *   inject SRC DST DPORT ISN MARK          inject a SYN into the local stack (IPv4 or IPv6)
 *   burst SRC DST DPORT N MARK             inject N SYNs (source ports 41000…) as one burst
 *   garp DEV IP MAC                        send gratuitous ARPs
 *   refused DEV IP MAC                     a frame the device refuses (over its MTU), then a gratuitous
 *                                          ARP: whether each left, and the send errors counted
 *   hold-state STATEDIR TAG DEV VIP        install rules and node changes, then wait
 *   child-fds DEV QNUM                     open a capture, a queue and the injector; list a child's
 *                                          descriptors, started plainly and through bridge/io/run
 *   overrun TAG QNUM DPORT RCVBUF STALL_MS SECONDS
 *                                          NFQUEUE on OUTPUT to DPORT with a RCVBUF-byte socket buffer; drop
 *                                          each packet; hold the event loop STALL_MS once a second; count
 *                                          what arrives in each second
 *   throw TAG QNUM DPORT EVERY SECONDS     NFQUEUE on OUTPUT to DPORT; the handler throws on every EVERY-th
 *                                          packet; report verdicts and what the kernel still holds
 *   throw-batch TAG QNUM DPORT             a whole-batch handler that throws: the process must die of it
 */
import { WireError } from '../../bridge/wire/error.js';
import { ipAddr, ipv4, mac, type IpAddr } from '../../net/addr.js';
import { buildIpTcp, parseIpTcp } from '../../bridge/wire/ip.js';
import { gratuitousArpFrame } from '../../bridge/wire/arp.js';
import { buildIpv4Tcp, TCP_SYN } from '../../bridge/wire/tcp.js';
import { PacketQueue } from '../../bridge/io/nfqueue.js';
import { RuleSet } from '../../bridge/io/rules.js';
import { afterReading, FrameCapture, openFrameSender } from '../../bridge/io/capture.js';
import { holdLoop } from '../../bridge/node/faults.js';
import { arpProbeFrame } from '../../bridge/vip-arp.js';
import { Injector } from '../../bridge/io/inject.js';
import { NodeState } from '../../bridge/io/node-state.js';
import { run } from '../../bridge/io/run.js';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const [cmd, ...args] = process.argv.slice(2);
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
const MARK = 0x100;

function onStop(fn: () => Promise<void> | void): void {
  // Stay alive until signalled, even with nothing else on the event loop.
  const keepAlive = setInterval(() => {}, 1 << 30);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      clearInterval(keepAlive);
      Promise.resolve(fn()).then(
        () => process.exit(0),
        (e: unknown) => {
          console.error(`stop failed: ${e instanceof Error ? e.stack : String(e)}`);
          process.exit(1);
        },
      );
    });
  }
}

async function queue(
  tag: string,
  qnum: number,
  modifyPort: number,
  dropPort: number,
  reuse: boolean,
  dst?: IpAddr,
): Promise<void> {
  const counts = { seen: 0, modified: 0, dropped: 0, accepted: 0, partial: 0, batches: 0 };
  const buffers = new Set<Buffer>();
  let kept: Buffer | null = null;
  const opts = reuse ? { maxLen: 1024, reuseBuffer: true, poison: true } : { maxLen: 1024 };
  const q = new PacketQueue(qnum, opts, (batch, qq) => {
    counts.batches++;
    buffers.add(batch.data);
    for (let i = 0; i < batch.count; i++) {
      counts.seen++;
      const id = batch.id(i);
      if (batch.checksumPartial(i)) counts.partial++;
      const p = parseIpTcp(batch.packet(i));
      if (p instanceof WireError) {
        qq.accept(id);
        continue;
      }
      if (p.tcp.dstPort === dropPort) {
        counts.dropped++;
        qq.drop(id);
      } else if (p.tcp.dstPort === modifyPort && p.tcp.payloadLength > 0) {
        // Reused: changed where it lies, in the batch buffer; a view of the first kept on purpose.
        const pkt = reuse ? batch.packet(i) : Buffer.from(batch.packet(i));
        kept ??= reuse ? pkt : null;
        const again = parseIpTcp(pkt) as Exclude<ReturnType<typeof parseIpTcp>, WireError>;
        const start = again.tcp.payloadOffset;
        for (let j = start; j < start + again.tcp.payloadLength; j++) {
          const c = pkt[j]!;
          if (c >= 0x61 && c <= 0x7a) pkt[j] = c - 0x20;
        }
        again.tcp.fillChecksum();
        counts.modified++;
        qq.acceptModified(id, pkt);
      } else {
        counts.accepted++;
        qq.accept(id);
      }
    }
  });
  const rules = await RuleSet.install(
    tag,
    [
      {
        hook: 'output',
        match: { dports: [modifyPort, dropPort], ...(dst !== undefined ? { dst } : {}) },
        action: { queue: qnum, bypass: false },
        comment: 'io-probe',
      },
    ],
    MARK,
  );
  // Handlers before the ready line: the test may signal the moment it reads it.
  onStop(async () => {
    q.close();
    await rules.remove();
    const keptPoisoned = kept === null ? null : (kept as Buffer).every((b) => b === 0xa5);
    out({ ...counts, buffers: buffers.size, keptPoisoned, stats: q.stats() });
  });
  out({ ready: true, backend: rules.backend });
}

/**
 * A frame that comes while the event loop is held, and two decisions due by
 * then: one on a plain timer, one through afterReading. Prints how many
 * frames each had seen.
 */
function readBeforeDeciding(dev: string): void {
  const target = ipv4('192.0.2.77');
  let seen = 0;
  const c = new FrameCapture(dev, 'arp and arp host 192.0.2.77', () => seen++);
  const decided: { plain?: number; afterReading?: number } = {};
  const done = () => {
    if (decided.plain === undefined || decided.afterReading === undefined) return;
    c.close();
    out(decided);
    process.exit(0);
  };
  setTimeout(() => {
    decided.plain = seen;
    done();
  }, 10);
  afterReading(10, c, () => {
    decided.afterReading = seen;
    done();
  });
  // A probe from another socket (a socket does not capture its own frames), captured on its
  // way out while the loop is held past both timers.
  const sender = openFrameSender(dev);
  if (!sender.send(arpProbeFrame(mac('02:00:00:00:00:77'), target))) throw new Error('the frame did not leave');
  holdLoop(100);
}

function capture(dev: string, filter: string, seconds: number, costUs: number): void {
  let frames = 0;
  const c = new FrameCapture(dev, filter, () => {
    frames++;
    const until = performance.now() + costUs / 1000;
    while (performance.now() < until) {
      /* a slow handler */
    }
  });
  // A heartbeat-like timer: does it run while frames wait, and how late?
  let maxLateMs = 0;
  let ticksWhilePending = 0;
  let due = performance.now() + 10;
  const tick = setInterval(() => {
    const now = performance.now();
    maxLateMs = Math.max(maxLateMs, now - due);
    due = now + 10;
    if (c.pending > 0) ticksWhilePending++;
  }, 10);
  out({ ready: true });
  setTimeout(() => {
    clearInterval(tick);
    const pending = c.pending;
    c.close();
    out({ frames, pending, ticksWhilePending, maxLateMs: Math.round(maxLateMs), stats: c.stats });
    process.exit(0);
  }, seconds * 1000);
}

async function inject(src: string, dst: string, dport: number, isn: number, mark: number): Promise<void> {
  const inj = new Injector(mark);
  const pkt = buildIpTcp(
    { src: ipAddr(src), dst: ipAddr(dst) },
    {
      srcPort: 40000,
      dstPort: dport,
      seq: isn,
      ack: 0,
      flags: TCP_SYN,
      window: 65535,
      urgent: 0,
      options: [{ kind: 'mss', mss: 1460 }],
      payload: Buffer.alloc(0),
    },
  );
  inj.send(pkt);
  await inj.drain();
  inj.close();
  out({ sent: inj.stats.sent, errors: inj.stats.errors, error: inj.lastError?.message });
}

async function burst(src: string, dst: string, dport: number, n: number, mark: number): Promise<void> {
  const inj = new Injector(mark);
  for (let i = 0; i < n; i++) {
    inj.send(
      buildIpv4Tcp(
        { src: ipv4(src), dst: ipv4(dst) },
        {
          srcPort: 41000 + i,
          dstPort: dport,
          seq: 1000 + i,
          ack: 0,
          flags: TCP_SYN,
          window: 65535,
          urgent: 0,
          options: [],
          payload: Buffer.alloc(0),
        },
      ),
    );
  }
  // Handed to the kernel before send() returned, not left for later event-loop turns.
  const sentAtOnce = inj.stats.sent;
  await inj.drain();
  inj.close();
  out({
    sent: inj.stats.sent,
    sentAtOnce,
    deferred: inj.stats.deferred,
    errors: inj.stats.errors,
    dropped: inj.stats.dropped,
    error: inj.lastError?.message,
  });
}

async function garp(dev: string, ip: string, m: string): Promise<void> {
  const s = openFrameSender(dev);
  for (let i = 0; i < 3; i++) {
    s.send(gratuitousArpFrame(mac(m), ipv4(ip)));
    await new Promise((r) => setTimeout(r, 20));
  }
  s.close();
  out({ sent: 3 });
}

async function refused(dev: string, ip: string, m: string): Promise<void> {
  const s = openFrameSender(dev);
  const huge = Buffer.alloc(70_000);
  gratuitousArpFrame(mac(m), ipv4(ip)).copy(huge);
  const hugeSent = s.send(huge);
  const arpSent = s.send(gratuitousArpFrame(mac(m), ipv4(ip)));
  out({ hugeSent, arpSent, sendErrors: s.stats.sendErrors, lastSendError: s.stats.lastSendError });
  s.close();
}

async function holdState(stateDir: string, tag: string, dev: string, vip: string): Promise<void> {
  const journal = join(stateDir, `${tag}.json`);
  const recovered = await NodeState.recover(journal);
  const state = new NodeState(journal);
  // The bridges' order: the node's state first (the VIP back on the node),
  // then the rules, replacing a killed predecessor's.
  await state.setPromisc(dev, true);
  await state.addDormantAddress(vip, dev);
  const rules = await RuleSet.install(
    tag,
    [
      {
        hook: 'output',
        match: { src: ipv4(vip), sports: [21, [7000, 7010]] },
        action: { queue: 7, bypass: false },
        comment: 'fail closed',
      },
      {
        hook: 'prerouting',
        match: { dst: ipv4(vip), dports: [21] },
        action: { queue: 8, bypass: true },
        comment: 'fail open',
      },
      {
        hook: 'prerouting',
        match: { src: ipv4(vip), srcMac: '02:00:00:00:00:09' },
        action: 'drop',
        comment: 'spoofed',
      },
    ],
    MARK,
  );
  onStop(async () => {
    await rules.remove();
    await state.undoAll();
    out({ stopped: true });
  });
  out({ ready: true, recovered: recovered.length, backend: rules.backend });
}

async function childFds(dev: string, qnum: number): Promise<void> {
  const cap = new FrameCapture(dev, 'tcp port 9', () => {});
  const q = new PacketQueue(qnum, {}, () => {});
  const inj = new Injector(MARK);
  // Descriptors above stdio (the child's stdio are Node's socketpairs).
  const list = "ls -l /proc/self/fd | awk '$9 > 2 && /socket:/ { print $9, $NF }'";
  const plain = execFileSync('sh', ['-c', list], { encoding: 'utf8' });
  const viaRun = await run('sh', ['-c', list], { timeoutMs: 5000 });
  cap.close();
  q.close();
  inj.close();
  out({ plain: plain.trim().split('\n').filter(Boolean), viaRun: viaRun.trim().split('\n').filter(Boolean) });
}

/** Packets the kernel holds in queue `qnum` waiting for a verdict (/proc/net/netfilter/nfnetlink_queue). */
function kernelQueued(qnum: number): number {
  const line = readFileSync('/proc/net/netfilter/nfnetlink_queue', 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((f) => Number(f[0]) === qnum);
  return line ? Number(line[2]) : -1;
}

async function overrun(
  tag: string,
  qnum: number,
  dport: number,
  rcvbuf: number,
  stallMs: number,
  seconds: number,
): Promise<void> {
  const perSecond: number[] = [0];
  const q = new PacketQueue(qnum, { maxLen: 65536, rcvbuf }, (batch, qq) => {
    for (let i = 0; i < batch.count; i++) qq.drop(batch.id(i));
    perSecond[perSecond.length - 1]! += batch.count;
  });
  const rules = await RuleSet.install(
    tag,
    [
      {
        hook: 'output',
        match: { dports: [dport] },
        action: { queue: qnum, bypass: false },
        comment: 'io-probe overrun',
      },
    ],
    MARK,
  );
  out({ ready: true });
  for (let s = 0; s < seconds; s++) {
    await new Promise((r) => setTimeout(r, 1000 - stallMs));
    const until = performance.now() + stallMs;
    while (performance.now() < until) {
      /* the event loop held, as by a long GC pause or a starved CPU */
    }
    perSecond.push(0);
  }
  const stats = q.stats();
  q.close();
  await rules.remove();
  out({ perSecond, received: perSecond.reduce((a, b) => a + b, 0), stats });
  process.exit(0);
}

async function throwing(tag: string, qnum: number, dport: number, every: number, seconds: number): Promise<void> {
  const counts = { seen: 0, accepted: 0, thrown: 0, batches: 0, batchesWithThrow: 0 };
  const errors: string[] = [];
  const q = new PacketQueue(
    qnum,
    { maxLen: 65536 },
    {
      onPacket: (batch, i, qq) => {
        counts.seen++;
        if (counts.seen % every === 0) {
          counts.thrown++;
          throw new Error(`boom ${counts.seen}`);
        }
        qq.accept(batch.id(i));
        counts.accepted++;
      },
      onBatchEnd: () => {
        counts.batches++;
      },
      onError: (e) => {
        if (errors.length < 3) errors.push((e as Error).message);
      },
    },
  );
  const rules = await RuleSet.install(
    tag,
    [{ hook: 'output', match: { dports: [dport] }, action: { queue: qnum, bypass: false }, comment: 'io-probe throw' }],
    MARK,
  );
  out({ ready: true });
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const stats = q.stats();
  const left = kernelQueued(qnum);
  q.close();
  await rules.remove();
  out({ ...counts, errors, stats, kernelQueued: left });
  process.exit(0);
}

async function throwBatch(tag: string, qnum: number, dport: number): Promise<void> {
  const q = new PacketQueue(qnum, { maxLen: 65536 }, () => {
    throw new Error('boom in a batch handler');
  });
  const rules = await RuleSet.install(
    tag,
    [
      {
        hook: 'output',
        match: { dports: [dport] },
        action: { queue: qnum, bypass: false },
        comment: 'io-probe throw-batch',
      },
    ],
    MARK,
  );
  // Dying of it is the point; the rules go with the process as a crash leaves them, so remove them on the way out.
  process.once('uncaughtException', (e) => {
    console.error(`uncaught: ${e.message}`);
    q.close();
    void rules.remove().then(() => process.exit(70));
  });
  out({ ready: true });
  setTimeout(() => {
    out({ alive: true, stats: q.stats() });
    q.close();
    void rules.remove().then(() => process.exit(0));
  }, 5000);
}

async function main(): Promise<void> {
  switch (cmd) {
    case 'throw-batch':
      return throwBatch(args[0]!, Number(args[1]), Number(args[2]));
    case 'overrun':
      return overrun(args[0]!, Number(args[1]), Number(args[2]), Number(args[3]), Number(args[4]), Number(args[5]));
    case 'throw':
      return throwing(args[0]!, Number(args[1]), Number(args[2]), Number(args[3]), Number(args[4]));
    case 'queue':
      return queue(
        args[0]!,
        Number(args[1]),
        Number(args[2]),
        Number(args[3]),
        args.includes('reuse'),
        args.find((a) => a.startsWith('dst=')) ? ipAddr(args.find((a) => a.startsWith('dst='))!.slice(4)) : undefined,
      );
    case 'read-before-deciding':
      return readBeforeDeciding(args[0]!);
    case 'capture':
      return capture(args[0]!, args[1]!, Number(args[2]), Number(args[3] ?? 0));
    case 'inject':
      return inject(args[0]!, args[1]!, Number(args[2]), Number(args[3]), Number(args[4]));
    case 'burst':
      return burst(args[0]!, args[1]!, Number(args[2]), Number(args[3]), Number(args[4]));
    case 'garp':
      return garp(args[0]!, args[1]!, args[2]!);
    case 'refused':
      return refused(args[0]!, args[1]!, args[2]!);
    case 'child-fds':
      return childFds(args[0]!, Number(args[1]));
    case 'hold-state':
      return holdState(args[0]!, args[1]!, args[2]!, args[3]!);
    default:
      console.error(`unknown subcommand ${cmd}`);
      process.exit(2);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
