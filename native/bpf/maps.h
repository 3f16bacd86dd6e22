// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The layouts of the maps the primary's BPF programs share with their loader
// (native/xlate.cc): one definition, included by both. Every field is the
// kernel's fixed-width type; addresses and ports are in network byte order,
// sequence arithmetic in host order.
#ifndef TCPFO_BPF_MAPS_H
#define TCPFO_BPF_MAPS_H

#include <linux/bpf.h>  // struct bpf_spin_lock
#include <linux/types.h>

// A connection as the client sees it: client address and port, service address and port.
struct conn_key {
  __u32 client;
  __u32 service;
  __u16 cport;
  __u16 sport;
};

// `conns`: the inbound translation of one merged connection, and what the
// programs saw of it (written by the kernel, read back by the merger).
struct conn_val {
  __u32 dseq;     // added to the client's ACK and SACK blocks
  __u32 dts;      // added to the client's timestamp echo
  __u32 flags;    // CONN_F_*
  __u32 ack_max;  // the highest acceptable ACK from the client, once CONN_F_ACK_SEEN
  __u32 nxt_max;  // the highest acceptable sequence number + length from the client
  __u32 wscale;   // the window scale the client was told (S's): the servers' windows are in its units
  __u64 seen_ns;  // bpf_ktime_get_ns() of the client's last acceptable segment
  __u64 packets;  // the client's acceptable segments translated in the kernel
  // Written on egress, from what leaves towards the client (once CONN_F_SENT; rcv_* once CONN_F_RCV):
  __u32 snd_nxt;  // the highest sequence number sent + length (SYN and FIN count)
  __u32 rcv_nxt;  // the highest ACK sent: what both servers acknowledged of the client
  __u32 rcv_wnd;  // the window sent with it, in bytes
  __u32 pad;
};

enum conn_flags {
  CONN_F_TS = 1 << 0,        // the connection uses timestamps: translate the echo
  CONN_F_ACK_SEEN = 1 << 1,  // ack_max and nxt_max hold values
  CONN_F_SENT = 1 << 2,      // snd_nxt holds a value
  CONN_F_RCV = 1 << 3,       // rcv_nxt and rcv_wnd hold values: an ACK left (the SYN of a connection the servers open has none)
};

// `primary_only`: a connection the primary serves without the secondary
// (it failed, the replicas diverged, or the connection began while the
// primary was alone). P's own segments of it leave in the kernel, moved into
// the client's spaces: seq − dseq, TSval − dts, the window from P's scale to
// the one the client was told. The netfilter match (tcpfo_primary_only) lets
// them past the bridge's queue; the egress program rewrites them.
struct out_val {
  __u32 dseq;
  __u32 dts;
  __u32 flags;  // OUT_F_*
  __u8 wscale_p;  // P's window scale (its window field's unit)
  __u8 wscale_s;  // the client's view (S's, or P's own for a connection begun alone)
  __u16 pad;
  __u64 segments;  // P's segments released in the kernel
  __u64 bytes;     // their payload
};

enum out_flags {
  OUT_F_TS = 1 << 0,  // rewrite TSval
};

// `merge`: a merged connection whose common segments the kernel merges
// (bpf/merge.h): P's segment and S's copy of the same bytes meet here, the
// second to arrive carries the bytes to the client. Every change under the
// lock; MERGE_QUEUE once handed to the bridge (for good).
// Ranges of one side's first arrivals waiting for the other's copy: a
// segment of P's GSO burst (or of S's copy, GRO'd on the way) waits as one
// range per segment it will leave as (bpf/merge.h MERGE_SEG_CHUNKS), so an
// initial window of 10 and the burst after it fit.
#define MERGE_PENDING 64
#define MERGE_SEG_CHUNKS 32  // the most segments one merged GSO packet leaves as
// The largest segment merged here (of a GSO packet's: its gso_size), one of
// an Ethernet MSS. A packet of more than MERGE_SEG_CHUNKS segments, or of
// larger ones, goes to the queue with its connection.
#define MERGE_MAX_PAYLOAD 2048
// How long one side's ranges may wait for the other's copy before that side,
// sending them again, takes the connection to the bridge: there the lagging
// server's share is bounded (limits.max_buffered_bytes), and the waiting
// side's TCP does not back its timer off further in the kernel.
#define MERGE_MAX_WAIT_MS 50
// How long S's ACK may stay behind what P's had acknowledged before a pure
// ACK or segment of P's, finding it still behind, takes the connection to
// the bridge (HANDOVER_ACK_LAG): P's ACKs past S's are dropped here, and a
// client sending while S's TCP is silent (its socket lost, its copies not
// reaching P) would otherwise wait for good — no timer of P's sends them
// again. The bridge bounds that silence (limits.secondary_silence_ms). Longer
// than a delayed ACK (TCP_DELACK_MAX, 200 ms) of S's.
#define MERGE_MAX_ACK_LAG_MS 250

