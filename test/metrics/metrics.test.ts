/** Metric names and values follow Prometheus conventions and come from the bridge's own counters. */
import { describe, expect, it } from 'vitest';
import { buildRegistry } from '../../bridge/node/metrics.js';
import { congestionResets } from '../../bridge/io/cc-reset.js';
import { snap } from './snapshot.js';

describe('metrics', () => {
  it('an unknown value is absent, not 0: no heartbeat answered yet, no failover yet', async () => {
    const text = await buildRegistry(() => snap({ heartbeatRttSeconds: null, lastFailoverSeconds: null })).metrics();
    expect(text).toMatch(/^# TYPE tcpfo_heartbeat_rtt_seconds gauge$/m);
    expect(text).not.toMatch(/^tcpfo_heartbeat_rtt_seconds /m);
    expect(text).not.toMatch(/^tcpfo_last_failover_duration_seconds /m);
    expect(text).not.toMatch(/^tcpfo_server_up /m);
    const known = await buildRegistry(() =>
      snap({ serverHealthy: false, kernelInbound: { translated: 5, synsPassed: 2, duplicated: 0, outOfWindow: 1 } }),
    ).metrics();
    expect(known).toMatch(/^tcpfo_server_up 0$/m);
    expect(known).toContain('tcpfo_kernel_inbound_total{action="translated"} 5');
    expect(known).toContain('tcpfo_kernel_inbound_total{action="out-of-window"} 1');
  });

  it('the congestion reset: absent until the node has one, then what its passes did', async () => {
    const reg = buildRegistry(() => snap());
    expect(await reg.metrics()).not.toMatch(/^tcpfo_congestion_resets_total/m);
    expect(await reg.metrics()).not.toMatch(/^tcpfo_window_reopened_resets_total/m);
    Object.assign(congestionResets, {
      loaded: true,
      byMode: [
        { reset: 7, failed: 1 },
        { reset: 4, failed: 2 },
      ],
    });
    try {
      const text = await reg.metrics();
      expect(text).toContain('tcpfo_congestion_resets_total{result="reset"} 7');
      expect(text).toContain('tcpfo_congestion_resets_total{result="failed"} 1');
      expect(text).toContain('tcpfo_window_reopened_resets_total{result="reset"} 4');
      expect(text).toContain('tcpfo_window_reopened_resets_total{result="failed"} 2');
    } finally {
      Object.assign(congestionResets, {
        loaded: false,
        byMode: [
          { reset: 0, failed: 0 },
          { reset: 0, failed: 0 },
        ],
      });
    }
  });

  it('exposes the bridge’s counters under tcpfo_ names, with base units and _total counters', async () => {
    let s = snap();
    const reg = buildRegistry(() => s);
    const text = await reg.metrics();
    for (const line of [
      'tcpfo_role{role="primary"} 1',
      'tcpfo_role{role="active"} 0',
      'tcpfo_peer_up 1',
      'tcpfo_heartbeat_rtt_seconds 0.012',
      'tcpfo_heartbeats_rejected_total{reason="bad-mac"} 2',
      'tcpfo_event_loop_stalls_total 3',
      'tcpfo_connections{state="merging"} 3',
      'tcpfo_merged_bytes_total 123456',
      'tcpfo_queued_bytes 4096',
      'tcpfo_divergences_total 1',
      'tcpfo_drops_total{reason="unknown-connection"} 5',
      'tcpfo_nfqueue_enobufs_total{queue="in"} 4',
      'tcpfo_nfqueue_dropped_total{queue="in"} 9',
      'tcpfo_pcap_frames_total 7',
      'tcpfo_pcap_backlog_dropped_total 2',
      'tcpfo_retransmissions_total{source="secondary"} 8',
      'tcpfo_prefix_trimmed_bytes_total 2896',
      'tcpfo_secondary_half_open_resets_total 3',
      'tcpfo_kernel_digest_comparisons_total{result="same"} 8',
      'tcpfo_kernel_digest_comparisons_total{result="differed"} 1',
      'tcpfo_merge_copies_total{buffer="reused"} 40',
      'tcpfo_merge_copies_total{buffer="new"} 6',
      'tcpfo_merge_idle_buffer_bytes 65536',
    ]) {
      expect(text).toContain(line);
    }
    expect(text).toMatch(/^# TYPE tcpfo_merged_bytes_total counter$/m);
    // The process metrics under their standard names (stock dashboards).
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(text).toMatch(/^process_cpu_seconds_total /m);
    expect(text).not.toMatch(/^tcpfo_process_/m);
    expect(text).toMatch(/^tcpfo_build_info\{version="\d+\.\d+\.\d+[^"]*",nodejs="v\d+[^"]*"\} 1$/m);
    // Every tcpfo metric name is snake_case with the prefix; no per-connection labels.
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      expect(m[1]).toMatch(/^(tcpfo|process|nodejs)_[a-z0-9_]+$/);
      if (m[2] === 'counter') expect(m[1]).toMatch(/_total$/);
    }
    expect(text).not.toMatch(/\{[^}]*(client|port)=/);
    // Values are read at scrape time.
    s = snap({
      role: 'primary',
      merge: { ...snap().merge!, mergedBytes: 200000 },
      failovers: 1,
      lastFailoverSeconds: 0.2,
    });
    const again = await reg.metrics();
    expect(again).toContain('tcpfo_merged_bytes_total 200000');
    expect(again).toContain('tcpfo_last_failover_duration_seconds 0.2');
  });

  it('what no bridge on the node counts is absent, not 0: a kernel-path secondary diverts, captures and injects nothing itself', async () => {
    const kernel = snap({
      role: 'secondary',
      datapath: 'kernel',
      merge: undefined,
      divertedSegments: undefined,
      divertedBytes: undefined,
      injectedFrames: undefined,
      pcapFrames: undefined,
      pcapDropped: undefined,
    });
    const text = await buildRegistry(() => kernel).metrics();
    for (const name of [
      'tcpfo_diverted_segments_total',
      'tcpfo_diverted_bytes_total',
      'tcpfo_injected_frames_total',
      'tcpfo_pcap_frames_total',
      'tcpfo_pcap_backlog_dropped_total',
    ])
      expect(text).not.toMatch(new RegExp(`^${name} `, 'm'));
    // The pcap path counts them, 0 included.
    const pcap = snap({
      role: 'secondary',
      datapath: 'pcap',
      merge: undefined,
      divertedSegments: 0,
      injectedFrames: 5,
    });
    const t2 = await buildRegistry(() => pcap).metrics();
    expect(t2).toMatch(/^tcpfo_diverted_segments_total 0$/m);
    expect(t2).toMatch(/^tcpfo_injected_frames_total 5$/m);
  });

  it('a node that merges nothing (a secondary, a standby) has no merger series: absent, not 0', async () => {
    let s = snap({ role: 'active', datapath: 'kernel', merge: undefined, injectedFrames: 12 });
    const reg = buildRegistry(() => s);
    const text = await reg.metrics();
    expect(text).toContain('tcpfo_role{role="active"} 1');
    expect(text).toContain('tcpfo_injected_frames_total 12');
    for (const name of [
      'tcpfo_merged_segments_total',
      'tcpfo_merged_bytes_total',
      'tcpfo_queued_bytes',
      'tcpfo_held_bytes',
      'tcpfo_held_segments',
      'tcpfo_divergences_total',
      'tcpfo_prefix_trimmed_bytes_total',
      'tcpfo_secondary_half_open_resets_total',
      'tcpfo_kernel_digest_comparisons_total',
      'tcpfo_evicted_total',
      'tcpfo_secondary_silent_total',
      'tcpfo_retransmissions_total',
      'tcpfo_merge_copies_total',
      'tcpfo_merge_idle_buffer_bytes',
    ])
      expect(text, name).not.toMatch(new RegExp(`^${name}(\\{.*\\})? `, 'm'));
    // The same registry once the node merges (a promotion): the series appear.
    s = snap({ role: 'primary' });
    expect(await reg.metrics()).toMatch(/^tcpfo_held_bytes 4096$/m);
  });
});
