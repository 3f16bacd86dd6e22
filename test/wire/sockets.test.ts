/** Parsing `ss` output for the connections an active secondary adopts. */
import { describe, expect, it } from 'vitest';
import { ipv4 } from '../../bridge/wire/addr.js';
import { PortMatcher } from '../../bridge/ports.js';
import { parseSs } from '../../bridge/io/sockets.js';

describe('parseSs', () => {
  it('keeps the service address’s connections on failover ports, in every connected state', () => {
    const text = [
      'ESTAB      0      0      192.0.2.100:7000   192.0.2.10:40000',
      'FIN-WAIT-2 0      0      192.0.2.100:7000   192.0.2.10:40001',
      'ESTAB      0      0      192.0.2.100:22     192.0.2.10:40002', // not a failover port
      'ESTAB      0      0      192.0.2.2:7000     192.0.2.10:40003', // not the service address
      'SYN-RECV   0      0      192.0.2.100:21     192.0.2.11:50000',
      'garbage',
      '',
    ].join('\n');
    expect(parseSs(text, '192.0.2.100', new PortMatcher([7000, 21]))).toEqual([
      { client: ipv4('192.0.2.10'), clientPort: 40000, servicePort: 7000 },
      { client: ipv4('192.0.2.10'), clientPort: 40001, servicePort: 7000 },
      { client: ipv4('192.0.2.11'), clientPort: 50000, servicePort: 21 },
    ]);
  });
});