enum merge_mode {
  MERGE_KERNEL = 1,  // the programs merge it
  MERGE_QUEUE = 2,   // handed to the bridge's queue: the programs leave it alone
};

enum merge_side {
  SIDE_NONE = 0,  // neither server is ahead: all released
  SIDE_P = 1,     // P's segments wait (stolen: their bytes stay in P's retransmit queue)
  SIDE_S = 2,     // S's copies came first (dropped: their bytes stay in S's send queue)
};

enum merge_flags {
  MERGE_F_TS = 1 << 0,        // timestamps on: TSval moves (P's), and never goes back
  MERGE_F_DIVERGED = 1 << 1,  // the same range with different bytes: the bridge degrades it
  MERGE_F_ACK_P = 1 << 2,     // ack_p holds P's ACK (a server-initiated connection starts without)
  MERGE_F_ACK_S = 1 << 3,     // ack_s holds S's
  MERGE_F_SENT = 1 << 4,      // ack_sent and edge_sent hold what the client was told
  MERGE_F_FIN = 1 << 5,         // the servers' FIN went to the client (merged here): rel_nxt is past it
  MERGE_F_FIN_PEND = 1 << 6,    // the last waiting range ends with its side's FIN
  MERGE_F_FIN_CLIENT = 1 << 7,  // the client's FIN reached P's TCP through tcpfo_xlate
  MERGE_F_ENDED = 1 << 8,       // both FINs, or the client's RST, passed here: the bridge was told (EV_ENDED)
  MERGE_F_RESET = 1 << 9,       // the client's RST, at the sequence number the servers expect, passed here
  MERGE_F_ACK_LAG = 1 << 10,    // S's ACK is behind P's: ack_lag_to and ack_lag_since say since when
};

// Why a connection was handed to the bridge (counted, and in the snapshot).
enum merge_handover {
  HANDOVER_NONE,
  HANDOVER_BRIDGE,     // the bridge took it (a segment of the connection reached its queue: a RST, ...)
  HANDOVER_UNALIGNED,  // a copy that is not exactly the other side's oldest waiting range
  HANDOVER_DIVERGED,   // same range, different bytes
  HANDOVER_FULL,       // MERGE_PENDING first arrivals wait already
  HANDOVER_SEGMENT,    // a segment the programs do not merge (SACK, options, flags, too many segments in one GSO packet)
  HANDOVER_SLOW,       // a range sent again after waiting MERGE_MAX_WAIT_MS for the other's copy
  HANDOVER_LARGE,      // a segment of more than MERGE_MAX_PAYLOAD bytes (jumbo frames); returns as any other
  HANDOVER_ACK_LAG,    // S's ACK stayed behind P's for MERGE_MAX_ACK_LAG_MS
  HANDOVER_MAX,
};

struct merge_val {
  struct bpf_spin_lock lock;
  __u32 mode;     // merge_mode
  __u32 flags;    // merge_flags
  __u32 handover; // merge_handover, once MERGE_QUEUE
  __u32 dseq;     // P's sequence space − S's (the client's)
  __u32 dts;      // P's timestamp clock − S's
  __u8 wscale_p;
  __u8 wscale_s;  // the client's view
  __u8 ahead;     // merge_side
  __u8 npend;     // first arrivals waiting, oldest at `head`
  __u8 head;
  __u8 standing_p;  // pure ACKs each server sent that moved nothing since the last to the client
  __u8 standing_s;
  __u8 pad;
  __u32 waiting_since;  // ms (bpf_ktime_get_ns): since the oldest waiting range began to wait, or the last release
  __u32 rel_nxt;  // the client's space: what the client was sent up to
  __u32 ack_p, ack_s;  // each server's latest ACK (the client's space)
  __u32 win_p, win_s;  // each server's latest window, bytes
  __u32 ack_sent;      // the ACK and right edge last sent to the client
  __u32 edge_sent;
  __u32 tsval_max;     // the highest TSval sent to the client (S's clock)
  __u32 tsecr;         // the highest TSecr either server sent (the client's clock)
  __u32 ack_lag_to;    // MERGE_F_ACK_LAG: P's ACK when S's fell behind it (S's must reach it)
  __u32 ack_lag_since; // and when, ms (bpf_ktime_get_ns)
  __u32 pend_end[MERGE_PENDING];     // each waiting range's end; its start is the previous end, or rel_nxt
  __u64 pend_digest[MERGE_PENDING];  // and its payload's digest (bpf/merge.h)
  __u64 released;      // segments the kernel sent to the client
  __u64 bytes;         // their payload
};

