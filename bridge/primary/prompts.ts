/**
 * Prompts into P's own stack, pure. When the secondary fails while the
 * kernel holds P's SYN-ACKs for S's (native/bpf/handshake.h), those would
 * reach their clients only at P's retransmission timer (1 s, RFC 6298). A
 * SYN from the client sent again — the same initial sequence number — makes
 * P's TCP send its SYN-ACK again at once (Linux answers a retransmitted SYN
 * for a request it holds that way), through the queue this time, where the
 * bridge, alone now, releases it.
 */
import { buildIpv4Tcp, TCP_SYN } from '../wire/tcp.js';

/** A handshake whose SYN-ACK of P's the kernel holds: the client's connection and the ACK P gave (its ISN + 1). */
export interface HeldHandshake {
  client: number;
  clientPort: number;
  servicePort: number;
  ack: number;
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
