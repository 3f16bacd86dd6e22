/**
 * Prometheus metrics (prom-client) on the configured address only. Values are
 * read from the bridge's own counters at scrape time: nothing on the data path.
 * Names: `tcpfo_` prefix, base units, `_total` counters, no per-connection
 * labels; the process metrics under their standard names (process_*,
 * nodejs_*), so stock dashboards work. A value the bridge does not know (no
 * heartbeat answered yet, no failover yet) is absent, never 0.
 */
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { VERSION } from '../version.js';
import { kernelStatus, thisKernel } from '../io/kernel-facilities.js';
import { NODE_ROLES, type NodeRole } from './roles.js';
import type { RealtimeState } from '../io/realtime.js';
import { CC_ALL, CC_REOPENED, congestionResets } from '../io/cc-reset.js';

/** Leaves a label-less gauge without a sample (prom-client would export 0). */
function unknown(g: Gauge | Counter): void {
  (g as unknown as { hashMap: Record<string, unknown> }).hashMap = {};
}

/** A counter's value, or no series where the node has no such count. */
function countOrAbsent(c: Counter, v: number | undefined): void {
  if (v === undefined) unknown(c);
  else c.inc(v);
}

/** A 0/1 gauge read at scrape time; absent while the value is unknown (null or undefined). */
function flagGauge(reg: Registry, name: string, help: string, read: () => boolean | null | undefined): void {
  new Gauge({
    name,
    help,
    registers: [reg],
    collect() {
      const v = read();
      if (v === null || v === undefined) unknown(this);
      else this.set(v ? 1 : 0);
    },
  });
}

/** What a bridge reports at scrape time. */
/** What only a merging node (the primary) has to say. */
export interface MergeFigures {
  mergedSegments: number;
  mergedBytes: number;
  queuedBytes: number;
  /** Bytes of the primary's segments held (copies), over all connections. */
  heldBytes: number;
  heldSegments: number;
  divergences: number;
  /** Connections put on primary-only because the (live) secondary made no progress on them. */
  secondarySilent: number;
  /** Merged connections turned primary-only after the secondary failed, by how: in steps over the table, or as P's next segment of one came; and those the kernel released primary-only at once, in batches. */
  aloneTurns: { steps: number; asNeeded: number; inKernelAtOnce: number };
  /** Entries forgotten early to make room for a new connection, by what they were (closed, half-open). */
  evicted: Record<string, number>;
  /** Bytes not sent twice: cut from held segments whose prefix had gone out already. */
  prefixBytesTrimmed: number;
  /** Half-open sockets of the secondary's that the pair would never merge, reset in its stack. */
  halfOpenResets: number;
  /** Ranges of S's whose copies the kernel merge dropped, compared by their digests with P's bytes in the bridge; and of those, the ones that differed. */
  kernelDigests: { compared: number; differed: number };
  /** Re-sends to clients outside the normal merge, by source: P's retransmissions, S's, prefixes of held segments. */
  retransmissions: Record<string, number>;
  /** Copies the merger made (P's segments held, S's bytes stored), by buffer: a recycled one, or a new one. */
  copies: { reused: number; new: number };
  /** Bytes of recycled buffers waiting for the next copy. */
  idleBufferBytes: number;
}