// `merge_hint`: what netfilter's match may read of `merge` (a socket filter
// cannot touch a map with a lock), written after each decision: whether P's
// next segment may skip the queue. A stale hint only sends a segment to the
// bridge (which takes the connection) or to the egress program (which checks
// under the lock); never out unmerged.
struct merge_hint {
  __u32 mode;       // merge_mode
  __u32 p_next;     // P's next in-order sequence number (P's space)
  __u32 s_head_end; // with S ahead: the end of its oldest waiting copy (P's space)
  __u32 s_tail_end; // and of its last (P's space)
  __u8 s_ahead;     // 1 when S is ahead
  __u8 p_room;      // how many more ranges of P's may wait
  __u8 ts_on;       // the connection has timestamps
  __u8 pad;
};

// What the bridge reads of `merge` when it takes a connection (the control
// program's answer): merge_val without its lock.
struct merge_snap {
  __u32 mode, flags, handover, dseq, dts;
  __u8 wscale_p, wscale_s, ahead, npend, head, standing_p, standing_s, pad;
  __u32 rel_nxt, ack_p, ack_s, win_p, win_s, ack_sent, edge_sent, tsval_max, tsecr;
  // How long the connection had waited for S when taken, ms: P's ranges
  // since the last release, or P's ACK past S's (0: nothing waited for S).
  __u32 wait_ms, pad2;
  __u32 pend_end[MERGE_PENDING];
  __u64 pend_digest[MERGE_PENDING];
  __u64 released, bytes;
};

// The control program's request (BPF_PROG_TEST_RUN from the bridge), after an Ethernet header.
enum merge_op {
  MERGE_OP_TAKE = 1,  // hand the connection to the bridge; answer with its state
  MERGE_OP_HINT = 2,  // write its hint from its state (the bridge rewrote the state)
};

struct merge_ctl {
  __u32 op;
  __u32 found;  // answer: 1 if the connection was in the map (MERGE_OP_HINT: with its hint)
  struct conn_key key;
  struct merge_snap snap;  // answer
};

// The secondary's MAC: only its copies are merged (others go to the queue, which drops them).
struct peer_cfg {
  __u8 mac[6];
  __u16 set;
  __u32 ifindex;    // where released copies leave (the LAN interface)
  __u32 handshake;  // 1: the programs merge handshakes (bpf/handshake.h); the bridge clears it when alone
  // 1: the secondary failed. The bridge turns the connections merged here
  // primary-only, a step at a time; meanwhile P's segments of one not yet
  // turned go to its queue (skips_queue), where it turns that one at once,
  // rather than wait, stolen, for a copy that will not come.
  __u32 alone;
};

// `handshakes`: the handshake of a client's connection, merged in the
// kernel (bpf/handshake.h). P's SYN-ACK comes first as a rule (its TCP
// answers the SYN it got straight from the client): it is recorded here and
// stolen. S's SYN-ACK, diverted to us, then finds it and leaves for the
// client as the merged SYN-ACK; the connection's entries in `conns`,
// `merge` and `merge_hints` are made at that moment, and the bridge hears
// of it through `events`. Anything else (S's first, a layout the
// two do not share, P's retransmission) goes to the bridge's queues as before.
// The SYN of a connection the servers open (FTP's active mode) merges the same
// way (`syn`): no ACK names the client's SYN there, so an entry of a SYN
// matches only for HS_SYN_TTL_NS, longer than a SYN waits for the other
// server's and shorter than a connection's ports can be used again (its
// TIME-WAIT): a new connection never merges with an old connection's SYN.
#define HS_SYN_TTL_NS 1000000000ull
// Two SYN-ACKs recorded this close were sent for the same cause (xlate.bpf.c hs_paired; merge/conn.ts SYN_PAIR_MS).
#define HS_PAIR_NS 250000000ull
enum hs_state {
  HS_P_HELD = 1,   // P's SYN-ACK recorded and stolen: waiting for S's
  HS_DONE = 2,     // merged here: the bridge was told
  HS_BRIDGE = 3,   // the bridge's queues merge this one
  HS_S_FIRST = 4,  // S's came first (it went up to the bridge too): P's merges with it at the egress program
};

