// Type declarations for the untyped npm packages the project uses (only the parts we call).

declare module 'raw-socket' {
  import type { EventEmitter } from 'node:events';
  export const AddressFamily: { IPv4: number; IPv6: number };
  export const Protocol: { None: number; ICMP: number; TCP: number; UDP: number; ICMPv6: number };
  export const SocketLevel: { SOL_SOCKET: number; IPPROTO_IP: number; IPPROTO_IPV6: number };
  export const SocketOption: {
    SO_BROADCAST: number;
    SO_RCVBUF: number;
    SO_RCVTIMEO: number;
    SO_SNDBUF: number;
    SO_SNDTIMEO: number;
    IP_HDRINCL: number;
    IP_OPTIONS: number;
    IP_TOS: number;
    IP_TTL: number;
  };
  export interface SocketOptions {
    protocol?: number;
    addressFamily?: number;
    bufferSize?: number;
  }
  export class Socket extends EventEmitter {
    close(): this;
    pauseRecv(): this;
    resumeRecv(): this;
    send(
      buffer: Buffer,
      offset: number,
      length: number,
      address: string,
      afterCallback: (error: Error | null, bytes: number) => void,
    ): this;
    setOption(level: number, option: number, value: number | Buffer, length?: number): void;
    on(event: 'message', listener: (buffer: Buffer, source: string) => void): this;
    on(event: 'error', listener: (error: Error) => void): this;
    on(event: 'close', listener: () => void): this;
  }
  export function createSocket(options?: SocketOptions): Socket;
}

declare module 'pcap-parser' {
  import type { EventEmitter } from 'node:events';
  import type { Readable } from 'node:stream';
  export interface PcapPacketHeader {
    timestampSeconds: number;
    timestampMicroseconds: number;
    capturedLength: number;
    originalLength: number;
  }
  export interface PcapGlobalHeader {
    linkLayerType: number;
    snapshotLength: number;
  }
  export interface PcapParser extends EventEmitter {
    on(event: 'globalHeader', listener: (h: PcapGlobalHeader) => void): this;
    on(event: 'packet', listener: (p: { header: PcapPacketHeader; data: Buffer }) => void): this;
    on(event: 'end', listener: () => void): this;
    on(event: 'error', listener: (e: Error) => void): this;
  }
  export function parse(input: string | Readable): PcapParser;
}

declare module 'cap' {
  import type { EventEmitter } from 'node:events';
  export class Cap extends EventEmitter {
    constructor();
    open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
    close(): void;
    setMinBytes?(n: number): void;
    send(buffer: Buffer, length?: number): void;
    on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): this;
    static findDevice(ip?: string): string | undefined;
    static deviceList(): Array<{ name: string; addresses: Array<{ addr: string }> }>;
  }
  const cap: { Cap: typeof Cap };
  export default cap;
}
