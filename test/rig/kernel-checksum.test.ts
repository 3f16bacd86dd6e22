/** Checksums from the wire layer agree with the Linux kernel's TCP. */
import { describe, expect, it } from 'vitest';
import { distScript } from '../../rig/dist.js';
import type { TcpOption } from '../../bridge/wire/tcp-options.js';
import { withRig, type Rig } from '../../rig/rig.js';

interface ProbeResult {
  synAck: null | {
    from: string;
    seq: number;
    ack: number;
    ipChecksumValid: boolean;
    tcpChecksum: string;
    options: TcpOption[];
  };
}

async function probe(rig: Rig, sport: number, isn: number, tsval: number, corrupt: boolean): Promise<ProbeResult> {
  const c = rig.host('client');
  const p = rig.host('primary');
  const args = [c.ip, p.ip, String(sport), '7000', String(isn), String(tsval)];
  if (corrupt) args.push('corrupt');
  const r = await c.exec([process.execPath, distScript('rig/helpers/syn-probe.js'), ...args]);
  return JSON.parse(r.stdout.trim()) as ProbeResult;
}

describe('wire layer against the kernel', () => {
  it('a SYN built by the wire layer gets a SYN-ACK; a corrupted one does not', async () => {
    await withRig({}, async (rig) => {
      const server = rig.host('primary').spawn(['socat', 'TCP-LISTEN:7000,reuseaddr,fork', 'SYSTEM:cat']);
      await rig
        .host('primary')
        .exec(['bash', '-c', 'for i in $(seq 50); do ss -ltn | grep -q :7000 && exit 0; sleep 0.1; done; exit 1']);
      // Drop the client kernel's RST to the unexpected SYN-ACK so the server stays clean.
      await rig
        .host('client')
        .exec(['iptables', '-A', 'OUTPUT', '-p', 'tcp', '--tcp-flags', 'RST', 'RST', '-j', 'DROP']);

      const isn = 0xfffffff0; // next to the wrap
      const good = await probe(rig, 40001, isn, 123456, false);
      expect(good.synAck).not.toBeNull();
      expect(good.synAck!.ack).toBe(0xfffffff1);
      expect(good.synAck!.ipChecksumValid).toBe(true);
      // veth hands locally generated segments over with checksum offload pending
      // (CHECKSUM_PARTIAL): the field holds the pseudo-header sum only.
      expect(['valid', 'partial']).toContain(good.synAck!.tcpChecksum);
      // The kernel read our options: it echoes our TSval and offers window scaling.
      expect(good.synAck!.options).toContainEqual(expect.objectContaining({ kind: 'timestamp', tsecr: 123456 }));
      expect(good.synAck!.options.some((o) => o.kind === 'wscale')).toBe(true);
      expect(good.synAck!.options).toContainEqual({ kind: 'mss', mss: 1460 });

      // A different port: the server keeps retransmitting the first SYN-ACK.
      const bad = await probe(rig, 40002, 1000, 1, true);
      expect(bad.synAck).toBeNull();
      server.kill();
    });
  });
});