export interface MetricsSnapshot {
  role: NodeRole;
  /** The node's data path: the primary's queue-and-merge path, or the secondary's kernel or pcap path. */
  datapath: 'merge' | 'kernel' | 'pcap' | 'none';
  peerUp: boolean;
  heartbeatRttSeconds: number | null;
  heartbeatsReceived: number;
  heartbeatsSent: number;
  heartbeatsRejected: Record<string, number>;
  /** Heartbeat timer runs later than an interval: the bridge's event loop stalled (the peer was judged after reading what arrived). */
  loopStalls: number;
  failovers: number;
  lastFailoverSeconds: number | null;
  connections: Record<string, number>;
  /** S's segments diverted: by the pcap path's bridge, or reaching the primary's merger; absent where no bridge sees them (the secondary's kernel path, standby). */
  divertedSegments?: number;
  divertedBytes?: number;
  /** Client frames injected into the secondary's stack (the pcap path); absent elsewhere. */
  injectedFrames?: number;
  /** The merger's figures: the primary only (a secondary or standby node has none: absent, not 0). */
  merge?: MergeFigures;
  /** Whether the peer's configuration differs from ours where it must agree (null: not heard yet, or an older peer). */
  peerConfigMismatch?: boolean | null;
  drops: Record<string, number>;
  nfqueue: Record<string, { received: number; enobufs: number; dropped: number }>;
  /** Frames captured with libpcap (the primary's ARP capture, the pcap path's); absent where nothing captures them. */
  pcapFrames?: number;
  /** Captured frames dropped because the bridge fell behind the wire (its backlog was full). */
  pcapDropped?: number;
  /** The primary's kernel translation of client segments: translated, SYNs passed, frames copied to the secondary. */
  kernelInbound?: {
    translated: number;
    synsPassed: number;
    duplicated: number;
    outOfWindow: number;
    mapFull?: number;
    released?: number;
    releaseRefused?: number;
    mergedP?: number;
    mergedS?: number;
    /** Bytes the kernel merge released. */
    mergedBytes?: number;
    mergeHeld?: number;
    mergeAckDropped?: number;
    handoverStolen?: number;
    /** Copies of P's stolen segments the kernel kept for the bridge, and those the bridge merged at once on taking their connection. */
    stashed?: number;
    stashedTaken?: number;
    /** A server's range sent again while it waited in the kernel, or S's of bytes released already. */
    mergeAgain?: number;
    /** Servers' pure ACKs released in the kernel with their lone D-SACK block overwritten. */
    dsackCleared?: number;
    /** Packets of several segments (GSO) the kernel merge held or released as their segments. */
    mergeGso?: number;
    /** Handshakes in the kernel: P's SYN-ACKs held for S's, handshakes merged, S's SYN-ACKs passed to the bridge. */
    handshakesHeld?: number;
    handshakesMerged?: number;
    handshakesToBridge?: number;
    handshakesMergedP?: number;
    /** Of those held, the ones whose SYN-ACK P's TCP was prompted to send again when the secondary failed. */
    handshakesPrompted?: number;
    /** Closes in the kernel: clients' FINs passed, closes completed (both FINs), clients' resets, and events the bridge could not be told. */
    clientFins?: number;
    ended?: number;
    clientResets?: number;
    eventsLost?: number;
    /** P's segments set aside in the queue behind an earlier answer of their client, and those sent back to the kernel (bridge/primary/order.ts). */
    orderWaited?: number;
    /** Of those, the ones that left before their turn, having waited the most a segment waits. */
    orderLate?: number;
    /** Counted segments that held their client's answers in the queue for the most a segment waits: their verdicts counted ahead of time. */
    orderHeldTooLong?: number;
    returnedToKernel?: number;
    /** P's D-SACK ACKs the bridge gave back to the kernel with the block overwritten. */
    dsackClearedP?: number;
    /** Client slots whose order count was set to the kernel's: segments the queue never delivered. */
    orderResyncs?: number;
  };
  /** Connections the kernel merged from their handshake, and those it handed to the bridge by why (primary). */
  kernelMerged?: number;
  kernelHandovers?: Record<string, number>;
  /** Of those the bridge took (reason "bridge"), what brought each: "p/data", "client/rst", "alone/ack", ... */
  kernelTakes?: Record<string, number>;
  /** Connections the bridge gave back to the kernel's merge, nothing of them waiting on either side (primary). */
  kernelReturns?: number;
  /** Where the primary releases P's segments of primary-only connections (config `merge`); absent on a secondary. */
  mergeMode?: 'kernel' | 'release' | 'queue';
  /** ARP requests and neighbour solicitations for the service addresses seen, and answered by this node; how late the answers went; the thread's priority. */
  arp?: { requests: number; replies: number; maxDelayUs: number; late: number; realtime: RealtimeState };
  /** The heartbeat thread's priority. */
  heartbeatRealtime?: RealtimeState;
  /** Silences of the secondary's heartbeats excused because its segments still arrived (the primary only). */
  silencesExcused?: number;
  /** Times a server-health check failed, and whether the local server is healthy now (track). */
  trackFailures?: number;
  serverHealthy?: boolean | null;
}

/** A counter whose value is read from the bridge at scrape time. */
function readCounter(
  reg: Registry,
  name: string,
  help: string,
  labelNames: string[],
  read: (c: Counter) => void,
): Counter {
  return new Counter({
    name,
    help,
    labelNames,
    registers: [reg],
    collect() {
      this.reset();
      read(this);
    },
  });
}

/** The pair's name in the metrics: `pair`, else the service address and the instance. */
export function pairName(cfg: { pair?: string | undefined; instance: string; service: { address: string } }): string {
  return cfg.pair ?? `${cfg.service.address}/${cfg.instance}`;
}

