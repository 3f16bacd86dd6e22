/**
 * `track`: the verdict over a run of check results (pure), and the shell's
 * `connect` checks for real against servers on loopback, over both families:
 * a server that stops answering on one of the service addresses fails the
 * check, and the node gives up after `fall` failures.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ServerTrack, TrackState } from '../../bridge/node/track.js';

describe('TrackState', () => {
  it('gives up at the fall-th failure in a row, once', () => {
    const t = new TrackState(3);
    expect([true, false, false, true, false, false].map((ok) => t.result(ok))).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
    expect(t.result(false)).toBe(true);
    expect(t.result(false)).toBe(false);
    expect(t.failures).toBe(6);
  });

  it('does not count failures before the server first answered (it is still starting)', () => {
    const t = new TrackState(2);
    for (let i = 0; i < 10; i++) expect(t.result(false)).toBe(false);
    expect(t.started).toBe(false);
    expect(t.result(true)).toBe(false);
    expect(t.started).toBe(true);
    expect(t.result(false)).toBe(false);
    expect(t.result(false)).toBe(true);
  });
});

/** A server that closes each connection, on `host` and port `at` (0: any). */
async function listen(host: string, at = 0): Promise<Server> {
  const s = createServer((c) => c.destroy());
  s.listen(at, host);
  await once(s, 'listening');
  return s;
}

describe('ServerTrack connect checks (loopback, both families)', () => {
  it('checks each port on every address: the IPv6 server gone fails it, naming the address, and the node gives up', async () => {
    const lo6 = Object.values(networkInterfaces())
      .flat()
      .some((a) => a?.address === '::1');
    expect(lo6, 'this test needs ::1 on lo (IPv6 enabled)').toBe(true);
    const v4 = await listen('127.0.0.1');
    const p = (v4.address() as { port: number }).port;
    const v6 = await listen('::1', p);
    const lines: Array<{ msg: string; err?: string }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as { msg: string; err?: string });
        done();
      },
    });
    const log = pino({ level: 'info' }, sink);
    let gaveUp = '';
    let given = (): void => {};
    const gone = new Promise<void>((resolve) => (given = resolve));
    const track = new ServerTrack(
      { connect: [p], interval_ms: 20, timeout_ms: 1000, fall: 2 },
      ['127.0.0.1', '::1'],
      log,
      (why) => {
        gaveUp = why;
        given();
      },
    );
    track.start();
    try {
      const deadline = Date.now() + 10_000;
      while (!lines.some((l) => l.msg.startsWith('the local server answers')) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      expect(lines.map((l) => l.msg)).toContain('the local server answers: tracking it');
      // The IPv4 server still answers; the IPv6 one is gone.
      v6.close();
      await once(v6, 'close');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);
      expect(gaveUp).toBe(`the local server failed 2 checks in a row ([::1]:${p}: ECONNREFUSED)`);
      expect(lines.find((l) => l.msg === 'the local server failed a check')?.err).toBe(`[::1]:${p}: ECONNREFUSED`);
    } finally {
      track.stop();
      v4.close();
      if (v6.listening) v6.close();
    }
  });
});
