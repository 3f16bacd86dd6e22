/** What both bridges do to their node before anything else, each step journaled for undo. */
import { serviceAddressList, type Config } from '../../config/config.js';
import { hasSysctl, NodeState } from '../io/node-state.js';
import { kernelRelease, noteRtoBound } from '../io/kernel-facilities.js';
import { capabilityNames, keptCapabilities, limitCapabilities } from '../io/caps.js';
import { destroyConnections } from '../io/sockets.js';
import { installedTags, removeRules, RuleSet } from '../io/rules.js';
import { removeDivertRoutes } from '../io/kernel-path.js';
import { BRIDGE_MARK } from '../io/inject.js';
import { ensureBpffs, InboundXlate, matchPinPath } from '../io/xlate.js';
import { CongestionReset } from '../io/cc-reset.js';
import { ipAddr, ipv4 } from '../../net/addr.js';
import type { Logger } from '../log.js';

/**
 * Undo what a previous (killed) instance of this bridge left, put the VIP
 * dormant on `lo` (the kernel accepts it; the active bridge claims it on the
 * LAN), and bound the retransmission backoff (failover.rto_min_ms, README).
 * `own`: this bridge's role; `fresh`: it starts a daemon's life (not a
 * promoted primary inside a live secondary daemon), so what a killed
 * daemon left in the other role is undone too (see removeOtherRoleRules),
 * before this bridge records its own changes.
 */
export async function prepareNode(
  state: NodeState,
  cfg: Config,
  lanInterface: string,
  log: Logger,
  own: RoleTag,
  fresh: boolean,
): Promise<void> {
  if (fresh) await undoOtherRoleJournal(cfg, own, log);
  await undoLeftovers(state, log, roleName(own));
  // The tc programs a killed primary attached (translation, release record,
  // switch copy) are ours to remove whoever made their qdisc: the journal
  // holds the qdisc only when the bridge added it. Left on a node that now
  // plays the secondary, the copy would send the client's frames back.
  // And the netfilter match it pinned (merge: kernel).
  const detached = InboundXlate.detach(lanInterface);
  const unpinned = InboundXlate.unpin(matchPinPath(cfg.instance));
  if (detached || unpinned)
    log.warn(
      { dev: lanInterface, ...(unpinned ? { pin: matchPinPath(cfg.instance) } : {}) },
      'removed the tc programs a previous primary bridge left on this node',
    );
  // Either role may have to pin the primary's match (a secondary at a
  // takeover), when it can no longer mount a bpffs.
  if (cfg.merge !== 'queue' && cfg.inbound !== 'queue') {
    try {
      if (await ensureBpffs()) log.info({ path: '/sys/fs/bpf' }, 'mounted a bpffs for the primary’s netfilter match');
    } catch (e) {
      log.warn(
        { why: `no bpffs at /sys/fs/bpf: ${(e as Error).message}` },
        'the kernel release of primary-only connections is not available here: the queue does it',
      );
    }
  }
  await removeRules(`${cfg.instance}q`); // a quarantine a killed predecessor left (abortConnectionsQuarantined)
  await state.addDormantAddress(cfg.service.address, lanInterface, cfg.service.address6);
  await boundRto(state, cfg, lanInterface, log);
  // The bridge's own mark (on packets it injects, or passes in the kernel)
  // must never become a socket's mark: that socket's output would skip the
  // bridge's rules and reach clients raw. Linux's default; made sure of.
  await state.setSysctl('net.ipv4.tcp_fwmark_accept', 0);
}

export const RTO_SYSCTL = 'net.ipv4.tcp_rto_min_us';

/**
 * The node's bound on TCP's retransmission timeout (failover.rto_min_ms,
 * failover.rto_bound): net.ipv4.tcp_rto_min_us where the kernel has it
 * (6.11 on), or the rto_min metric of the routes through the LAN interface
 * (which TCP prefers to its own minimum, on every kernel). Returns which.
 */