// The option layouts of a SYN-ACK handled here, as Linux writes them: MSS
// first, then SACK-permitted and timestamps (NOP-padded when one is off),
// then NOP and window scale. Both servers' must be the same.
enum syn_layout {
  SYNL_SACK = 1 << 0,
  SYNL_TS = 1 << 1,
  SYNL_WS = 1 << 2,
};

// One server's SYN-ACK (or SYN): P's (HS_P_HELD), or S's (HS_S_FIRST).
struct hs_val {
  __u32 state;  // hs_state
  __u32 isn;    // its initial sequence number
  __u32 ack;    // the client's ISN + 1, as it acknowledged it: which SYN this answers (0 for a SYN)
  __u32 tsval;  // its TSval (SYNL_TS)
  __u32 tsecr;  // the client's TSval P echoed
  __u16 mss;
  __u16 win;    // its window (a SYN's is never scaled)
  __u8 wscale;  // its shift (SYNL_WS)
  __u8 layout;  // syn_layout
  __u8 syn;     // 1: a SYN, of a connection the servers open
  __u8 pad;
  __u32 pad2;
  __u64 held_ns;  // bpf_ktime_get_ns() when recorded (CLOCK_MONOTONIC)
};

// What the bridge hears from the programs, in order, through `events` (a
// ring buffer): a handshake merged here, or a connection whose close
// (both FINs) passed here. One ring, so that a connection's end is heard
// before a new handshake on the same ports.
enum kernel_event_kind {
  EV_HANDSHAKE = 1,
  EV_ENDED = 2,
};

// EV_HANDSHAKE: both SYN-ACKs as they were.
struct hs_event {
  __u32 isn_p, isn_s;
  __u32 ack;  // the client's ISN + 1
  __u32 tsval_p, tsval_s, tsecr;
  __u16 mss_p, mss_s;
  __u16 win_p, win_s;
  __u8 wscale_p, wscale_s;
  __u8 layout;  // syn_layout, the same for both
  __u8 syn;     // 1: both were SYNs (a connection the servers open; ack 0, both servers' ACKs to come)
};

// EV_ENDED: the client's FIN and the servers' passed here (in either order), or the client's RST.
enum end_how {
  ENDED_CLOSE = 1,
  ENDED_RESET = 2,
};

struct end_event {
  __u32 dseq;  // the connection's Δseq: an end heard late is not taken for a newer connection's
  __u32 how;   // end_how
};

struct kernel_event {
  struct conn_key key;
  __u32 kind;  // kernel_event_kind
  union {
    struct hs_event hs;
    struct end_event end;
  };
};
#ifdef __cplusplus
static_assert(sizeof(struct kernel_event) == 52, "bridge/io/xlate.ts reads 52-byte events");
#else
_Static_assert(sizeof(struct kernel_event) == 52, "bridge/io/xlate.ts reads 52-byte events");
#endif
#define HS_ENTRIES 16384  // an LRU map: a handshake needs its entry for a round trip between the nodes
#define EVENTS_BYTES (1 << 20)  // about 16,000 events between two reads of the bridge's

// `services`: the service address and each failover port. A client's SYN to
// one of them needs no translation, so it reaches P's TCP directly.
struct svc_key {
  __u32 addr;
  __u16 port;
  __u16 pad;
};

// `dup`: on a learning switch (lan.mode: switch), where the client's frames
// are copied: out of `ifindex`, to the secondary's MAC from ours.
struct dup_cfg {
  __u32 enabled;
  __u32 ifindex;
  __u8 macs[12];  // destination: the secondary's; source: ours
};

// `stash`: copies of P's segments the egress program stole, for the bridge
// when it takes their connection: it merges them at once rather than wait
// for P's TCP to send them again (its loss probe or retransmission timer).
// A first arrival waiting for S's copy is kept at its place in the ring of
// waiting ranges (idx = its ring index: the snapshot's head and npend say
// which are live), the segment stolen as its connection went to the bridge
// at STASH_HANDOVER. An LRU map: what a connection leaves ages out.
// A segment of several (a GSO burst) is kept as one packet per segment it
// would leave as, each at its range's index, or at STASH_HANDOVER and the
// MERGE_SEG_CHUNKS - 1 indices after it.
#define STASH_HANDOVER MERGE_PENDING
#define STASH_MAX_PACKET 2176  // an IP header, TCP with options, MERGE_MAX_PAYLOAD
#define STASH_MIN_PACKET 40    // an IP header and a TCP header without options
#define STASH_ENTRIES 2048

struct stash_key {
  struct conn_key conn;
  __u32 idx;
  __u32 dseq;  // the connection's Δseq: what an earlier connection on the same ports left is not found
};

