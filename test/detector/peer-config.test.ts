/**
 * The configuration each node tells the other (bridge/detector/heartbeat.ts): the
 * codec, authenticated and bound like heartbeats, and what counts as a
 * mismatch; then two real heartbeat links on loopback that disagree on the
 * ports, and agree again.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  configDifferences,
  CONFIG_MAX_BODY,
  decodeConfigNotice,
  encodeConfigNotice,
  isConfigNotice,
  isNotice,
  type PeerConfig,
} from '../../bridge/detector/heartbeat.js';
import { PeerLink } from '../../bridge/detector/peer-link.js';
import { createLogger } from '../../bridge/log.js';

const base: PeerConfig = {
  protocol: 1,
  version: '0.3.0',
  service: '192.0.2.100',
  ports: '21,7000-7010',
  lanMode: 'hub',
  instance: 'tcpfo',
  datapath: 'auto',
  inbound: 'auto',
};
const key = randomBytes(32);
const notice = { seq: 1234n, from: 0xc0000201, to: 0xc0000202, echoNonce: 99n, config: base };

describe('configuration notices', () => {
  it('round-trip, authenticated: another key, a flipped byte, a bad body or a wrong length are refused', () => {
    const b = encodeConfigNotice(notice, key);
    expect(isConfigNotice(b)).toBe(true);
    expect(isNotice(b)).toBe(false);
    expect(decodeConfigNotice(b, key)).toEqual(notice);
    expect(decodeConfigNotice(b, randomBytes(32))).toBe('bad-mac');
    for (let i = 0; i < b.length; i++) {
      const c = Buffer.from(b);
      c[i] = c[i]! ^ 0x01;
      expect(decodeConfigNotice(c, key), `byte ${i}`).not.toEqual(notice);
    }
    expect(decodeConfigNotice(b.subarray(0, b.length - 1), key)).toBe('bad-length');
    expect(() =>
      encodeConfigNotice({ ...notice, config: { ...base, ports: 'x'.repeat(CONFIG_MAX_BODY) } }, key),
    ).toThrow(RangeError);
  });

  it('a mismatch is what the two nodes must agree on, said in words; their own data path choices and a minor version may differ', () => {
    expect(configDifferences(base, { ...base, datapath: 'pcap', inbound: 'queue', version: '0.4.1' })).toEqual([]);
    const d = configDifferences(base, {
      ...base,
      ports: '7000',
      lanMode: 'switch',
      service: '192.0.2.101',
      instance: 'other',
      protocol: 2,
      version: '1.0.0',
    });
    expect(d).toHaveLength(6);
    expect(d.join('\n')).toMatch(
      /service.ports 21,7000-7010 here, 7000 on the peer: connections on a port only one node lists are not protected/,
    );
    expect(d.join('\n')).toMatch(/lan.mode hub here, switch on the peer/);
  });
});

describe('two links that disagree', () => {
  it('each logs what differs once, shows it, and says when it matches again', async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const lines: string[] = [];
    const log = createLogger('test', 'info');
    const capture = {
      error: (_: object, m: string) => lines.push(`error ${m}`),
      info: (_: object, m: string) => lines.push(`info ${m}`),
    } as unknown as typeof log;
    const open = (self: string, peer: string, config: PeerConfig, role: 'primary' | 'secondary') =>
      PeerLink.open({
        self,
        peer,
        port,
        key,
        intervalMs: 20,
        timeoutMs: 200,
        role,
        peerRoles: role === 'primary' ? ['secondary'] : ['primary'],
        onDecision: () => {},
        config,
        log: capture,
      });
    const p = await open('127.0.0.1', '127.0.0.2', base, 'primary');
    let s = await open('127.0.0.2', '127.0.0.1', { ...base, ports: '7000' }, 'secondary');
    try {
      const until = async (what: () => boolean) => {
        for (let i = 0; i < 150 && !what(); i++) await new Promise((r) => setTimeout(r, 20));
        expect(what()).toBe(true);
      };
      await until(() => (p.configCheck?.differences.length ?? 0) > 0 && (s.configCheck?.differences.length ?? 0) > 0);
      expect(p.configCheck!.differences[0]).toMatch(/service.ports 21,7000-7010 here, 7000 on the peer/);
      await new Promise((r) => setTimeout(r, 1200)); // a second round: no new line
      expect(lines.filter((l) => l.startsWith('error the peer’s configuration differs: service.ports'))).toHaveLength(
        2,
      );
      // The secondary restarted with the right file.
      s.close();
      s = await open('127.0.0.2', '127.0.0.1', base, 'secondary');
      await until(() => p.configCheck?.differences.length === 0 && s.configCheck?.differences.length === 0);
      expect(lines.filter((l) => l === 'info the peer’s configuration matches').length).toBeGreaterThanOrEqual(2);
    } finally {
      p.close();
      s.close();
    }
  });
});
