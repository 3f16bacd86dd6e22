/** The rig itself: hub floods, switch learns, shaping applies, nothing is left behind. */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WireError } from '../../bridge/wire/error.js';
import { EthernetFrame, ETHERTYPE_IPV4 } from '../../bridge/wire/ethernet.js';
import { Ipv4Packet } from '../../bridge/wire/ipv4.js';
import { ipv4 } from '../../net/addr.js';
import { Capture } from '../../rig/capture.js';
import { namespacesOf, Rig, withRig, type LanMode } from '../../rig/rig.js';

/** Client pings primary; returns how many of those unicast IPv4 frames the secondary saw. */
async function overheardByThirdHost(mode: LanMode): Promise<{ seen: number; sent: number }> {
  return withRig({ mode }, async (rig) => {
    const c = rig.host('client');
    const p = rig.host('primary');
    const s = rig.host('secondary');
    const cap = await Capture.start(s, `icmp and host ${c.ip} and host ${p.ip}`, 'overheard');
    const sent = 5;
    await c.exec(['ping', '-c', String(sent), '-i', '0.2', '-W', '1', p.ip]);
    const frames = await cap.stop();
    const seen = frames.filter((f) => {
      const eth = EthernetFrame.parse(f.data);
      if (eth instanceof WireError || eth.etherType !== ETHERTYPE_IPV4) return false;
      const ip = Ipv4Packet.parse(f.data, eth.payloadOffset);
      // Unicast frames addressed to another host's MAC, between the two others.
      return !(ip instanceof WireError) && ip.src === ipv4(c.ip) && ip.dst === ipv4(p.ip) && eth.dstString === p.mac;
    }).length;
    return { seen, sent };
  });
}

describe('test rig', () => {
  it('hub mode floods: a third host captures unicast frames between two others', async () => {
    const { seen, sent } = await overheardByThirdHost('hub');
    expect(seen).toBe(sent);
  });

  it('switch mode does not flood learned unicast frames', async () => {
    const { seen } = await overheardByThirdHost('switch');
    expect(seen).toBe(0);
  });

  it('connects every host to every other', async () => {
    await withRig({}, async (rig) => {
      const unreachable: string[] = [];
      let pairs = 0;
      for (const a of rig.hosts.values()) {
        for (const b of rig.hosts.values()) {
          if (a === b) continue;
          pairs++;
          const r = await a.exec(['ping', '-c', '1', '-W', '2', b.ip], { allowFail: true });
          if (r.code !== 0) unreachable.push(`${a.name} → ${b.name}`);
        }
      }
      expect(pairs).toBe(rig.hosts.size * (rig.hosts.size - 1));
      expect(unreachable).toEqual([]);
    });
  });

  it('removes every namespace and its temp dir after a normal run', async () => {
    let id = '';
    let tmp = '';
    await withRig({}, async (rig) => {
      id = rig.id;
      tmp = rig.tmpdir;
      expect(namespacesOf(id).length).toBe(4);
      expect(existsSync(tmp)).toBe(true);
    });
    expect(namespacesOf(id)).toEqual([]);
    expect(existsSync(tmp)).toBe(false);
  });

  it('removes everything, processes included, when the body throws', async () => {
    let id = '';
    let pid = 0;
    await expect(
      withRig({}, async (rig) => {
        id = rig.id;
        const proc = rig.host('primary').spawn(['sleep', '600']);
        pid = proc.pid ?? 0;
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(namespacesOf(id)).toEqual([]);
    expect(pid).toBeGreaterThan(0);
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
  });

  it('two rigs coexist with the same addresses', async () => {
    const a = await Rig.create();
    try {
      const b = await Rig.create();
      try {
        expect(a.id).not.toBe(b.id);
        await a.host('client').exec(['ping', '-c', '1', '-W', '2', a.host('primary').ip]);
        await b.host('client').exec(['ping', '-c', '1', '-W', '2', b.host('primary').ip]);
      } finally {
        await b.destroy();
      }
    } finally {
      await a.destroy();
    }
  });

  it('applies a rate limit and random loss to a link', async () => {
    await withRig({ links: { primary: { rateMbit: 10 } } }, async (rig) => {
      const q = await rig.host('primary').exec(['tc', 'qdisc', 'show', 'dev', 'eth0']);
      expect(q.stdout).toMatch(/tbf .*rate 10Mbit/);
      await rig.shape('client', { loss: 0.5 });
      const r = await rig
        .host('client')
        .exec(['ping', '-c', '40', '-i', '0.01', '-W', '1', '-q', rig.host('primary').ip], { allowFail: true });
      const m = /(\d+) received/.exec(r.stdout);
      const received = Number(m?.[1] ?? -1);
      // Each echo crosses the lossy link twice: P(success) = 0.25.
      // All 40 lost: 0.75⁴⁰ ≈ 10⁻⁵.
      expect(received).toBeGreaterThan(0);
      expect(received).toBeLessThan(30);
    });
  });

  it('duplicates and reorders a link’s frames', async () => {
    await withRig({ links: { client: { duplicate: 0.2, reorder: 0.2 } } }, async (rig) => {
      const p = rig.host('primary');
      // A UDP receiver on P counts duplicates and datagrams that arrive after a later one.
      const recv = p.spawn([process.execPath, '-e', UDP_COUNTER, p.ip]);
      let out = '';
      recv.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise<void>((resolve) => recv.stdout?.once('data', () => resolve()));
      await rig.host('client').exec([process.execPath, '-e', UDP_SENDER, p.ip]);
      await new Promise<void>((resolve) => recv.once('exit', () => resolve()));
      const r = JSON.parse(out.trim().split('\n').at(-1)!) as { got: number; dups: number; late: number };
      expect(r.dups).toBeGreaterThan(50);
      expect(r.late).toBeGreaterThan(10);
      expect(r.got).toBeGreaterThan(1500);
    });
  });
});

/** Prints "ready", then counts 2000 numbered datagrams (or what came in 1.5 s after the first). */
const UDP_COUNTER = `
const s = require('node:dgram').createSocket('udp4');
const seen = new Set(); let max = -1, dups = 0, late = 0, got = 0, t;
s.on('message', (m) => {
  const n = m.readUInt32BE(0); got++;
  if (seen.has(n)) dups++; else { seen.add(n); if (n < max) late++; }
  if (n > max) max = n;
  t ??= setTimeout(() => { console.log(JSON.stringify({ got, dups, late })); process.exit(0); }, 1500);
});
s.bind(9999, process.argv[1], () => console.log('ready'));`;

/** Sends 2000 numbered datagrams, a burst every millisecond. */
const UDP_SENDER = `
const s = require('node:dgram').createSocket('udp4');
let n = 0;
const tick = () => {
  for (let i = 0; i < 50 && n < 2000; i++, n++) { const b = Buffer.alloc(1000); b.writeUInt32BE(n); s.send(b, 9999, process.argv[1]); }
  if (n < 2000) setTimeout(tick, 1); else setTimeout(() => s.close(), 100);
};
tick();`;
