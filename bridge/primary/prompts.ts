/**
 * Prompts into P's own stack, pure. When the secondary fails while the
 * kernel holds P's SYN-ACKs for S's (native/bpf/handshake.h), those would
 * reach their clients only at P's retransmission timer (1 s, RFC 6298). A
 * SYN from the client sent again — the same initial sequence number — makes
 * P's TCP send its SYN-ACK again at once (Linux answers a retransmitted SYN
 * for a request it holds that way), through the queue this time, where the
 * bridge, alone now, releases it.
 *
 * A held SYN of P's (a connection the servers open) has no such prompt:
 * nothing a client sends makes a TCP in SYN-SENT send its SYN again. The
 * bridge sends it again itself, rebuilt from what the kernel kept of it
 * (its ISN, options and window), through P's output queue as if P's TCP had
 * sent it: the merger, alone, takes up the connection and releases it.
 */
import { buildIpv4Tcp, TCP_RST, TCP_SYN } from '../wire/tcp.js';
import { buildIpTcp } from '../wire/ip.js';
import type { IpAddr } from '../../net/addr.js';
import type { TcpOption } from '../wire/tcp-options.js';

/** syn_layout in native/bpf/maps.h. */
const SYNL_SACK = 1;
const SYNL_TS = 2;
const SYNL_WS = 4;

/**
 * A handshake whose SYN-ACK (or SYN: `syn`) of P's the kernel holds: the
 * client's connection, the ACK P gave (its ISN + 1; 0 for a SYN), and what
 * the kernel kept of it (its ISN, TSval, MSS, window, scale and option layout).
 */
export interface HeldHandshake {
  client: number;
  clientPort: number;
  servicePort: number;
  ack: number;
  syn: boolean;
  isn: number;
  tsval: number;
  mss: number;
  window: number;
  wscale: number;
  layout: number;
}

/** P's held SYN again, from the service address to the client, as P's TCP sent it: for P's output queue. */
export function serverSynAgain(h: HeldHandshake, vip: number): Buffer {
  const options: TcpOption[] = [{ kind: 'mss', mss: h.mss }];
  if (h.layout & SYNL_SACK) options.push({ kind: 'sack-permitted' });
  if (h.layout & SYNL_TS) options.push({ kind: 'timestamp', tsval: h.tsval, tsecr: 0 });
  if (h.layout & SYNL_WS) options.push({ kind: 'wscale', shift: h.wscale });
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
 * A RST from the client to the service address, at `seq` (the client's ISN
 * + 1, as S's SYN-ACK acknowledged it): for the secondary's own stack,
 * where it drops the half-open socket that sent that SYN-ACK — one the pair
 * will never merge (merger.ts resetHalfOpenS). No ACK: a RST in a request
 * socket's window needs none. One that finds another socket on those ports
 * (a new connection, another ISN) is out of its window and drops nothing.
 */
export function halfOpenReset(
  client: IpAddr,
  clientPort: number,
  servicePort: number,
  seq: number,
  vip: IpAddr,
): Buffer {
  return buildIpTcp(
    { src: client, dst: vip },
    {
      srcPort: clientPort,
      dstPort: servicePort,
      seq: seq >>> 0,
      ack: 0,
      flags: TCP_RST,
      window: 0,
      urgent: 0,
      options: [],
      payload: Buffer.alloc(0),
    },
  );
}
