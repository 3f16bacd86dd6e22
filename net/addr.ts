/** IPv4 and MAC address conversions. IPv4 addresses are uint32 numbers on the data path. */

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
