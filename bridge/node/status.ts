/** What a node's control socket answers (`tcpfo status`): one shape per role, told apart by `role`. */
import type { kernelStatus } from '../io/kernel-facilities.js';
import type { PrimaryStatus } from '../primary/daemon.js';
import type { SecondaryStatus } from '../secondary/daemon.js';
import type { StandbyStatus } from './standby.js';

export type { PrimaryStatus, SecondaryStatus, StandbyStatus };
export type NodeStatus = PrimaryStatus | SecondaryStatus | StandbyStatus;
/** As the socket answers it: the node's status and what it found of the kernel. */
export type ReportedStatus =
  | (NodeStatus & { kernel?: ReturnType<typeof kernelStatus> })
  /** The node's status could not be taken (control.ts): why. */
  | { error: string; role?: undefined; kernel?: undefined };

type PrimaryReport = Extract<ReportedStatus, { role: 'primary' | 'alone' }>;
type SecondaryReport = Extract<ReportedStatus, { role: 'secondary' | 'active' }>;

/** A primary's status (or a node alone's). */
export function isPrimaryStatus(s: ReportedStatus): s is PrimaryReport {
  return s.role === 'primary' || s.role === 'alone';
}

/** A secondary's status (or one that took over). */
export function isSecondaryStatus(s: ReportedStatus): s is SecondaryReport {
  return s.role === 'secondary' || s.role === 'active';
}
