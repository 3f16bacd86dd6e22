/**
 * The heartbeat link's I/O shell for real (UDP on loopback, the peer in a
 * child process): a stall of our own event loop is not the peer's silence.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PeerLink, stallLogger } from '../../bridge/detector/peer-link.js';
import type { Decision } from '../../bridge/detector/detector.js';
import { distScript } from '../../rig/dist.js';

/**
 * Our primary's link on 127.0.0.1, and its secondary's in another process on
 * 127.0.0.2 (heartbeats every 20 ms, timeout 100 ms), once it is heard up.
 */
async function linkedPair(peerPlanAheadMs?: number): Promise<{
  peer: ReturnType<typeof spawn>;
  link: PeerLink;
  decisions: Decision[];
  late: number[];
}> {
  const key = randomBytes(32);
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const peer = spawn(process.execPath, [
    '--input-type=module',
    '-e',
    `const { PeerLink } = await import(${JSON.stringify(distScript('bridge/detector/peer-link.js'))});
     await PeerLink.open({ self: '127.0.0.2', peer: '127.0.0.1', port: ${port}, key: Buffer.from('${key.toString('hex')}', 'hex'), intervalMs: 20, timeoutMs: 100, role: 'secondary', peerRoles: ['primary'], onDecision: () => {}${peerPlanAheadMs === undefined ? '' : `, planAheadMs: ${peerPlanAheadMs}`} });
     // 'stall N' on stdin holds this process's event loop N ms.
     process.stdin.on('data', (d) => { const until = Date.now() + Number(String(d).split(' ')[1]); while (Date.now() < until) {} console.log('stalled'); });
     console.log('ready');`,
  ]);
  const decisions: Decision[] = [];
  const late: number[] = [];
  const link = await PeerLink.open({
    self: '127.0.0.1',
    peer: '127.0.0.2',
    port,
    key,
    intervalMs: 20,
    timeoutMs: 100,
    role: 'primary',
    peerRoles: ['secondary'],
    onDecision: (d) => decisions.push(d),
    onStall: (ms) => late.push(ms),
  });
  try {
    await once(peer.stdout!, 'data');
    for (let i = 0; i < 100 && link.detector.peer !== 'up'; i++) await new Promise((r) => setTimeout(r, 20));
    expect(link.detector.peer).toBe('up');
  } catch (e) {
    link.close();
    peer.kill('SIGKILL');
    throw e;
  }
  return { peer, link, decisions, late };
}

/** Holds the peer process's event loop `ms` and waits until it is over. */
async function stallPeer(peer: ReturnType<typeof spawn>, ms: number): Promise<void> {
  const done = once(peer.stdout!, 'data');
  peer.stdin!.write(`stall ${ms}\n`);
  await done;
}

