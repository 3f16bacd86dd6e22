/** The rig itself: hub floods, switch learns, shaping applies, nothing is left behind. */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WireError } from '../../bridge/wire/error.js';
import { EthernetFrame, ETHERTYPE_IPV4 } from '../../bridge/wire/ethernet.js';
import { Ipv4Packet } from '../../bridge/wire/ipv4.js';
import { ipv4 } from '../../bridge/wire/addr.js';
import { Capture } from './capture.js';
import { namespacesOf, Rig, withRig, type LanMode } from './rig.js';

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
      for (const a of rig.hosts.values()) {
        for (const b of rig.hosts.values()) {
          if (a !== b) await a.exec(['ping', '-c', '1', '-W', '2', b.ip]);
        }
      }
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
    expect(() => process.kill(pid, 0)).toThrow();
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
      const r = await rig.host('client').exec(['ping', '-c', '40', '-i', '0.01', '-W', '1', '-q', rig.host('primary').ip], { allowFail: true });
      const m = /(\d+) received/.exec(r.stdout);
      const received = Number(m?.[1] ?? -1);
      // Each echo crosses the lossy link twice: P(success) = 0.25.
      expect(received).toBeGreaterThanOrEqual(0);
      expect(received).toBeLessThan(30);
    });
  });
});
