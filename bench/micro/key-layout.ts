/**
 * What a connection key wide enough for IPv6 would cost the primary's BPF
 * programs (docs/ipv6.md, "Not yet" 1): the maps key two 4-byte addresses
 * and two ports (12 bytes, native/bpf/maps.h conn_key); with IPv6's 16-byte
 * addresses in the same key (IPv4 mapped) it is 36 bytes for every packet of
 * either family. bench/micro/key-layout.bpf.c is compiled for each width and
 * run in the kernel (BPF_PROG_TEST_RUN through bpftool): LOOKUPS hash-map
 * lookups among 10,000 connections per run, against the same program without
 * them; rounds alternate the widths. Prints the time per lookup, median and
 * spread over the rounds.
 *
 *   npm run build && node dist/bench/micro/key-layout.js [rounds=9] [runs-per-round=2000000]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../bridge/io/run.js';
import { median, runAsProgram, UsageError } from '../../rig/main.js';

const SOURCE = 'bench/micro/key-layout.bpf.c';
/** Lookups per run (the program's LOOKUPS). */
const LOOKUPS = 4;
const WIDTHS = [
  { name: 'IPv4 addresses (12-byte key)', addrBytes: 4 },
  { name: 'IPv6-wide addresses (36-byte key)', addrBytes: 16 },
] as const;

async function sh(cmd: string, args: string[]): Promise<string> {
  return run(cmd, args, { timeoutMs: 120_000 });
}

/** The average ns per run bpftool reports for the pinned program `prog`. */
async function perRun(prog: string, packet: string, repeat: number): Promise<number> {
  const out = await sh('bpftool', ['prog', 'run', 'pinned', prog, 'data_in', packet, 'repeat', String(repeat)]);
  const m = /duration(?: \(average\))?: (\d+)ns/.exec(out);
  if (!m) throw new Error(`bpftool prog run: ${out.trim()}`);
  return Number(m[1]);
}

export async function main(argv: string[]): Promise<number> {
  const rounds = Number(argv[0] ?? 9);
  const repeat = Number(argv[1] ?? 2_000_000);
  if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(repeat) || repeat < 1)
    throw new UsageError('usage: key-layout.js [rounds=9] [runs-per-round=2000000]');
  const dir = mkdtempSync(join(tmpdir(), 'tcpfo-key-layout-'));
  const pins = WIDTHS.map((w) => `/sys/fs/bpf/tcpfo-key-layout-${process.pid}-${w.addrBytes}`);
  try {
    const packet = join(dir, 'frame');
    writeFileSync(packet, Buffer.alloc(64));
    const arch = (await sh('uname', ['-m'])).trim();
    for (const [i, w] of WIDTHS.entries()) {
      const obj = join(dir, `key${w.addrBytes}.o`);
      await sh('clang', [
        '-O2',
        '-g', // BTF: the maps' types
        '-target',
        'bpf',
        `-I/usr/include/${arch}-linux-gnu`,
        `-DADDR_BYTES=${w.addrBytes}`,
        '-Wall',
        '-c',
        SOURCE,
        '-o',
        obj,
      ]);
      await sh('bpftool', ['prog', 'loadall', obj, pins[i]!, 'pinmaps', `${pins[i]}/maps`]);
      await perRun(`${pins[i]}/fill`, packet, 1);
    }
    const perLookup: number[][] = WIDTHS.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (const [i] of WIDTHS.entries()) {
        const withLookups = await perRun(`${pins[i]}/lookups`, packet, repeat);
        const without = await perRun(`${pins[i]}/none`, packet, repeat);
        perLookup[i]!.push((withLookups - without) / LOOKUPS);
      }
    }
    console.log(
      `hash-map lookups among 10,000 connections, ${LOOKUPS} per run, ${repeat} runs per round, ${rounds} rounds (BPF_PROG_TEST_RUN, kernel ${(await sh('uname', ['-r'])).trim()}):`,
    );
    const medians = perLookup.map((xs) => median(xs));
    for (const [i, w] of WIDTHS.entries()) {
      const xs = perLookup[i]!;
      console.log(
        `  ${w.name.padEnd(36)} ${medians[i]!.toFixed(1)} ns per lookup (median; ${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)})`,
      );
    }
    console.log(`  the wide key adds ${(medians[1]! - medians[0]!).toFixed(1)} ns per lookup`);
    return 0;
  } finally {
    for (const p of pins) rmSync(p, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

runAsProgram(import.meta.url, main);
