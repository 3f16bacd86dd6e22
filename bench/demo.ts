/**
 * `npm run demo` / `tcpfo demo`: a real failover, end to end, on this machine.
 *
 * Builds three hosts in network namespaces (client, primary, secondary) on a
 * hub, starts the demo server on both nodes and both bridges, downloads 50 MB
 * from the service address, kills the primary in the middle (its link cut,
 * its bridge and server SIGKILLed), and shows the download finishing
 * byte-exact from the secondary, with a timeline and the survivor's counters.
 * Everything is removed afterwards, also on Ctrl-C. `--ipv6`: a dual-stack
 * pair, and the download over IPv6.
 */
import { readFileSync } from 'node:fs';
import { killNode } from '../rig/failover.js';
import { finalCounters, TcpfoPair, transfer, v6Of, VIP, VIP6 } from '../rig/pair.js';
import { runAsProgram } from '../rig/main.js';
import { withRig } from '../rig/rig.js';

const BYTES = 50_000_000;
const KILL_AFTER_MS = 1500;

function logLines(file: string): Array<Record<string, unknown>> {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export async function main(args: string[] = []): Promise<number> {
  const six = args.includes('--ipv6');
  const unknown = args.filter((a) => a !== '--ipv6');
  if (unknown.length) {
    console.error(`demo: unknown argument ${unknown[0]} (usage: demo [--ipv6])`);
    return 2;
  }
  let ok = false;
  console.log('tcpfo demo: transparent TCP failover, on real Linux TCP stacks in network namespaces\n');
  await withRig({ mode: 'hub', links: { client: { rateMbit: 100 } } }, async (rig) => {
    const c = rig.host('client');
    const vip = six ? VIP6 : VIP;
    const shown = (ip: string) => (six ? `${ip} ${v6Of(ip)}` : ip);
    console.log(`  client     ${shown(c.ip)}`);
    console.log(
      `  primary    ${shown(rig.host('primary').ip)}   (holds the service address ${six ? `${VIP} ${VIP6}` : VIP})`,
    );
    console.log(
      `  secondary  ${shown(rig.host('secondary').ip)}   (takes the client's segments too, sends its answers to the primary)`,
    );
    console.log('  LAN        a hub; the client link shaped to 100 Mbit/s, as in the paper\n');
    const pair = await TcpfoPair.start(rig, { ipv6: six });
    try {
      console.log(`1. both bridges up; the same demo server runs on both nodes`);
      console.log(`2. the client downloads ${BYTES / 1e6} MB from ${six ? `[${vip}]` : vip}:7000 …`);
      const t0 = Date.now();
      const download = transfer(c, 'get', BYTES, 2026, 120_000, vip);
      await new Promise((r) => setTimeout(r, KILL_AFTER_MS));
      const killedAt = await killNode(pair, 'primary');
      console.log(
        `3. ${((killedAt - t0) / 1000).toFixed(2)} s: the primary dies (link cut, bridge and server SIGKILLed)`,
      );
      const r = await download;
      ok = r.error === undefined && r.bytes === BYTES && r.sha256 === r.expected;
      const lines = logLines(pair.secondary!.log);
      const down = lines.find((l) => l.msg === 'primary is down');
      const took = lines.find((l) => l.msg === 'took over the service address: serving alone') as
        { timeline?: Array<{ what: string; atMs: number }> } | undefined;
      console.log('\n   timeline (ms after the primary died)');
      if (down)
        console.log(
          `   ${String(Number(down.time) - killedAt).padStart(5)}  secondary: no heartbeat for ${String(down.silentMs)} ms → primary is down`,
        );
      for (const e of took?.timeline ?? [])
        console.log(
          `   ${String(Number(down?.time ?? killedAt) - killedAt + e.atMs).padStart(5)}  secondary: ${e.what}`,
        );
      console.log(`          client: longest pause between two data arrivals ${r.maxGapMs} ms`);
      console.log(`\n4. download finished after ${(r.ms / 1000).toFixed(2)} s: ${r.bytes} bytes`);
      console.log(`   sha256 expected ${r.expected}`);
      console.log(`   sha256 received ${r.sha256}`);
      console.log(`   ${ok ? 'BYTE-EXACT: the connection survived the death of the primary' : 'MISMATCH'}`);
      const metrics = (await rig.host('secondary').exec(['curl', '-sf', 'http://127.0.0.1:9464/metrics'])).stdout;
      console.log('\n5. the survivor’s metrics (curl http://127.0.0.1:9464/metrics on the secondary):');
      for (const l of metrics.split('\n')) {
        if (
          /^tcpfo_(role|peer_up|failovers_total|last_failover_duration_seconds|datapath_info|heartbeats_received_total)/.test(
            l,
          ) &&
          !l.startsWith('tcpfo_process')
        )
          console.log(`   ${l}`);
      }
      await pair.stop();
      const s = finalCounters(pair.secondary!.log) as {
        role: string;
        datapath: string;
        diverter: { diverted: number; injected: number };
        heartbeat: { received: number; sent: number };
      };
      console.log(
        s.datapath === 'kernel'
          ? `\n6. the survivor: role ${s.role}; before the takeover its kernel took the client's segments and sent its own to the primary (datapath kernel: no user-space hop);`
          : `\n6. the survivor: role ${s.role}; it diverted ${s.diverter.diverted} segments and injected ${s.diverter.injected} client frames before the takeover;`,
      );
      console.log(
        `   heartbeats sent ${s.heartbeat.sent}, received ${s.heartbeat.received} (none since the primary died)`,
      );
      console.log(`\nlogs: ${pair.primary!.log}, ${pair.secondary!.log} (removed with the rig)`);
    } finally {
      await pair.stop();
    }
  });
  console.log('\nthe rig is gone: namespaces, rules, addresses and processes removed.');
  return ok ? 0 : 1;
}

runAsProgram(import.meta.url, async (args) => {
  try {
    return await main(args);
  } catch (e) {
    console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
});
