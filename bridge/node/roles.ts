/**
 * Roles, as the daemon shell (daemon.ts) and the two bridges see each other:
 * the role names a hook hears, and how a secondary that took over starts the
 * primary role when the other node rejoins as its secondary. The shell hands
 * that starter to the secondary bridge, so secondary/ never imports primary/
 * (and primary/ never imports secondary/).
 */
import type { Config } from '../../config/config.js';
import type { Logger } from '../log.js';
import type { PeerLink } from '../detector/peer-link.js';
import type { InboundXlate } from '../io/xlate.js';
import type { PrimaryStatus } from './status.js';

/**
 * The roles a node runs in, the one vocabulary: the metrics' `tcpfo_role{role}`,
 * `tcpfo status`, the hooks. primary: merging with a live secondary; alone: the
 * primary without one; secondary: replicating; active: a secondary that took
 * over; standby: out of the pair by an operator's command. Heartbeats carry
 * three of them (detector/heartbeat.ts), the role machine its own steps
 * between them (role-machine.ts).
 */
export const NODE_ROLES = ['primary', 'secondary', 'alone', 'active', 'standby'] as const;
export type NodeRole = (typeof NODE_ROLES)[number];

/** A role change, as the daemon's hook hears of it: the new role (or `stopped`) and why. */
export type Role = NodeRole | 'stopped';
export type RoleListener = (role: Role, reason: string) => void;

/** How a planned switchover (or standby) ended, for the operator. */
export interface SwitchResult {
  ok: boolean;
  message: string;
}

/** The primary role a promoted secondary runs. */
export interface PromotedBridge {
  stop(): Promise<void>;
  status(): PrimaryStatus;
  halt(): void;
  reload(cfg: Config): void;
  /** A planned switchover: hand the service to the other node (switchover.ts). */
  switchover(why: string): Promise<SwitchResult>;
}

/**
 * Starts the primary role on this node (the configuration with the roles
 * swapped), adopting the connections it serves alone and taking over the
 * running heartbeat link.
 */
export type StartPrimaryRole = (
  cfg: Config,
  log: Logger,
  opts: {
    adoptExisting: true;
    peer: PeerLink;
    onRoleChange: RoleListener;
    xlate?: InboundXlate;
    onHandedOver: () => void;
  },
) => Promise<PromotedBridge>;
