/** Removes everything tcpfo daemons left on this node: rules of every instance, and every journaled change. */
import { NodeState, type Change } from './node-state.js';
import { removeAllRules } from './rules.js';

export const DEFAULT_STATE_DIR = '/run/tcpfo';

export interface CleanupReport {
  ruleTags: string[];
  changes: Change[];
}

export async function cleanupNode(stateDir = DEFAULT_STATE_DIR): Promise<CleanupReport> {
  const ruleTags = await removeAllRules();
  const changes = await NodeState.recoverAll(stateDir);
  return { ruleTags, changes };
}
