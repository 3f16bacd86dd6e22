/** Removes everything tcpfo daemons left on this node: rules of every instance, and every journaled change. */
import { NodeState, type Change } from './node-state.js';
import { removeAllRules } from './rules.js';
import { removeDivertRoutes } from './kernel-path.js';
import { InboundXlate, removeAllPins } from './xlate.js';
import { readdirSync } from 'node:fs';

export const DEFAULT_STATE_DIR = '/run/tcpfo';

export interface CleanupReport {
  ruleTags: string[];
  /** Whether a secondary's divert routing (kernel data path) was left and removed. */
  divertRoutes: boolean;
  /** Interfaces a primary's translation program was left on. */
  xlate: string[];
  /** The primary's pinned netfilter matches left (merge: kernel). */
  pins: string[];
  changes: Change[];
}

export async function cleanupNode(stateDir = DEFAULT_STATE_DIR): Promise<CleanupReport> {
  const ruleTags = await removeAllRules();
  // Nothing marks packets for the divert any more: its routing goes too.
  const divertRoutes = await removeDivertRoutes();
  // A primary's translation program, where its clsact qdisc was not its own (else the journal removes both).
  const xlate = listInterfaces().filter((dev) => InboundXlate.detach(dev));
  // Its pinned match, once no rule uses it (the rules went first).
  const pins = removeAllPins();
  const changes = await NodeState.recoverAll(stateDir);
  return { ruleTags, divertRoutes, xlate, pins, changes };
}

function listInterfaces(): string[] {
  try {
    return readdirSync('/sys/class/net');
  } catch {
    return [];
  }
}
