/**
 * Which part a node plays next (bridge/node/parts.ts): at its start, when
 * its start finds the service address answered, and at each operator's
 * command, for every part that may be running.
 */
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../bridge/node/control.js';
import { commandPlan, onClaimAtStart, partAtStart, type RunningPart } from '../../bridge/node/parts.js';

const RUNNING: RunningPart[] = ['starting', 'primary', 'secondary', 'active', 'promoted', 'standby'];

describe('a node’s part', () => {
  it('at its start: standby wins over the configured role', () => {
    expect(partAtStart('primary', false)).toBe('primary');
    expect(partAtStart('secondary', false)).toBe('secondary');
    expect(partAtStart('primary', true)).toBe('standby');
    expect(partAtStart('secondary', true)).toBe('standby');
  });

  it('a primary whose service address is answered: joins the secondary that took over (unless told to refuse); refuses anyone else', () => {
    expect(onClaimAtStart(true, 'swap-roles')).toBe('join-as-secondary');
    expect(onClaimAtStart(true, 'refuse')).toBe('refuse');
    expect(onClaimAtStart(false, 'swap-roles')).toBe('refuse');
    expect(onClaimAtStart(false, 'refuse')).toBe('refuse');
  });

  it('every command against every part: what it does', () => {
    const table = Object.fromEntries(
      COMMANDS.map((cmd) => [cmd, Object.fromEntries(RUNNING.map((r) => [r, commandPlan(cmd, r).do]))]),
    );
    expect(table).toEqual({
      switchover: {
        starting: 'refuse',
        primary: 'switchover',
        secondary: 'switchover',
        active: 'switchover',
        promoted: 'switchover',
        standby: 'refuse',
      },
      standby: {
        starting: 'refuse',
        primary: 'hand-over-then-standby',
        secondary: 'leave',
        // Serving alone: standby would leave no node serving.
        active: 'refuse',
        promoted: 'hand-over-then-standby',
        standby: 'refuse',
      },
      unstandby: {
        starting: 'refuse',
        primary: 'refuse',
        secondary: 'refuse',
        active: 'refuse',
        promoted: 'refuse',
        standby: 'rejoin',
      },
    });
  });

  it('a refusal says why, in the operator’s words', () => {
    expect(commandPlan('standby', 'active')).toEqual({
      do: 'refuse',
      message: 'this node serves alone: standby would leave no node serving (start the other node first)',
    });
    expect(commandPlan('switchover', 'standby')).toMatchObject({
      message: 'this node is in standby: tcpfo unstandby first',
    });
    expect(commandPlan('switchover', 'starting')).toMatchObject({ message: 'this node is still starting' });
    expect(commandPlan('unstandby', 'primary')).toMatchObject({ message: 'this node is not in standby' });
  });
});
