/** Removes everything tcpfo daemons left on this node: rules of every instance, and every journaled change. */
import { NodeState, type Change } from './node-state.js';
import { removeAllRules } from './rules.js';
import { removeDivertRoutes } from './kernel-path.js';

export const DEFAULT_STATE_DIR = '/run/tcpfo';

export interface CleanupReport {
  ruleTags: string[];
  /** Whether a secondary's divert routing (kernel data path) was left and removed. */
  divertRoutes: boolean;
  changes: Change[];
}

export async function cleanupNode(stateDir = DEFAULT_STATE_DIR): Promise<CleanupReport> {
  const ruleTags = await removeAllRules();
  // Nothing marks packets for the divert any more: its routing goes too.
  const divertRoutes = await removeDivertRoutes();
  const changes = await NodeState.recoverAll(stateDir);
  return { ruleTags, divertRoutes, changes };
}
