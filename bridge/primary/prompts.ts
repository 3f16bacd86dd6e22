/**
 * Prompts into P's own stack, pure. When the secondary fails while the
 * kernel holds P's SYN-ACKs for S's (native/bpf/handshake.h), those would
 * reach their clients only at P's retransmission timer (1 s, RFC 6298). A
 * SYN from the client sent again — the same initial sequence number — makes
 * P's TCP send its SYN-ACK again at once (Linux answers a retransmitted SYN
 * for a request it holds that way), through the queue this time, where the
 * bridge, alone now, releases it. P's own SYN (a connection the servers
 * open) has no such prompt: the bridge sends it, rebuilt (primarySyn).
 */
import type { TcpOption } from '../wire/tcp-options.js';
import { buildIpv4Tcp, TCP_SYN } from '../wire/tcp.js';

/**
 * A handshake whose SYN-ACK of P's the kernel holds: the client's connection
 * and the ACK P gave (its ISN + 1). Or (`active`) P's SYN of a connection the
 * servers open, and what it said.
 */
export type HeldHandshake =
  | { active: false; client: number; clientPort: number; servicePort: number; ack: number }
  | ({ active: true; client: number; clientPort: number; servicePort: number; ack: number } & HeldSyn);

/** What P's SYN said, as the kernel keeps it (native/bpf/maps.h hs_val). */
export interface HeldSyn {
  isn: number;
  tsval: number;
  mss: number;
  window: number;
  wscale: number;
  /** syn_layout: 1 SACK-permitted, 2 timestamps, 4 window scale. */
  layout: number;
}

/** The client's SYN again, to the service address: for injection into P's own stack. */
export function synAgain(h: HeldHandshake, vip: number): Buffer {
  return buildIpv4Tcp(
    { src: h.client, dst: vip },
    {
      srcPort: h.clientPort,
      dstPort: h.servicePort,
      seq: (h.ack - 1) >>> 0,
      ack: 0,
      flags: TCP_SYN,
      window: 0xffff,
      urgent: 0,
      // No timestamp: one the request did not see would fail its PAWS check.
      options: [],
      payload: Buffer.alloc(0),
    },
  );
}

/**
 * P's SYN of a connection the servers open, as the kernel held it: nothing
 * prompts P's TCP to send a SYN again before its timer (1 s), so the bridge
 * sends this one in its stead. Its options in the order Linux writes them.
 */
export function primarySyn(h: HeldHandshake & { active: true }, vip: number): Buffer {
  const options: TcpOption[] = [{ kind: 'mss', mss: h.mss }];
  if (h.layout & 1) options.push({ kind: 'sack-permitted' });
  if (h.layout & 2) options.push({ kind: 'timestamp', tsval: h.tsval, tsecr: 0 });
  if (h.layout & 4) options.push({ kind: 'wscale', shift: h.wscale });
  return buildIpv4Tcp(
    { src: vip, dst: h.client },
    {
      srcPort: h.servicePort,
      dstPort: h.clientPort,
      seq: h.isn,
      ack: 0,
      flags: TCP_SYN,
      window: h.window,
      urgent: 0,
      options,
      payload: Buffer.alloc(0),
    },
  );
}
