/**
 * Packet capture in a rig host with tcpdump, read back with pcap-parser: the
 * client's own capture is the strongest oracle of transparency.
 */
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import * as pcap from 'pcap-parser';
import type { RigHost } from './rig.js';
import { slow } from './slow.js';

export interface CapturedFrame {
  /** Seconds since the epoch, with microseconds. */
  time: number;
  data: Buffer;
  originalLength: number;
}

/** Reads a libpcap (2.4, microsecond) file. */
export function readPcap(file: string): Promise<CapturedFrame[]> {
  return new Promise((resolve, reject) => {
    const frames: CapturedFrame[] = [];
    const parser = pcap.parse(file);
    parser.on('packet', (p) =>
      frames.push({
        time: p.header.timestampSeconds + p.header.timestampMicroseconds / 1e6,
        data: Buffer.from(p.data),
        originalLength: p.header.originalLength,
      }),
    );
    parser.on('end', () => resolve(frames));
    parser.on('error', reject);
  });
}

export class Capture {
  private constructor(
    readonly file: string,
    private readonly proc: ChildProcess,
  ) {}

  /**
   * Starts tcpdump on the host's eth0 (promiscuous, as tcpdump is by default)
   * and resolves once it is listening. `snaplen` bounds file size for bulk flows.
   */
  static async start(host: RigHost, filter: string, name: string, snaplen = 262144): Promise<Capture> {
    const file = join(host.rig.tmpdir, `${name}.pcap`);
    const proc = host.spawn([
      'tcpdump',
      '-i',
      host.ifname,
      '-n',
      '-U',
      '--immediate-mode',
      '-s',
      String(snaplen),
      '-w',
      file,
      filter,
    ]);
    let err = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), slow(10_000));
      proc.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`tcpdump exited ${code}: ${err}`));
      });
    });
    return new Capture(file, proc);
  }

  /** Stops tcpdump (flushing the file) and returns every captured frame. */
  async stop(): Promise<CapturedFrame[]> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = once(this.proc, 'exit');
      this.proc.kill('SIGINT');
      await exited;
    }
    return readPcap(this.file);
  }
}