export async function boundRto(
  state: NodeState,
  cfg: Config,
  lanInterface: string,
  log: Logger,
): Promise<'sysctl' | 'routes'> {
  const want = cfg.failover.rto_bound;
  const sysctl = hasSysctl(RTO_SYSCTL);
  if (want === 'sysctl' && !sysctl)
    throw new Error(
      `failover.rto_bound: sysctl, but this kernel (${kernelRelease()}) has no ${RTO_SYSCTL} (Linux 6.11 on): use routes or auto`,
    );
  if (want !== 'routes' && sysctl) {
    await state.setSysctl(RTO_SYSCTL, cfg.failover.rto_min_ms * 1000);
    noteRtoBound('sysctl');
    return 'sysctl';
  }
  const routes = await state.setRouteRtoMin(lanInterface, cfg.failover.rto_min_ms);
  log.info(
    {
      routes,
      rtoMinMs: cfg.failover.rto_min_ms,
      ...(sysctl ? {} : { why: `this kernel has no ${RTO_SYSCTL} (Linux < 6.11)` }),
    },
    `the retransmission timeout's bound is set on the routes through ${lanInterface}`,
  );
  noteRtoBound('routes');
  return 'routes';
}

/** The role a bridge plays on its node: its rules' tag and its journal are named after it. */
export type RoleTag = 'p' | 's';

/** The journal of the bridge of `role` (p: primary, s: secondary) of this instance on this node. */
export function journalOf(cfg: Config, role: RoleTag): string {
  return `${cfg.state_dir}/${cfg.instance}${role}.json`;
}

const otherRole = (r: RoleTag): RoleTag => (r === 'p' ? 's' : 'p');
const roleName = (r: RoleTag): string => (r === 'p' ? 'primary' : 'secondary');

/** Undoes the journal a killed daemon left in the role other than `own` (see removeOtherRoleRules). */
export async function undoOtherRoleJournal(cfg: Config, own: RoleTag, log: Logger): Promise<void> {
  const other = otherRole(own);
  await undoLeftovers(new NodeState(journalOf(cfg, other)), log, `${roleName(other)} bridge`);
}

/**
 * One daemon can have played both roles before it was killed: a secondary
 * daemon that took over became the merging primary when the other node
 * rejoined (roles swapped), and a primary daemon can have joined as the
 * secondary. The other role's journal is undone by prepareNode; its rules
 * here: left behind, they queue the node's whole output on the service
 * address to a queue nobody reads (fail closed), so a later takeover by
 * this node would serve nothing (the one-hour soak saw a node silent for
 * 5 s after a takeover, until a promotion happened to remove them). Called
 * once this bridge's own rules are in and stale sockets are aborted, so
 * nothing of theirs reaches a client raw. Never by a promoted primary
 * inside a live secondary daemon.
 */
export async function removeOtherRoleRules(cfg: Config, own: RoleTag, log: Logger): Promise<void> {
  const other = otherRole(own);
  const tag = `${cfg.instance}${other}`;
  if (!(await installedTags()).includes(tag)) return;
  await removeRules(tag);
  // A secondary's kernel path routes marked packets: nothing marks them once its tables are gone.
  if (other === 's') await removeDivertRoutes();
  log.warn({ tag }, `removed the rules a previous ${roleName(other)} bridge left on this node`);
}

/** Undoes what a previous (killed) instance of this bridge left on the node, from its journal. */
export async function undoLeftovers(state: NodeState, log: Logger, role: string): Promise<void> {
  const recovered = await NodeState.recover(state.journal);
  if (recovered.length) log.warn({ changes: recovered.length }, `undid what a previous ${role} left behind`);
}

/** Runs a bridge's setup; if any step fails, stops it (undoing every step done) and rethrows. */
export async function startOrUndo<T extends { stop(): Promise<void> }>(
  bridge: T,
  setup: () => Promise<void>,
): Promise<T> {
  try {
    await setup();
  } catch (e) {
    await bridge.stop();
    throw e;
  }
  return bridge;
}

let ccReset: { key: string; reset: CongestionReset | null } | undefined;

/**
 * The node's congestion reset (io/cc-reset.ts), loaded by the first bridge
 * of this process while it still has its privileges; the bridges that follow
 * it in the process (a role change, a switchover) share it. Null, logged
 * once, where the kernel cannot run it: connections then keep their
 * congestion state when the node starts serving alone.
 */
