/**
 * IPv4, IPv6 and MAC address conversions. IPv4 addresses are uint32 numbers on the
 * data path; IPv6 addresses are their 16 bytes (network order).
 */

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const MAC_RE = /^([0-9a-f]{2})(?::([0-9a-f]{2})){5}$/i;

export function ipv4ToString(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 0xff}.${(addr >>> 8) & 0xff}.${addr & 0xff}`;
}

/** Parses dotted-quad notation; null when it is not a valid IPv4 address. */
export function parseIpv4(text: string): number | null {
  const m = IPV4_RE.exec(text);
  if (!m) return null;
  let out = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255 || (m[i]!.length > 1 && m[i]![0] === '0')) return null;
    out = out * 256 + octet;
  }
  return out >>> 0;
}

/** Like parseIpv4 but throws: for addresses that come from our own code or validated config. */
export function ipv4(text: string): number {
  const v = parseIpv4(text);
  if (v === null) throw new TypeError(`not an IPv4 address: ${JSON.stringify(text)}`);
  return v;
}

export function macToString(buf: Uint8Array, off = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(buf[off + i]!.toString(16).padStart(2, '0'));
  return parts.join(':');
}

/** Parses aa:bb:cc:dd:ee:ff; null when malformed. */
export function parseMac(text: string): Buffer | null {
  if (!MAC_RE.test(text)) return null;
  return Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
}

export function mac(text: string): Buffer {
  const v = parseMac(text);
  if (v === null) throw new TypeError(`not a MAC address: ${JSON.stringify(text)}`);
  return v;
}

export const BROADCAST_MAC: Readonly<Buffer> = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/**
 * Parses IPv6 text (RFC 4291 §2.2: eight groups of up to four hex digits, one `::`
 * for a run of zero groups, an IPv4 tail in dotted quads); null when it is not one.
 * No zone (`%eth0`): that names an interface, not an address.
 */
export function parseIpv6(text: string): Buffer | null {
  if (text.length > 45 || !/^[0-9a-fA-F:.]+$/.test(text)) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const g = items[i]!;
      if (i === items.length - 1 && g.includes('.')) {
        const v4 = parseIpv4(g);
        if (v4 === null) return null;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) out.push(parseInt(g, 16));
      else return null;
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return null;
  // An IPv4 tail only at the very end.
  if (halves.length === 2 && halves[0]!.includes('.')) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const all = [...head, ...Array.from({ length: halves.length === 2 ? missing : 0 }, () => 0), ...tail];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, 2 * i));
  return out;
}

/** Like parseIpv6 but throws: for addresses from our own code or validated config. */
export function ipv6(text: string): Buffer {
  const v = parseIpv6(text);
  if (v === null) throw new TypeError(`not an IPv6 address: ${JSON.stringify(text)}`);
  return v;
}

/**
 * The 16 bytes at `off` as RFC 5952 text: lower case, no leading zeros, the longest
 * run of two or more zero groups (the first of equals) as `::`.
 */
export function ipv6ToString(buf: Uint8Array, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((buf[off + 2 * i]! << 8) | buf[off + 2 * i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/**
 * An IP address as the data path's cores carry it: an IPv4 address as its uint32 (a
 * number), an IPv6 address as its 16 bytes in lower-case hex (a string of 32 digits).
 * Either is a Map key and compares with `===`; IPv4's costs no allocation.
 */
export type IpAddr = number | string;

/** The IPv6 address of the 16 bytes at `off`, as an IpAddr. */
export function ip6Addr(buf: Uint8Array, off = 0): string {
  // Never past the view: a pooled Buffer's ArrayBuffer goes on beyond it.
  if (off < 0 || off + 16 > buf.length) throw new RangeError(`16 bytes at ${off} of ${buf.length}`);
  return Buffer.from(buf.buffer, buf.byteOffset + off, 16).toString('hex');
}

/** Whether `a` is an IPv6 address (else IPv4). */
export function isIp6(a: IpAddr): a is string {
  return typeof a === 'string';
}

/** The address's bytes in network order: 4 for IPv4, 16 for IPv6. */
export function ipAddrBytes(a: IpAddr): Buffer {
  if (isIp6(a)) return Buffer.from(a, 'hex');
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(a >>> 0);
  return out;
}

/** Dotted quads for IPv4, RFC 5952 text for IPv6. */
export function ipAddrToString(a: IpAddr): string {
  return isIp6(a) ? ipv6ToString(Buffer.from(a, 'hex')) : ipv4ToString(a);
}

/** Parses either family's text; null when it is neither. */
export function parseIpAddr(text: string): IpAddr | null {
  const v4 = parseIpv4(text);
  if (v4 !== null) return v4;
  const v6 = parseIpv6(text);
  return v6 === null ? null : ip6Addr(v6);
}

/** Like parseIpAddr but throws: for addresses from our own code or validated config. */
export function ipAddr(text: string): IpAddr {
  const v = parseIpAddr(text);
  if (v === null) throw new TypeError(`not an IP address: ${JSON.stringify(text)}`);
  return v;
}

/** A service's addresses: its IPv4 one, and its IPv6 one (IpAddr hex) if it has one. */
export interface ServiceAddresses {
  v4: number;
  v6: string | null;
}

/** `a` on a path that carries IPv4 only (the diverter's option, the kernel's maps); throws for IPv6. */
export function ip4Of(a: IpAddr): number {
  if (isIp6(a)) throw new TypeError(`an IPv6 address on an IPv4-only path: ${ipAddrToString(a)}`);
  return a;
}
