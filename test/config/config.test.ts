/** The YAML configuration: every error names the file, the path and the problem; the CLI exits 3. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, serviceAddresses } from '../../config/config.js';
import { peerConfigOf } from '../../bridge/detector/peer-link.js';
import { REPO_ROOT } from '../../rig/dist.js';

const EXAMPLE = readFileSync(join(REPO_ROOT, 'config', 'tcpfo.example.yaml'), 'utf8');
/** The example with a dual-stack service and nodes. */
const DUAL = EXAMPLE.replace('address: 192.0.2.100', 'address: [192.0.2.100, "2001:db8::100"]')
  .replace('address: 192.0.2.1 ', 'address: [192.0.2.1, "fe80::1"] ')
  .replace('address: 192.0.2.2', 'address: [192.0.2.2, "2001:db8::2"]');

function problems(yaml: string): string[] {
  try {
    parseConfig(yaml, 'test.yaml');
  } catch (e) {
    if (e instanceof ConfigError) {
      expect(e.message.startsWith('test.yaml: invalid configuration')).toBe(true);
      return e.problems;
    }
    throw e;
  }
  return [];
}

describe('configuration', () => {
  it('accepts the commented example and fills defaults', () => {
    const c = parseConfig(EXAMPLE, 'example.yaml');
    expect(c.service.ports).toEqual([21, 20, 7000, [8000, 8010]]);
    expect(c.heartbeat).toMatchObject({ interval_ms: 20, timeout_ms: 100 });
    expect(c.lan.mode).toBe('hub');
  });

  const cases: Array<[string, string, RegExp]> = [
    ['an unknown key', EXAMPLE.replace('lan:', 'lan:\n  speed: 100'), /^lan: unknown key "speed"/],
    ['an unknown top-level key', EXAMPLE + '\nverbose: true\n', /^\(top level\): unknown key "verbose"/],
    [
      'a bad address',
      EXAMPLE.replace('address: 192.0.2.100', 'address: 192.0.2.300'),
      /^service\.address: not an IPv4 \(a\.b\.c\.d\) or IPv6 address/,
    ],
    [
      'an IPv6 service address alone',
      EXAMPLE.replace('address: 192.0.2.100', 'address: "2001:db8::100"'),
      /^service\.address: an IPv6 address alone: list an IPv4 service address beside it/,
    ],
    [
      'two service addresses of one family',
      EXAMPLE.replace('address: 192.0.2.100', 'address: [192.0.2.100, 192.0.2.101]'),
      /^service\.address: two addresses of one family/,
    ],
    [
      'three service addresses',
      EXAMPLE.replace('address: 192.0.2.100', 'address: [192.0.2.100, "2001:db8::100", "2001:db8::101"]'),
      /^service\.address: /,
    ],
    [
      'a link-local IPv6 service address',
      DUAL.replace('address: [192.0.2.100, "2001:db8::100"]', 'address: [192.0.2.100, "fe80::100"]'),
      /^service\.address: fe80::100 is a link-local address/,
    ],
    [
      'an IPv4-mapped IPv6 service address',
      DUAL.replace('address: [192.0.2.100, "2001:db8::100"]', 'address: [192.0.2.100, "::ffff:192.0.2.7"]'),
      /^service\.address: ::ffff:192\.0\.2\.7 is an IPv4-mapped address/,
    ],
    [
      'a node’s IPv6 address that is the service’s, written otherwise',
      DUAL.replace('"2001:db8::2"', '"2001:db8:0::100"'),
      /must all differ/,
    ],
    [
      'an IPv6 service address but a node without an IPv6 address',
      DUAL.replace('address: [192.0.2.2, "2001:db8::2"]', 'address: 192.0.2.2'),
      /^secondary\.address: the service has an IPv6 address: list the node's own IPv6 address too/,
    ],
    [
      'a node without an IPv4 address',
      DUAL.replace('address: [192.0.2.2, "2001:db8::2"]', 'address: "2001:db8::2"'),
      /^secondary\.address: list the node's IPv4 address/,
    ],
    ['a bad MAC', EXAMPLE.replace('"02:00:00:00:00:03"', '"02:00:00:00:03"'), /^secondary\.mac: not a MAC address/],
    ['a reversed port range', EXAMPLE.replace('"8000-8010"', '"8010-8000"'), /^service\.ports\[3\]: bad port range/],
    ['a port out of range', EXAMPLE.replace('[21, 20,', '[70000, 20,'), /^service\.ports\[0\]/],
    ['no ports', EXAMPLE.replace(/ports: \[.*\]/, 'ports: []'), /^service\.ports: list at least one failover port/],
    ['a missing key file', EXAMPLE.replace(/\s+key_file: .*/, ''), /^heartbeat\.key_file:/],
    ['a missing node', EXAMPLE.replace(/secondary:\n(  .*\n)+/, ''), /^secondary:/],
    ['equal addresses', EXAMPLE.replace('address: 192.0.2.2', 'address: 192.0.2.1'), /must all differ/],
    ['a timeout below twice the interval', EXAMPLE.replace('timeout_ms: 100', 'timeout_ms: 30'), /at least twice/],
    ['broken YAML', 'service: [\n', /^YAML line/],
    [
      'the unspecified address as service address',
      EXAMPLE.replace('address: 192.0.2.100', 'address: 0.0.0.0'),
      /^service\.address: 0\.0\.0\.0 is the unspecified address/,
    ],
    [
      'a multicast service address',
      EXAMPLE.replace('address: 192.0.2.100', 'address: 239.1.2.3'),
      /^service\.address: 239\.1\.2\.3 is a multicast address/,
    ],
    [
      'a broadcast node address',
      EXAMPLE.replace('address: 192.0.2.1 ', 'address: 255.255.255.255 '),
      /^primary\.address: 255\.255\.255\.255 is the broadcast address/,
    ],
    [
      'a loopback node address',
      EXAMPLE.replace('address: 192.0.2.2', 'address: 127.0.0.2'),
      /^secondary\.address: .* loopback/,
    ],
    [
      'a multicast MAC',
      EXAMPLE.replace('"02:00:00:00:00:03"', '"03:00:00:00:00:03"'),
      /^secondary\.mac: .* multicast MAC/,
    ],
    [
      'an all-zero MAC',
      EXAMPLE.replace('"02:00:00:00:00:02"', '"00:00:00:00:00:00"'),
      /^primary\.mac: .* not a station/,
    ],
    [
      'a queue base whose third queue is out of range',
      EXAMPLE.replace('queue_base: 100', 'queue_base: 65534'),
      /^queue_base: /,
    ],
    [
      'a bad per-node metrics address',
      EXAMPLE.replace('mac: "02:00:00:00:00:03"', 'mac: "02:00:00:00:00:03"\n  metrics_listen: nowhere'),
      /^secondary\.metrics_listen: need ADDRESS:PORT/,
    ],
  ];
  for (const [what, yaml, re] of cases) {
    it(`rejects ${what} with a message naming the path`, () => {
      const p = problems(yaml);
      expect(p.length, JSON.stringify(p)).toBeGreaterThan(0);
      expect(
        p.some((x) => re.test(x)),
        JSON.stringify(p),
      ).toBe(true);
    });
  }
});

