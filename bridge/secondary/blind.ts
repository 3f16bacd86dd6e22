/**
 * Prompts after a takeover on the kernel data path, pure. There S's bridge
 * never sees the client's segments, so it does not know the sequence numbers
 * of a connection — and needs none: a segment whose sequence number lies
 * outside the receiver's window is answered at once with an ACK that says
 * where the receiver stands (RFC 9293 §3.10.7.4). Two segments half the
 * sequence space apart: no window is that large, so at least one of them is
 * outside it. The one that may fall inside carries no data and an ACK no
 * stack accepts (RFC 5961 §5: it is ignored, or draws a challenge ACK — an
 * answer just the same).
 *
 *  - prompts, into S's own stack (from the client): S's TCP answers the
 *    client at once, so a client whose retransmission timer backed off
 *    learns where S stands;
 *  - prods, to a client (from the service): its TCP answers with a duplicate
 *    ACK; for a connection whose socket S aborted (it diverged), S's kernel
 *    answers that with an exact reset.
 */
import { TCP_ACK_FLAG } from '../wire/tcp.js';
import { buildIpTcp } from '../wire/ip.js';
import { isIp6, type IpAddr, type ServiceAddresses } from '../../net/addr.js';
import type { SocketKey, SocketState } from '../io/sockets.js';

/** The two sequence numbers, 2^31 apart. */
export const BLIND_SEQS = [0x1eed5eed, (0x1eed5eed + 0x80000000) >>> 0] as const;

function bareAck(src: IpAddr, dst: IpAddr, srcPort: number, dstPort: number, seq: number): Buffer {
  // ack: half the space away from seq as well, window wide open (a window
  // update from a segment no stack accepts changes nothing; if it ever did,
  // it would not shrink the window).
  return buildIpTcp(
    { src, dst },
    {
      srcPort,
      dstPort,
      seq,
      ack: (seq + 0x40000000) >>> 0,
      flags: TCP_ACK_FLAG,
      window: 0xffff,
      urgent: 0,
      options: [],
      payload: Buffer.alloc(0),
    },
  );
}

/** The service address of `client`'s family (null: the service has none, no socket can be there). */
function vipFor(vips: ServiceAddresses, client: IpAddr): IpAddr | null {
  return isIp6(client) ? vips.v6 : vips.v4;
}

/** Segments to inject into S's own stack, as if from each client. */
export function blindPrompts(keys: readonly SocketKey[], vips: ServiceAddresses): Buffer[] {
  return keys.flatMap((k) => {
    const vip = vipFor(vips, k.client);
    return vip === null ? [] : BLIND_SEQS.map((seq) => bareAck(k.client, vip, k.clientPort, k.servicePort, seq));
  });
}

/** Segments to each client, from the service address. */
export function blindProds(keys: readonly SocketKey[], vips: ServiceAddresses): Buffer[] {
  return keys.flatMap((k) => {
    const vip = vipFor(vips, k.client);
    return vip === null ? [] : BLIND_SEQS.map((seq) => bareAck(vip, k.client, k.servicePort, k.clientPort, seq));
  });
}

/**
 * Whether S's socket owes its client anything a prompt would bring out: bytes
 * written and not acknowledged (Send-Q: what the primary held or lost when it
 * died), or a close under way. An idle connection owes nothing: its next
 * segment, either way, finds S's TCP as it is. Prompting every connection
 * cost a takeover ~50 µs per connection (the prompts' round through both
 * stacks); the idle ones of a large pair are most of them.
 */
export function owes(s: SocketState): boolean {
  return s.state !== 'ESTAB' || s.sendQueue > 0;
}