export function nodeCongestionReset(cfg: Config, log: Logger): CongestionReset | null {
  const key = JSON.stringify([cfg.service.address, cfg.service.address6, cfg.service.ports]);
  if (ccReset?.key === key) return ccReset.reset;
  ccReset?.reset?.close();
  let reset: CongestionReset | null = null;
  try {
    reset = CongestionReset.load(ipv4(cfg.service.address), cfg.service.ports, cfg.service.address6);
  } catch (e) {
    log.warn(
      { err: (e as Error).message },
      'no congestion reset: a node that starts serving alone keeps each connection’s congestion state',
    );
  }
  ccReset = { key, reset };
  return reset;
}

/**
 * One pass of the node's congestion reset, when it starts serving alone:
 * what it did, for the log and the takeover's timeline (null where there is
 * no reset). A failure is logged, never thrown.
 */
export async function resetCongestion(reset: CongestionReset | null, log: Logger): Promise<string | null> {
  if (!reset) return null;
  try {
    const r = await reset.run();
    const failed = r.failed ? `; ${r.failed} failed (${r.firstError})` : '';
    return `reset the congestion state of ${r.reset} connection(s) in ${r.ms.toFixed(1)} ms${failed}`;
  } catch (e) {
    log.error({ err: (e as Error).message }, 'could not reset the congestion state of the connections');
    return null;
  }
}

/**
 * The last setup step: keep only CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (io/caps.ts),
 * and CAP_SYS_NICE with real-time threads (a role change starts new ones),
 * unless the configuration says otherwise. Logged either way.
 */
export function dropPrivileges(cfg: Config, log: Logger): void {
  if (!cfg.security.limit_capabilities) {
    log.warn('security.limit_capabilities is off: the bridge keeps every capability it was started with');
    return;
  }
  const keep = keptCapabilities(cfg.scheduling.realtime_priority > 0);
  const r = limitCapabilities(keep);
  if (!r.boundingLimited)
    log.warn({ bounding: r.bounding }, 'capabilities limited, but the bounding set could not be (no CAP_SETPCAP)');
  else log.info({ permitted: r.permitted }, `capabilities limited to ${capabilityNames(keep)}; no_new_privs set`);
}

/**
 * Aborts this node's TCP connections on the service address and a failover
 * port (SOCK_DESTROY, as `ss -K`): sockets that can no longer be replicated or continued —
 * what a killed predecessor's servers left (FIN-WAIT orphans that still
 * retransmit, in the client's sequence space when this node was the
 * secondary or served alone), or a stopping secondary's copies. The caller
 * has the bridge's rules in place, so the RSTs go through the bridge, never
 * raw to a client. Logged; a failure is logged, not thrown.
 */
export async function abortConnections(cfg: Config, log: Logger, why: string): Promise<number> {
  try {
    const n = await destroyConnections(serviceAddressList(cfg), cfg.service.ports);
    if (n) log.warn({ sockets: n }, `aborted ${n} connection(s) on the service address: ${why}`);
    return n;
  } catch (e) {
    log.error({ err: (e as Error).message }, `could not abort the connections on the service address (${why})`);
    return 0;
  }
}

/**
 * abortConnections where no rule of ours is in place (a primary refusing to
 * start): the node's TCP output from the service address is dropped by a
 * rule of its own (tag `<instance>q`) while the sockets are aborted, so no
 * raw RST reaches a client — a connection the other node now serves can
 * share the aborted socket's numbers (the soak saw uploads reset this way).
 */
export async function abortConnectionsQuarantined(cfg: Config, log: Logger, why: string): Promise<number> {
  const q = await RuleSet.install(
    `${cfg.instance}q`,
    serviceAddressList(cfg).map((a) => ({
      hook: 'output' as const,
      match: { src: ipAddr(a), sports: cfg.service.ports },
      action: 'drop' as const,
      comment: 'tcpfo: quarantine while stale sockets are aborted',
    })),
    BRIDGE_MARK,
  );
  try {
    return await abortConnections(cfg, log, why);
  } finally {
    await q.remove();
  }
}