struct stash_val {
  __u32 len;
  __u8 pkt[STASH_MAX_PACKET];  // the IP packet as P's TCP sent it (its TCP sum partial)
};

// `order`: answers of one client leave in the order the servers produced
// them, whichever path carries them. P's segments the output queue takes on
// their own account (the kernel cannot release them) are counted by client —
// ORDER_QUEUED by the netfilter match (tcpfo_order_only) as it sends them
// there, ORDER_DONE by the bridge as it gives their verdicts (it alone writes
// that entry). While a client's two counts differ, the queue holds an earlier
// answer of that client: the match sends its later segments to the queue as
// well, uncounted and marked, where they wait their turn, instead of letting
// the kernel release them first. Clients are hashed onto ORDER_SLOTS slots;
// clients that share a slot share its order. A slot holds its client's
// answers at most ORDER_HOLD's first number of ms (the bridge writes its
// order's maxWaitMs there; 0: for ever) from the count that set its counts
// apart (ORDER_SINCE, by the kernel's clock in ms): an answer the bridge
// holds long, or a count the queue never delivered (it was full), must not
// send every later answer of the client through the queue.
#define ORDER_SLOTS 256
enum order_entry {
  ORDER_QUEUED,
  ORDER_DONE,
  ORDER_SINCE,
  ORDER_HOLD,
  ORDER_ENTRIES,
};

struct order_slots {
  __u32 n[ORDER_SLOTS];
};

// The slot of a client (its IPv4 address in host order): Fibonacci hashing
// onto 8 bits. bridge/primary/order.ts computes the same.
static inline __u32 order_slot(__u32 client) { return (__u32)(client * 2654435761u) >> 24; }

// `counters` (per CPU): what the programs did.
enum counter {
  COUNT_TRANSLATED,     // client segments translated
  COUNT_SYN_PASSED,     // client SYNs to the service passed
  COUNT_DUPLICATED,     // client frames copied to the secondary
  COUNT_OUT_OF_WINDOW,  // client segments translated but not recorded (outside the windows)
  COUNT_RELEASED,       // P's segments of primary-only connections released in the kernel
  COUNT_RELEASE_REFUSED,  // such segments the egress program could not rewrite (dropped)
  COUNT_MERGED_P,         // merged in the kernel: P's segment released (S's copy came first)
  COUNT_MERGED_S,         // merged in the kernel: S's copy released (P's came first)
  COUNT_MERGE_HELD,       // first arrivals held for the other side's copy
  COUNT_MERGE_ACK_DROPPED,  // pure ACKs that moved nothing, not sent
  COUNT_HANDOVER,           // connections handed to the bridge (HANDOVER_* in merge_val)
  COUNT_HANDOVER_STOLEN,    // P's segments stolen as their connection went to the bridge (P sends them again)
  COUNT_STASHED,            // copies of stolen segments of P's kept for the bridge (`stash`)
  COUNT_HS_HELD,            // P's SYN-ACKs recorded and stolen, waiting for S's
  COUNT_HS_MERGED,          // handshakes merged here (S's SYN-ACK released)
  COUNT_HS_BRIDGE,          // S's SYN-ACKs passed to the bridge (no P's waiting, another SYN, another layout, no room)
  COUNT_HS_MERGED_P,        // of the merged, those where S's came first: P's SYN-ACK left in S's numbers
  COUNT_MERGE_AGAIN,        // a server's range sent again while it waited (stolen or dropped again), or S's of released bytes (dropped)
  COUNT_CLIENT_FIN,         // clients' FINs of connections merged here, translated here
  COUNT_ENDED,              // connections whose close (both FINs) passed here: the bridge told
  COUNT_CLIENT_RST,         // clients' RSTs of connections merged here that ended them here: the bridge told
  COUNT_EVENTS_LOST,        // events the bridge could not be told (the ring buffer full)
  COUNT_DSACK_CLEARED,      // servers' pure ACKs released with their lone D-SACK block overwritten (NOPs)
  COUNT_FROM_SECONDARY,     // segments from the service address and the secondary's MAC seen here (its node runs)
  COUNT_MERGE_GSO,          // packets of several segments (GSO) the merge held or released as their segments
  COUNT_MERGED_BYTES,       // payload bytes the merge sent the client for the first time
  COUNT_MAX,
};

// The bridge's skip mark (bridge/io/inject.ts BRIDGE_MARK): its queue rules
// return at once for a packet that carries it, and its egress program
// rewrites nothing the bridge itself released.
#define TCPFO_SKIP_MARK 0x7466

#endif
