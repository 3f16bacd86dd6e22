/** The wire layer: zero-copy views over packets, their high-level values, checksums and sequence arithmetic. */
export * from '../../net/addr.js';
export * from './arp.js';
export * from './checksum.js';
export * from './error.js';
export * from './ethernet.js';
export * from './ipv4.js';
export * from './ipv6.js';
export * from './seq.js';
export * from './tcp.js';
export * from './tcp-options.js';
export * from './ip.js';