describe('PeerLink', () => {
  it('the peer’s event loop held 600 ms: its heartbeats, planned a second ahead, go on from its thread, and it is never declared down', async () => {
    const { peer, link, decisions } = await linkedPair();
    try {
      const before = decisions.length;
      await stallPeer(peer, 600);
      await new Promise((r) => setTimeout(r, 200));
      expect(
        decisions.slice(before).filter((d) => d.peer === 'down'),
        JSON.stringify(decisions),
      ).toEqual([]);
      expect(link.detector.peer).toBe('up');
    } finally {
      link.close();
      peer.kill('SIGKILL');
    }
  });

  it('held longer than it planned ahead (200 ms): its heartbeats run out and it is declared down, then up again', async () => {
    const { peer, link, decisions } = await linkedPair(200);
    try {
      const before = decisions.length;
      await stallPeer(peer, 600);
      for (let i = 0; i < 50 && link.detector.peer !== 'up'; i++) await new Promise((r) => setTimeout(r, 20));
      expect(
        decisions.slice(before).map((d) => d.peer),
        JSON.stringify(decisions),
      ).toEqual(['down', 'up']);
    } finally {
      link.close();
      peer.kill('SIGKILL');
    }
  });

  it('a 700 ms stall of our own event loop does not declare a live peer down (its heartbeats wait in the socket); the peer dying does, within the timeout', async () => {
    const { peer, link, decisions, late } = await linkedPair();
    try {
      await new Promise((r) => setTimeout(r, 300));
      const before = decisions.length;
      // Busy for 700 ms: no timer, no I/O runs meanwhile; the peer goes on sending.
      const until = Date.now() + 700;
      while (Date.now() < until) {
        /* stall */
      }
      await new Promise((r) => setTimeout(r, 300));
      expect(
        decisions.slice(before).filter((d) => d.peer === 'down'),
        JSON.stringify(decisions),
      ).toEqual([]);
      expect(link.detector.peer).toBe('up');
      expect(link.stalls).toBeGreaterThan(0);
      // Reported with how late the heartbeat went out (for the bridge's log line).
      expect(Math.max(...late)).toBeGreaterThanOrEqual(650);
      // The peer really dies: declared down (one timeout, plus timer slack).
      const killedAt = Date.now();
      peer.kill('SIGKILL');
      for (let i = 0; i < 100 && link.detector.peer !== 'down'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(link.detector.peer).toBe('down');
      expect(Date.now() - killedAt).toBeLessThan(400);
    } finally {
      link.close();
      peer.kill('SIGKILL');
    }
  });

  it('a loop busy 150 ms per turn for 1.5 s (the heartbeats read at the start of each turn, judged at its end) does not declare a live peer down; the peer dying still does', async () => {
    const { peer, link, decisions } = await linkedPair();
    try {
      await new Promise((r) => setTimeout(r, 300));
      const before = decisions.length;
      // Each turn of the loop: timers, then I/O (the heartbeats that wait), then
      // 150 ms of work queued behind it (as a long batch of packets is).
      const end = Date.now() + 1500;
      await new Promise<void>((resolve) => {
        const turn = () => {
          const until = Date.now() + 150;
          while (Date.now() < until) {
            /* busy */
          }
          if (Date.now() < end) setImmediate(turn);
          else resolve();
        };
        setImmediate(turn);
      });
      await new Promise((r) => setTimeout(r, 300));
      expect(
        decisions.slice(before).filter((d) => d.peer === 'down'),
        JSON.stringify(decisions),
      ).toEqual([]);
      expect(link.detector.peer).toBe('up');
      peer.kill('SIGKILL');
      for (let i = 0; i < 100 && link.detector.peer !== 'down'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(link.detector.peer).toBe('down');
    } finally {
      link.close();
      peer.kill('SIGKILL');
    }
  });

  it('wakes its event loop a few times per timeout, not every interval: with the peer heard, and with the peer dead', async () => {
    const { peer, link } = await linkedPair();
    try {
      // Heartbeats come every 20 ms and are taken as they come; the timer
      // runs at the peer's deadline (100 ms of silence) and to tell the
      // configuration (every second): 10 times a second here, also beside two
      // CPU hogs (26 under the whole suite's load while the timer still
      // re-planned beside the heartbeats heard). Every interval would be 50.
      const t0 = link.timerTurns;
      await new Promise((r) => setTimeout(r, 1000));
      const heard = link.timerTurns - t0;
      expect(link.detector.peer).toBe('up');
      expect(heard, `${heard} turns in 1 s with the peer heard`).toBeLessThanOrEqual(30);
      expect(heard).toBeGreaterThan(0);
      peer.kill('SIGKILL');
      for (let i = 0; i < 100 && link.detector.peer !== 'down'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(link.detector.peer).toBe('down');
      // Down, the deadline is gone: the timer only keeps the plan, every 200 ms,
      // and tells the configuration (it once ran every millisecond).
      const t1 = link.timerTurns;
      await new Promise((r) => setTimeout(r, 1000));
      const down = link.timerTurns - t1;
      expect(down, `${down} turns in 1 s with the peer down`).toBeLessThanOrEqual(30);
      expect(down).toBeGreaterThan(0);
    } finally {
      link.close();
      peer.kill('SIGKILL');
    }
  });

  it('a host that reflects our own heartbeats with the dead primary’s address does not bring the primary back', async () => {
    const key = randomBytes(32);
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const decisions: Decision[] = [];
    // The secondary's link accepts every role a genuine peer may announce (a role swap needs 'secondary').
    const s = await PeerLink.open({
      self: '127.0.0.2',
      peer: '127.0.0.1',
      port,
      key,
      intervalMs: 20,
      timeoutMs: 100,
      role: 'secondary',
      peerRoles: ['primary', 'alone', 'secondary'],
      onDecision: (d) => decisions.push(d),
    });
    const p = await PeerLink.open({
      self: '127.0.0.1',
      peer: '127.0.0.2',
      port,
      key,
      intervalMs: 20,
      timeoutMs: 100,
      role: 'primary',
      peerRoles: ['secondary'],
      onDecision: () => {},
    });
    const reflector = createSocket({ type: 'udp4' });
    try {
      for (let i = 0; i < 100 && s.detector.peer !== 'up'; i++) await new Promise((r) => setTimeout(r, 20));
      expect(s.detector.peer).toBe('up');
      // The primary dies; a host takes its address and port and sends back whatever arrives.
      p.close();
      await new Promise<void>((resolve) => reflector.bind({ address: '127.0.0.1', port }, resolve));
      let reflected = 0;
      reflector.on('message', (msg) => {
        reflected++;
        reflector.send(msg, port, '127.0.0.2');
      });
      await new Promise((r) => setTimeout(r, 1000));
      expect(reflected).toBeGreaterThan(20);
      expect(decisions.map((d) => d.peer)).toEqual(['up', 'down']);
      expect(s.detector.stats.rejected['wrong-sender']).toBeGreaterThan(20);
    } finally {
      reflector.close();
      p.close();
      s.close();
    }
  });

  it('logs a stall of half the timeout or more, not shorter ones', () => {
    const lines: { obj: Record<string, unknown>; msg: string }[] = [];
    const log = {
      warn: (obj: Record<string, unknown>, msg: string) => lines.push({ obj, msg }),
    } as unknown as Parameters<typeof stallLogger>[0];
    const onStall = stallLogger(log, 100);
    onStall(21);
    onStall(49);
    expect(lines).toEqual([]);
    onStall(50);
    onStall(730);
    expect(lines.map((l) => l.obj.lateMs)).toEqual([50, 730]);
    expect(lines[1]!.msg).toMatch(/event loop stalled 730 ms: heartbeats went on from their thread/);
  });
});
