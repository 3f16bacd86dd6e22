/**
 * libpcap capture through npm `cap`: always promiscuous, with a BPF filter.
 * `cap` writes every frame into one shared buffer, so each frame is copied
 * out before the callback returns. Also sends raw Ethernet frames
 * (gratuitous ARP).
 */
import capModule from 'cap';

// `cap` is CommonJS with exports Node's ESM loader cannot name statically.
const { Cap } = capModule;

export class CaptureError extends Error {
  override readonly name = 'CaptureError';
}

export interface CaptureStats {
  frames: number;
  bytes: number;
  truncated: number;
}

export class FrameCapture {
  private readonly cap: InstanceType<typeof Cap> = new Cap();
  private readonly shared: Buffer;
  private open = true;
  readonly linkType: string;
  readonly stats: CaptureStats = { frames: 0, bytes: 0, truncated: 0 };

  /**
   * Opens `device` with BPF `filter`. `onFrame` receives a private copy of
   * each Ethernet frame.
   */
  constructor(
    readonly device: string,
    readonly filter: string,
    onFrame: (frame: Buffer) => void,
    bufferBytes = 16 * 1024 * 1024,
  ) {
    this.shared = Buffer.alloc(65535 + 64);
    try {
      this.linkType = this.cap.open(device, filter, bufferBytes, this.shared);
    } catch (e) {
      throw new CaptureError(`cannot capture on ${device} with filter "${filter}": ${(e as Error).message}`);
    }
    if (this.linkType !== 'ETHERNET') {
      this.cap.close();
      throw new CaptureError(`${device} is not an Ethernet device (link type ${this.linkType})`);
    }
    // Deliver every frame at once rather than when the kernel buffer fills.
    this.cap.setMinBytes?.(0);
    this.cap.on('packet', (nbytes: number, truncated: boolean) => {
      this.stats.frames++;
      this.stats.bytes += nbytes;
      if (truncated) {
        this.stats.truncated++;
        return;
      }
      onFrame(Buffer.from(this.shared.subarray(0, nbytes)));
    });
  }

  /** Sends one raw Ethernet frame on the device. */
  send(frame: Buffer): void {
    if (!this.open) throw new CaptureError('capture closed');
    this.cap.send(frame, frame.length);
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    this.cap.close();
  }
}

/**
 * A send-only handle for raw Ethernet frames (gratuitous ARP) on `device`: a
 * capture whose filter matches nothing.
 */
export function openFrameSender(device: string): FrameCapture {
  return new FrameCapture(device, 'ether proto 0xfffe', () => {}, 1 << 20);
}
