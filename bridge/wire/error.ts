/**
 * Typed errors of the wire layer. Parsers return a WireError instead of
 * throwing, so a malformed packet on the data path costs one allocation and
 * never an exception unwinding through the shell.
 */

export type WireLayer = 'ethernet' | 'arp' | 'ip' | 'ipv4' | 'ipv6' | 'tcp' | 'tcp-option';

export type WireErrorCode =
  | 'truncated' // the buffer ends before the header (or a length it states) does
  | 'bad-version' // the version field is not 4 (IPv4) or 6 (IPv6)
  | 'bad-header-length' // IHL < 5, TCP data offset < 5, or a header longer than its packet
  | 'bad-total-length' // IPv4 total length shorter than the header or longer than the buffer; an IPv6 payload length of 0 or past the buffer
  | 'fragment' // an IPv4 fragment or an IPv6 fragment header: the bridge never reassembles
  | 'ext-header' // an IPv6 extension header that does not pass: AH, ESP, a routing header with segments left, too many
  | 'not-tcp' // the IPv4 protocol or the IPv6 header after the extension headers is not TCP
  | 'not-ipv4' // Ethernet type is not IPv4
  | 'bad-arp' // ARP for something other than Ethernet/IPv4
  | 'bad-option'; // TCP option length < 2, runs past the header, or wrong for its kind

export class WireError extends Error {
  override readonly name = 'WireError';
  constructor(
    readonly layer: WireLayer,
    readonly code: WireErrorCode,
    detail: string,
  ) {
    super(`${layer}: ${code}: ${detail}`);
  }
}