describe('a dual-stack service', () => {
  it('takes one address of each family, in either order, and a link-local node address', () => {
    const c = parseConfig(DUAL.replace('[192.0.2.100, "2001:db8::100"]', '["2001:db8::100", 192.0.2.100]'), 'd.yaml');
    expect(c.service).toMatchObject({ address: '192.0.2.100', address6: '2001:db8::100' });
    expect(c.primary).toMatchObject({ address: '192.0.2.1', address6: 'fe80::1' });
    expect(c.secondary).toMatchObject({ address: '192.0.2.2', address6: '2001:db8::2' });
    expect(serviceAddresses(c)).toEqual({ v4: 0xc0000264, v6: '20010db8000000000000000000000100' });
  });

  it('every data path of the secondary takes it: the pcap path too', () => {
    for (const datapath of ['auto', 'kernel', 'pcap'])
      expect(parseConfig(DUAL.replace('datapath: auto', `datapath: ${datapath}`), 'd.yaml').datapath).toBe(datapath);
  });

  it('the configuration the peer is told names both service addresses, one spelling each', () => {
    const a = peerConfigOf(parseConfig(DUAL, 'a.yaml'));
    const b = peerConfigOf(parseConfig(DUAL.replace('"2001:db8::100"]', '"2001:0db8:0:0::0100"]'), 'b.yaml'));
    expect(a.service).toBe('192.0.2.100,2001:db8::100');
    expect(b.service).toBe(a.service);
    expect(peerConfigOf(parseConfig(EXAMPLE, 'e.yaml')).service).toBe('192.0.2.100');
  });

  it('an IPv4-only file reads as before: no IPv6 address anywhere', () => {
    const c = parseConfig(EXAMPLE, 'e.yaml');
    expect([c.service.address6, c.primary.address6, c.secondary.address6]).toEqual([null, null, null]);
    expect(serviceAddresses(c).v6).toBeNull();
  });
});

describe('what a file may not say', () => {
  const base = EXAMPLE.replace(/^instance: .*$/m, 'instance: tcpfo');
  it('overlapping ports, a relative state_dir, a track port that is no failover port', () => {
    expect(
      problems(
        base.replace('ports: [21, 20, 7000, "8000-8010"]', 'ports: [21, 20, 7000, "6990-7005", "8000-8010", 8005]'),
      ),
    ).toEqual(['service.ports: 6990-7005 and 7000 overlap', 'service.ports: 8000-8010 and 8005 overlap']);
    expect(problems(base.replace('state_dir: /run/tcpfo', 'state_dir: run/tcpfo'))).toEqual([
      'state_dir: run/tcpfo is relative: need an absolute path',
    ]);
    const track = base.replace('# track:\n#   connect: [21]', 'track:\n  connect: [22]');
    expect(problems(track)).toEqual([
      'track.connect: 22 is not one of service.ports (track checks the server on the service address)',
    ]);
  });

  it('the example’s own track block, uncommented, is valid: the early-end grace then covers it', () => {
    const track = base
      .replace('# track:\n#   connect: [21]', 'track:\n  connect: [21]')
      .replace(
        '#   interval_ms: 1000\n#   timeout_ms: 1000\n#   fall: 3',
        '  interval_ms: 1000\n  timeout_ms: 1000\n  fall: 3',
      );
    expect(track).toMatch(/^track:$/m);
    const c = parseConfig(track, 'x.yaml');
    expect(c.track).toMatchObject({ connect: [21], fall: 3 });
    // fall × interval + timeout + heartbeat timeout = 4100 ms, a second more.
    expect(c.limits.early_end_grace_ms).toBe(5100);
    // Given explicitly, too short, it is still an error.
    expect(problems(track.replace('limits:', 'limits:\n  early_end_grace_ms: 3000'))[0]).toMatch(
      /early_end_grace_ms \(3000\) must exceed/,
    );
  });
});
