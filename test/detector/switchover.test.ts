/** Whether the pair may switch over now: pure, every refusal and the one way through. */
import { describe, expect, it } from 'vitest';
import { switchRefusal, SWITCHOVER_SINCE, versionAtLeast, type SwitchState } from '../../bridge/node/switchover.js';

const ready: SwitchState = {
  peer: 'up',
  peerRole: 'secondary',
  alone: false,
  unreplicated: 0,
  diverged: 0,
  configMismatch: false,
  peerVersion: SWITCHOVER_SINCE,
  inProgress: false,
  stopping: false,
};

describe('switchover readiness', () => {
  it('a healthy pair in sync may switch', () => {
    expect(switchRefusal(ready)).toBeNull();
  });

  it.each<[string, Partial<SwitchState>, RegExp]>([
    ['peer down', { peer: 'down' }, /secondary is down/],
    ['peer never heard', { peer: 'unknown' }, /secondary is down/],
    ['running alone', { alone: true }, /secondary is down/],
    ['the peer serves alone', { peerRole: 'alone' }, /calls itself alone/],
    ['configuration not heard yet', { configMismatch: null }, /not been heard yet/],
    ['configuration differs', { configMismatch: true }, /differs/],
    ['an older peer', { peerVersion: '0.3.9' }, /0\.3\.9, which cannot take a planned switchover/],
    ['diverged connections', { diverged: 2 }, /^2 connection\(s\) diverged/],
    ['connections in one server only', { unreplicated: 3 }, /^3 connection\(s\) live only in this node/],
    ['already switching', { inProgress: true }, /already in progress/],
    ['stopping', { stopping: true }, /stopping/],
  ])('refused: %s', (_what, change, why) => {
    expect(switchRefusal({ ...ready, ...change })).toMatch(why);
  });

  it('versions compare by number, not by text', () => {
    expect(versionAtLeast('0.10.0', '0.4.0')).toBe(true);
    expect(versionAtLeast('0.4.0', '0.4.0')).toBe(true);
    expect(versionAtLeast('0.4.1-rc.1', '0.4.0')).toBe(true);
    expect(versionAtLeast('0.3.12', '0.4.0')).toBe(false);
    expect(versionAtLeast('1', '0.4.0')).toBe(true);
    expect(versionAtLeast('unknown', '0.4.0')).toBe(false);
  });
});
