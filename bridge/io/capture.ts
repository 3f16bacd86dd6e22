/**
 * libpcap capture through npm `cap`: always promiscuous, with a BPF filter.
 * `cap` writes every frame into one shared buffer, so each frame is copied
 * out before the callback returns. Also sends raw Ethernet frames
 * (gratuitous ARP).
 */
import capModule from 'cap';

// `cap` is CommonJS with exports Node's ESM loader cannot name statically.
const { Cap } = capModule;

const EMPTY = Buffer.alloc(0);

export class CaptureError extends Error {
  override readonly name = 'CaptureError';
}

export interface CaptureStats {
  frames: number;
  bytes: number;
  truncated: number;
  /** Frames dropped because the backlog was full (the program fell behind the wire). */
  dropped: number;
  /** Frames send() could not hand to the device (its queue full: ENOBUFS), with the last error. */
  sendErrors: number;
  lastSendError?: string;
}

/**
 * Closed captures, kept for the life of the process. npm `cap` closes a
 * capture by stopping its libuv poll handle but never closing it: the handle,
 * part of the native object, stays linked in the event loop's handle queue.
 * Once the closed `Cap` is garbage collected its memory is freed while still
 * linked, and the process dies of SIGSEGV some time later (seen in soaks: a
 * bridge that stopped its primary role and went on as the secondary, ~14 s
 * after). Never collected, a closed capture costs its small native object.
 */
const retired: Array<InstanceType<typeof Cap>> = [];

/** How long one turn of frame handling may hold the event loop. */
const TURN_BUDGET_MS = 4;

export class FrameCapture {
  private readonly cap: InstanceType<typeof Cap> = new Cap();
  private readonly shared: Buffer;
  private open = true;
  /** Whether it still captures and sends (not closed). */
  get isOpen(): boolean {
    return this.open;
  }
  /** Frames copied out of the ring, waiting for onFrame. */
  private backlog: Buffer[] = [];
  private head = 0;
  private backlogBytes = 0;
  private scheduled = false;
  readonly linkType: string;
  readonly stats: CaptureStats = { frames: 0, bytes: 0, truncated: 0, dropped: 0, sendErrors: 0 };

  /**
   * Opens `device` with BPF `filter`. `onFrame` receives a private copy of
   * each Ethernet frame.
   *
   * `cap` calls back for every frame in the kernel ring in one go, and goes
   * on for as long as frames keep arriving: handling each there would hold
   * the event loop (heartbeats, timers, NFQUEUE) while traffic lasts. So the
   * callback only copies the frame into a backlog, and the backlog is handled
   * in turns of at most TURN_BUDGET_MS (setImmediate), in order. The backlog
   * holds at most `bufferBytes` (as much again as the kernel ring); beyond
   * that frames are dropped and counted, as the kernel drops them when its
   * ring is full.
   */
  constructor(
    readonly device: string,
    readonly filter: string,
    private readonly onFrame: (frame: Buffer) => void,
    readonly bufferBytes = 16 * 1024 * 1024,
  ) {
    this.shared = Buffer.alloc(65535 + 64);
    try {
      this.linkType = this.cap.open(device, filter, bufferBytes, this.shared);
    } catch (e) {
      throw new CaptureError(`cannot capture on ${device} with filter "${filter}": ${(e as Error).message}`);
    }
    if (this.linkType !== 'ETHERNET') {
      this.cap.close();
      retired.push(this.cap);
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
      if (this.backlogBytes + nbytes > this.bufferBytes) {
        this.stats.dropped++;
        return;
      }
      this.backlog.push(Buffer.from(this.shared.subarray(0, nbytes)));
      this.backlogBytes += nbytes;
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.handle);
      }
    });
  }

  /** Frames waiting to be handled. */
  get pending(): number {
    return this.backlog.length - this.head;
  }

  /**
   * Handles every frame read so far, now: for a decision that must not miss
   * one already in (a reply to the split-brain probe). The ARP capture's
   * backlog is a handful of frames.
   */
  flush(): void {
    this.handleFor(Infinity);
  }

  private readonly handle = (): void => this.handleFor(TURN_BUDGET_MS);

  private handleFor(budgetMs: number): void {
    this.scheduled = false;
    const until = performance.now() + budgetMs;
    while (this.open && this.head < this.backlog.length) {
      const f = this.backlog[this.head]!;
      this.backlog[this.head++] = EMPTY;
      this.backlogBytes -= f.length;
      this.onFrame(f);
      if (performance.now() >= until) break;
    }
    if (!this.open || this.head === this.backlog.length) {
      this.backlog = [];
      this.head = 0;
      this.backlogBytes = 0;
    } else {
      // Handled frames leave the array now and then, not one shift() at a time.
      if (this.head >= 1024 && this.head * 2 >= this.backlog.length) {
        this.backlog = this.backlog.slice(this.head);
        this.head = 0;
      }
      // The rest on a later turn of the event loop, after timers and I/O.
      this.scheduled = true;
      setImmediate(this.handle);
    }
  }

  /**
   * Sends one raw Ethernet frame on the device; false if it did not go (the
   * device's queue full under a burst: ENOBUFS), counted: the caller decides
   * whether to send it again. A closed capture is a bug, and throws.
   */
  send(frame: Buffer): boolean {
    if (!this.open) throw new CaptureError('capture closed');
    try {
      this.cap.send(frame, frame.length);
      return true;
    } catch (e) {
      this.stats.sendErrors++;
      this.stats.lastSendError = (e as Error).message;
      return false;
    }
  }

  /** Stops capturing; frames not yet handled are dropped with it. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    this.cap.close();
    retired.push(this.cap);
  }
}

/**
 * A send-only handle for raw Ethernet frames (gratuitous ARP) on `device`: a
 * capture whose filter matches nothing.
 */
export function openFrameSender(device: string): FrameCapture {
  return new FrameCapture(device, 'ether proto 0xfffe', () => {}, 1 << 20);
}

/**
 * Calls `fn` `ms` from now, but only once that turn of the event loop has
 * read its sockets and `capture` has handled every frame read by then. After
 * a held loop, an expired timer runs before the loop reads what came in
 * meanwhile: a decision on what the LAN said (did the split-brain probe get
 * an answer?) would run before the answer is read. setImmediate runs after
 * the turn's I/O.
 */
export function afterReading(ms: number, capture: FrameCapture, fn: () => void): NodeJS.Timeout {
  return setTimeout(() => {
    setImmediate(() => {
      capture.flush();
      fn();
    });
  }, ms);
}