/** The last reload (SIGHUP) of this process: whether it took, and when one last did (the start counts). */
const reloads = { ok: true, okAt: Date.now() / 1000 };

export function noteReload(ok: boolean, nowSeconds = Date.now() / 1000): void {
  reloads.ok = ok;
  if (ok) reloads.okAt = nowSeconds;
}

/** Planned switchovers this process was asked to make as the primary, by how they ended. */
const switchovers = { done: 0, refused: 0, failed: 0 };

export function noteSwitchover(result: keyof typeof switchovers): void {
  switchovers[result]++;
}

/** How often Node's event-loop lag (nodejs_eventloop_lag_*) is sampled, ms. */
export const LOOP_LAG_SAMPLE_MS = 100;

export function buildRegistry(snap: () => MetricsSnapshot, pair = 'unnamed'): Registry {
  const reg = new Registry();
  // Node's event-loop lag sampled every 100 ms, not prom-client's 10: each
  // sample is a wake-up of the loop, and on an idle node those were most of
  // the bridge's CPU.
  collectDefaultMetrics({ register: reg, eventLoopMonitoringPrecision: LOOP_LAG_SAMPLE_MS });
  new Gauge({
    name: 'tcpfo_pair_info',
    help: 'The pair this node belongs to: 1, with its name (config `pair`, else service address/instance) as a label; the split-brain alert groups by it',
    labelNames: ['pair'],
    registers: [reg],
    collect() {
      this.set({ pair }, 1);
    },
  });
  new Gauge({
    name: 'tcpfo_build_info',
    help: 'The running tcpfo: 1, with its version and Node.js version as labels',
    labelNames: ['version', 'nodejs'],
    registers: [reg],
    collect() {
      this.set({ version: VERSION, nodejs: process.version }, 1);
    },
  });
  new Gauge({
    name: 'tcpfo_config_last_reload_successful',
    help: 'Whether the last reload (SIGHUP) of the configuration took: 1, or 0 when the file was invalid and the running configuration stayed',
    registers: [reg],
    collect() {
      this.set(reloads.ok ? 1 : 0);
    },
  });
  new Counter({
    name: 'tcpfo_switchovers_total',
    help: 'Planned switchovers (tcpfo switchover, standby, failover.preferred) this process handed over as the primary, by result: done, refused (the pair was not in sync: nothing changed), failed (the other node did not take over: this one serves on)',
    labelNames: ['result'],
    registers: [reg],
    collect() {
      this.reset();
      for (const [result, n] of Object.entries(switchovers)) this.inc({ result }, n);
    },
  });
  new Gauge({
    name: 'tcpfo_config_last_reload_success_timestamp_seconds',
    help: 'When the configuration last loaded (the start, or a reload that took), Unix seconds',
    registers: [reg],
    collect() {
      this.set(reloads.okAt);
    },
  });
  new Gauge({
    name: 'tcpfo_kernel_info',
    help: 'The node’s kernel: 1, with its release and where the retransmission timeout’s bound is set (sysctl, routes; none before the bridge set it) as labels',
    labelNames: ['release', 'rto_bound'],
    registers: [reg],
    collect() {
      this.reset();
      const k = kernelStatus();
      this.set({ release: k.release, rto_bound: k.rtoBound ?? 'none' }, 1);
    },
  });
  new Gauge({
    name: 'tcpfo_kernel_facility',
    help: 'Whether the node’s kernel has each facility a data path uses (docs/kernels.md): 1 or 0; absent where it cannot be told',
    labelNames: ['facility'],
    registers: [reg],
    collect() {
      for (const f of thisKernel().facilities)
        if (f.present !== null) this.set({ facility: f.name }, f.present ? 1 : 0);
    },
  });
  let cur: MetricsSnapshot | undefined;
  const get = () => (cur ??= snap());
  /** A series of the merger's figures: absent (not 0) where the node merges nothing. */
  const merged = (metric: Counter | Gauge, set: (m: MergeFigures) => void): void => {
    const m = get().merge;
    if (m) set(m);
    else unknown(metric);
  };
  /** A gauge of the merger's (absent on a node that merges nothing). */
  const mergeGauge = (name: string, help: string, value: (m: MergeFigures) => number): Gauge =>
    new Gauge({
      name,
      help,
      registers: [reg],
      collect() {
        merged(this, (m) => this.set(value(m)));
      },
    });
  // One snapshot per scrape: taken by the first collector, dropped after.
  const take = () => {
    cur = snap();
    return cur;
  };
  new Gauge({
    name: 'tcpfo_role',
    help: 'The bridge’s role: 1 for the current one',
    labelNames: ['role'],
    registers: [reg],
    collect() {
      const s = take();
      for (const r of NODE_ROLES) this.set({ role: r }, s.role === r ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tcpfo_datapath_info',
    help: 'The data path this bridge runs: merge (the primary), kernel or pcap (the secondary); 1 for the current one, all 0 in standby',
    labelNames: ['mode'],
    registers: [reg],
    collect() {
      const d = get().datapath;
      for (const m of ['merge', 'kernel', 'pcap']) this.set({ mode: m }, d === m ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tcpfo_merge_info',
    help: 'Where the primary merges: kernel (the common case and primary-only connections in its tc programs), release (only primary-only connections there) or queue (all in the bridge); 1 for the current one, absent on a secondary',
    labelNames: ['mode'],
    registers: [reg],
    collect() {
      const m = get().mergeMode;
      if (!m) return;
      for (const x of ['kernel', 'release', 'queue']) this.set({ mode: x }, m === x ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tcpfo_peer_up',
    help: 'Whether the peer bridge’s heartbeats arrive',
    registers: [reg],
    collect() {
      this.set(get().peerUp ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tcpfo_heartbeat_rtt_seconds',
    help: 'Heartbeat round trip (includes up to one heartbeat interval)',
    registers: [reg],
    collect() {
      const v = get().heartbeatRttSeconds;
      if (v !== null) this.set(v);
      else unknown(this);
    },
  });
  readCounter(reg, 'tcpfo_heartbeats_received_total', 'Valid heartbeats received', [], (c) =>
    c.inc(get().heartbeatsReceived),
  );
  readCounter(reg, 'tcpfo_heartbeats_sent_total', 'Heartbeats sent', [], (c) => c.inc(get().heartbeatsSent));
  readCounter(
    reg,
    'tcpfo_heartbeats_rejected_total',
    'Heartbeats rejected (forged, replayed, malformed)',
    ['reason'],
    (c) => {
      for (const [reason, n] of Object.entries(get().heartbeatsRejected)) c.inc({ reason }, n);
    },
  );
  readCounter(
    reg,
    'tcpfo_event_loop_stalls_total',
    'Heartbeat timer runs late by more than an interval (the bridge process was stalled)',
    [],
    (c) => c.inc(get().loopStalls),
  );
  readCounter(reg, 'tcpfo_failovers_total', 'Role changes after a peer failure', [], (c) => c.inc(get().failovers));
  for (const [name, help, mode] of [
    [
      'tcpfo_congestion_resets_total',
      'Connections whose congestion control started anew as this node began serving alone (absent where the kernel cannot)',
      CC_ALL,
    ],
    [
      'tcpfo_window_reopened_resets_total',
      'Connections whose congestion control started anew, both nodes up, once their client offered a segment’s window again after at least 200 ms of less: the merge had held each server’s window probes for the other’s, and BBR took the timeouts for a policer (absent where the kernel cannot)',
      CC_REOPENED,
    ],
  ] as const)
    readCounter(reg, name, help, ['result'], (c) => {
      if (!congestionResets.loaded) return;
      c.inc({ result: 'reset' }, congestionResets.byMode[mode].reset);
      c.inc({ result: 'failed' }, congestionResets.byMode[mode].failed);
    });
  new Gauge({
    name: 'tcpfo_last_failover_duration_seconds',
    help: 'From the failure decision to the end of the takeover (or of the flush, on the primary)',
    registers: [reg],
    collect() {
      const v = get().lastFailoverSeconds;
      if (v !== null) this.set(v);
      else unknown(this);
    },
  });
  new Gauge({
    name: 'tcpfo_connections',
    help: 'Failover connections by state',
    labelNames: ['state'],
    registers: [reg],
    collect() {
      for (const [state, n] of Object.entries(get().connections)) this.set({ state }, n);
    },
  });
  readCounter(
    reg,
    'tcpfo_merged_segments_total',
    'Segments released to clients after merging (by the bridge or the kernel)',
    [],
    (c) => merged(c, (m) => c.inc(m.mergedSegments)),
  );
  readCounter(
    reg,
    'tcpfo_merged_bytes_total',
    'Payload bytes released to clients after merging (by the bridge or, first sent, by the kernel)',
    [],
    (c) => merged(c, (m) => c.inc(m.mergedBytes)),
  );
  readCounter(reg, 'tcpfo_diverted_segments_total', 'Segments of the secondary diverted to the primary', [], (c) =>
    countOrAbsent(c, get().divertedSegments),
  );
  readCounter(reg, 'tcpfo_diverted_bytes_total', 'Payload bytes of the secondary diverted to the primary', [], (c) =>
    countOrAbsent(c, get().divertedBytes),
  );
  readCounter(reg, 'tcpfo_injected_frames_total', 'Client frames injected into the secondary’s stack', [], (c) =>
    countOrAbsent(c, get().injectedFrames),
  );
  mergeGauge(
    'tcpfo_queued_bytes',
    'Secondary output bytes waiting for comparison on the primary',
    (m) => m.queuedBytes,
  );
  mergeGauge(
    'tcpfo_held_bytes',
    'Bytes of primary segments held until the secondary produced them (with tcpfo_queued_bytes, bounded by limits.max_buffered_bytes)',
    (m) => m.heldBytes,
  );
  mergeGauge('tcpfo_held_segments', 'Primary segments held until the secondary produced them', (m) => m.heldSegments);
  readCounter(
    reg,
    'tcpfo_merge_copies_total',
    'Copies the merger made of held primary segments and stored secondary bytes, by buffer: reused (recycled) or new',
    ['buffer'],
    (c) =>
      merged(c, (m) => {
        c.inc({ buffer: 'reused' }, m.copies.reused);
        c.inc({ buffer: 'new' }, m.copies.new);
      }),
  );
  mergeGauge(
    'tcpfo_merge_idle_buffer_bytes',
    'Bytes of recycled copy buffers waiting for the next copy on the primary',
    (m) => m.idleBufferBytes,
  );
  readCounter(
    reg,
    'tcpfo_divergences_total',
    'Connections degraded because the replicas produced different bytes',
    [],
    (c) => merged(c, (m) => c.inc(m.divergences)),
  );
  readCounter(
    reg,
    'tcpfo_secondary_half_open_resets_total',
    'Half-open sockets of the secondary that the pair would never merge (its SYN-ACK came while alone, for a primary-only or adopted connection, or matched no SYN-ACK of the primary), reset in its stack so that they do not answer a later connection on the same ports',
    [],
    (c) => merged(c, (m) => c.inc(m.halfOpenResets)),
  );
  readCounter(
    reg,
    'tcpfo_kernel_digest_comparisons_total',
    'Ranges of the secondary’s output whose copies the kernel merge dropped (it came first) and whose connection then went to the bridge: compared there with the primary’s bytes by the kernel’s digest of them, by result (same, differed: a divergence)',
    ['result'],
    (c) =>
      merged(c, (m) => {
        c.inc({ result: 'same' }, m.kernelDigests.compared - m.kernelDigests.differed);
        c.inc({ result: 'differed' }, m.kernelDigests.differed);
      }),
  );
  readCounter(
    reg,
    'tcpfo_prefix_trimmed_bytes_total',
    'Bytes cut from held primary segments because a prefix had sent them already (not sent twice)',
    [],
    (c) => merged(c, (m) => c.inc(m.prefixBytesTrimmed)),
  );
  readCounter(
    reg,
    'tcpfo_evicted_total',
    'Connection entries forgotten to make room for a new connection in a full table: closed (lingering) or half-open (never acknowledged by the client: a SYN flood)',
    ['state'],
    (c) => {
      merged(c, (m) => {
        for (const [state, n] of Object.entries(m.evicted)) c.inc({ state }, n);
      });
    },
  );
  readCounter(
    reg,
    'tcpfo_secondary_silent_total',
    'Connections put on primary-only because the live secondary made no progress on them (lost its socket)',
    [],
    (c) => merged(c, (m) => c.inc(m.secondarySilent)),
  );
  readCounter(
    reg,
    'tcpfo_alone_turns_total',
    'Merged connections turned primary-only after the secondary failed: kernel-batch (those the kernel merged, released primary-only there at once, in one batch, before the bridge takes their state), steps (the bridge’s pass over its table, 20 ms of work per turn of its event loop), as-needed (at once, as the primary’s next segment of one came to the bridge before the pass reached it)',
    ['how'],
    (c) =>
      merged(c, (m) => {
        c.inc({ how: 'kernel-batch' }, m.aloneTurns.inKernelAtOnce);
        c.inc({ how: 'steps' }, m.aloneTurns.steps);
        c.inc({ how: 'as-needed' }, m.aloneTurns.asNeeded);
      }),
  );
  readCounter(
    reg,
    'tcpfo_retransmissions_total',
    'Segments re-sent to clients outside the normal merge, by source (primary, secondary, prefix)',
    ['source'],
    (c) => {
      merged(c, (m) => {
        for (const [source, n] of Object.entries(m.retransmissions)) c.inc({ source }, n);
      });
    },
  );
  readCounter(reg, 'tcpfo_drops_total', 'Packets dropped by the bridge, by reason', ['reason'], (c) => {
    for (const [reason, n] of Object.entries(get().drops)) c.inc({ reason }, n);
  });
  readCounter(reg, 'tcpfo_nfqueue_packets_total', 'Packets received from NFQUEUE', ['queue'], (c) => {
    for (const [queue, q] of Object.entries(get().nfqueue)) c.inc({ queue }, q.received);
  });
  readCounter(
    reg,
    'tcpfo_nfqueue_enobufs_total',
    'Times the kernel dropped queue messages for lack of socket buffer',
    ['queue'],
    (c) => {
      for (const [queue, q] of Object.entries(get().nfqueue)) c.inc({ queue }, q.enobufs);
    },
  );
  readCounter(
    reg,
    'tcpfo_nfqueue_dropped_total',
    'Packets the kernel dropped from the queue (it was full, or its socket was): TCP sends them again',
    ['queue'],
    (c) => {
      for (const [queue, q] of Object.entries(get().nfqueue)) c.inc({ queue }, q.dropped);
    },
  );
  readCounter(
    reg,
    'tcpfo_kernel_inbound_total',
    'Client segments the primary’s kernel program handled, by what it did (translated, syn-passed, copied to the secondary; out-of-window: translated but outside the windows, so not recorded; map-full: connections left to the queue, the map being full)',
    ['action'],
    (c) => {
      const k = get().kernelInbound;
      if (!k) return;
      c.inc({ action: 'translated' }, k.translated);
      c.inc({ action: 'syn-passed' }, k.synsPassed);
      c.inc({ action: 'copied' }, k.duplicated);
      c.inc({ action: 'out-of-window' }, k.outOfWindow);
      if (k.mapFull !== undefined) c.inc({ action: 'map-full' }, k.mapFull);
    },
  );
  readCounter(
    reg,
    'tcpfo_kernel_outbound_total',
    'P’s segments of primary-only connections the primary’s egress program handled (merge: kernel or auto): released into the client’s spaces, or refused (dropped: the connection had just gone; P’s TCP sends them again); and P’s segments the kernel releases that waited in the queue behind an earlier answer of their client (waited; waited-too-long: left before their turn after 50 ms; held-too-long: a segment the queue took on its own account that held its client’s later answers in the queue for 50 ms, after which they pass in the kernel again), or went back to the kernel from the queue (returned); P’s pure ACKs reporting a client segment received twice, given back to the kernel with that D-SACK block overwritten (dsack-cleared)',
    ['action'],
    (c) => {
      const k = get().kernelInbound;
      if (k?.released === undefined || get().mergeMode === 'queue') return;
      c.inc({ action: 'released' }, k.released);
      c.inc({ action: 'refused' }, k.releaseRefused ?? 0);
      c.inc({ action: 'waited' }, k.orderWaited ?? 0);
      c.inc({ action: 'waited-too-long' }, k.orderLate ?? 0);
      c.inc({ action: 'held-too-long' }, k.orderHeldTooLong ?? 0);
      c.inc({ action: 'returned' }, k.returnedToKernel ?? 0);
      c.inc({ action: 'dsack-cleared' }, k.dsackClearedP ?? 0);
    },
  );
  readCounter(
    reg,
    'tcpfo_answer_order_resyncs_total',
    'Client slots whose answer-order count the primary set to the kernel’s: segments counted for its output queue that never reached it (the queue was full)',
    [],
    (c) => {
      const n = get().kernelInbound?.orderResyncs;
      if (n !== undefined) c.inc(n);
    },
  );
  readCounter(
    reg,
    'tcpfo_kernel_merge_total',
    'What the primary’s kernel merge did with the servers’ segments (merge: kernel): released-p, released-s (the second copy of a range went to the client: P’s or S’s), held (a first arrival waited for the other’s copy), ack-absorbed (a pure ACK that moved nothing), stolen (P’s segment as its connection went to the bridge: P sends it again), stashed (a copy of a stolen segment of P’s kept for the bridge), stash-merged (such a copy the bridge merged at once as it took the connection, not waiting for P’s TCP to send it again), again (a server’s range sent again while it waited: kept waiting; or S’s of bytes released already: dropped), dsack-cleared (a server’s pure ACK released with its lone D-SACK block, the report of a client segment that came twice, overwritten: the connection stays in the kernel), gso (a packet of several segments, a GSO burst of P’s or S’s copy of one, held or released as those segments)',
    ['action'],
    (c) => {
      const k = get().kernelInbound;
      if (k?.mergedP === undefined || get().mergeMode !== 'kernel') return;
      c.inc({ action: 'released-p' }, k.mergedP);
      c.inc({ action: 'released-s' }, k.mergedS ?? 0);
      c.inc({ action: 'held' }, k.mergeHeld ?? 0);
      c.inc({ action: 'ack-absorbed' }, k.mergeAckDropped ?? 0);
      c.inc({ action: 'stolen' }, k.handoverStolen ?? 0);
      c.inc({ action: 'stashed' }, k.stashed ?? 0);
      c.inc({ action: 'stash-merged' }, k.stashedTaken ?? 0);
      c.inc({ action: 'again' }, k.mergeAgain ?? 0);
      c.inc({ action: 'dsack-cleared' }, k.dsackCleared ?? 0);
      c.inc({ action: 'gso' }, k.mergeGso ?? 0);
    },
  );
  readCounter(
    reg,
    'tcpfo_kernel_handshakes_total',
    'What the primary’s kernel did with handshakes (merge: kernel), a client’s (SYN-ACKs) or one the servers open (SYNs, FTP’s active mode): held (P’s waited for S’s), merged (both in: the merged one went to the client), merged-at-p (of those, S’s came first and P’s left in S’s numbers), to-bridge (S’s went to the bridge: it came first, answered another SYN, had other options, or the kernel had no room), prompted (a held SYN-ACK P’s TCP sent again at once when the secondary failed, or a held SYN the bridge sent again)',
    ['action'],
    (c) => {
      const k = get().kernelInbound;
      if (k?.handshakesHeld === undefined || get().mergeMode !== 'kernel') return;
      c.inc({ action: 'held' }, k.handshakesHeld);
      c.inc({ action: 'merged' }, k.handshakesMerged ?? 0);
      c.inc({ action: 'merged-at-p' }, k.handshakesMergedP ?? 0);
      c.inc({ action: 'to-bridge' }, k.handshakesToBridge ?? 0);
      c.inc({ action: 'prompted' }, k.handshakesPrompted ?? 0);
    },
  );
  readCounter(
    reg,
    'tcpfo_kernel_closes_total',
    'What the primary’s kernel did with connections’ closes (merge: kernel): client-fin (a client’s FIN passed to P’s TCP in the kernel), ended (the client’s FIN and the servers’ both passed in the kernel: the bridge was told, and forgets the connection after its linger), client-rst (the client’s RST, at the sequence number a server expects, ended the connection in the kernel: the same), untold (an event the bridge could not be told, the kernel’s ring buffer full: a handshake went to the bridge’s queues instead, or an ended connection is forgotten only when idle)',
    ['action'],
    (c) => {
      const k = get().kernelInbound;
      if (k?.clientFins === undefined || get().mergeMode !== 'kernel') return;
      c.inc({ action: 'client-fin' }, k.clientFins);
      c.inc({ action: 'ended' }, k.ended ?? 0);
      c.inc({ action: 'client-rst' }, k.clientResets ?? 0);
      c.inc({ action: 'untold' }, k.eventsLost ?? 0);
    },
  );
  readCounter(
    reg,
    'tcpfo_kernel_merged_connections_total',
    'Connections the primary’s kernel merged from their handshake on (merge: kernel)',
    [],
    (c) => {
      const n = get().kernelMerged;
      if (n !== undefined) c.inc(n);
    },
  );
  readCounter(
    reg,
    'tcpfo_kernel_handovers_total',
    'Connections the kernel merge handed to the bridge, by why: bridge (a SYN, FIN or RST, or the secondary failed), unaligned (copies not of the same ranges), diverged, full (64 ranges waited), segment (SACK, other options or flags, a GSO packet of more than 32 segments), slow (a range sent again after waiting 50 ms for the other server’s copy), large (a segment of more than 2048 bytes), ack-lag (the secondary’s ACK behind the primary’s for 250 ms)',
    ['reason'],
    (c) => {
      for (const [reason, n] of Object.entries(get().kernelHandovers ?? {})) c.inc({ reason }, n);
    },
  );
  readCounter(
    reg,
    'tcpfo_kernel_takes_total',
    'Connections the bridge took from the kernel merge (tcpfo_kernel_handovers_total{reason="bridge"}), by what brought each: by (p, s or client: whose segment reached the bridge’s queue; alone: the secondary failed) and segment (rst, fin, data, ack; none for alone)',
    ['by', 'segment'],
    (c) => {
      for (const [key, n] of Object.entries(get().kernelTakes ?? {})) {
        const [by, segment] = key.split('/');
        c.inc({ by, segment: segment ?? 'none' }, n);
      }
    },
  );
  readCounter(
    reg,
    'tcpfo_kernel_returns_total',
    'Connections the bridge gave back to the kernel merge once nothing of them waited on either side (each handover may be followed by one)',
    [],
    (c) => {
      const n = get().kernelReturns;
      if (n !== undefined) c.inc(n);
    },
  );
  readCounter(
    reg,
    'tcpfo_arp_requests_total',
    'ARP requests and neighbour solicitations for the service addresses seen on the LAN interface',
    [],
    (c) => c.inc(get().arp?.requests ?? 0),
  );
  readCounter(
    reg,
    'tcpfo_arp_replies_total',
    'ARP replies and neighbour advertisements for the service addresses sent by this node (the active one)',
    [],
    (c) => c.inc(get().arp?.replies ?? 0),
  );
  readCounter(
    reg,
    'tcpfo_heartbeat_silences_excused_total',
    'Times the secondary’s heartbeats fell silent past the timeout while its segments still arrived: not declared failed then (up to liveness.loop_stall_ms); absent on a secondary',
    [],
    (c) => {
      const n = get().silencesExcused;
      if (n === undefined) unknown(c);
      else c.inc(n);
    },
  );
  readCounter(
    reg,
    'tcpfo_arp_answers_late_total',
    'Answers for the service addresses (ARP, neighbour discovery) sent over 10 ms after the request came in (the peer’s split-brain probe waits 50 ms)',
    [],
    (c) => c.inc(get().arp?.late ?? 0),
  );
  new Gauge({
    name: 'tcpfo_arp_answer_delay_max_seconds',
    help: 'The longest this node took to answer an ARP request or neighbour solicitation for the service addresses, from the kernel’s receipt to the reply; absent before the first reply',
    registers: [reg],
    collect() {
      const a = get().arp;
      if (!a?.replies) unknown(this);
      else this.set(a.maxDelayUs / 1e6);
    },
  });
  new Gauge({
    name: 'tcpfo_realtime_thread',
    help: 'Whether a time-critical thread runs at real-time priority (scheduling.realtime_priority), by thread: arp (the answers for the service address), heartbeat (sends and reads the heartbeats)',
    labelNames: ['thread'],
    registers: [reg],
    collect() {
      this.reset();
      const s = get();
      if (s.arp) this.set({ thread: 'arp' }, s.arp.realtime === 'on' ? 1 : 0);
      if (s.heartbeatRealtime) this.set({ thread: 'heartbeat' }, s.heartbeatRealtime === 'on' ? 1 : 0);
    },
  });
  readCounter(reg, 'tcpfo_server_check_failures_total', 'Failed checks of the local server (track)', [], (c) =>
    c.inc(get().trackFailures ?? 0),
  );
  flagGauge(
    reg,
    'tcpfo_server_up',
    'Whether the last check of the local server (track) passed; absent without track',
    () => get().serverHealthy,
  );
  flagGauge(
    reg,
    'tcpfo_peer_config_mismatch',
    'Whether the peer’s configuration differs from this node’s where the two must agree (service address, ports, LAN mode, instance, data-plane protocol, major version); absent until the peer told it',
    () => get().peerConfigMismatch,
  );
  readCounter(reg, 'tcpfo_pcap_frames_total', 'Frames captured with libpcap', [], (c) =>
    countOrAbsent(c, get().pcapFrames),
  );
  readCounter(
    reg,
    'tcpfo_pcap_backlog_dropped_total',
    'Captured frames dropped because the bridge fell behind the wire (its backlog was full)',
    [],
    (c) => countOrAbsent(c, get().pcapDropped),
  );
  return reg;
}

/** Serves /metrics on `listen` (ADDRESS:PORT) only. */
export async function startMetricsServer(listen: string, reg: Registry): Promise<Server> {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i);
  const port = Number(listen.slice(i + 1));
  const server = createServer((req, res) => {
    if (req.url !== '/metrics' || req.method !== 'GET') {
      res.writeHead(404).end('not found: try /metrics\n');
      return;
    }
    reg.metrics().then(
      (body) => res.writeHead(200, { 'content-type': reg.contentType }).end(body),
      (e: unknown) => res.writeHead(500).end(String(e)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => resolve());
  });
  return server;
}
