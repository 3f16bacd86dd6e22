/**
 * A fresh congestion state for the service's connections on this node
 * (native/ccreset.bpf.c, a tcp iterator, loaded by native/ccreset.cc): each
 * connection on the service address and a failover port gets its congestion
 * control initialised anew, as a new connection's is.
 *
 * Why: while both servers answer, each server's TCP sees its segments held
 * until the other server has produced the same bytes. When a client reads
 * slowly, its window opens by less than a segment, and each server sends
 * into it only at its own window-probe timer (at least 200 ms apart); the
 * copy that came first waits for the other and times out. Its TCP takes that
 * for loss, and BBR's policer detection, after a few, paces the connection at
 * the rate the probes got through (tens of kbit/s) for dozens of round
 * trips. A node that starts serving alone would keep that rate for tens of
 * seconds after the client reads again; its path is now the client's, and a
 * new start is the right model of it.
 *
 * Loading needs the privileges a bridge has before it limits them; a pass
 * needs only the link. One pass visits this network namespace's TCP sockets
 * a page of output at a time, each its own turn of the event loop.
 */
import { join } from 'node:path';
import { native as addon } from './native.js';
import { PACKAGE_ROOT } from './paths.js';
import { ipAddrToString, ipv6, type IpAddr } from '../../net/addr.js';
import type { PortSet } from '../../net/ports.js';

/** What a pass did for one connection. */
export interface CcRecord {
  client: IpAddr;
  cport: number;
  sport: number;
  /** 0, or the negative errno of the socket option that failed. */
  err: number;
}

/** Which connections a pass resets (native/bpf/ccreset.h cc_mode). */
export const CC_ALL = 0;
/** Those whose client's window reopened after a wait (native/ccreset.bpf.c `reopened`). */
export const CC_REOPENED = 1;
export type CcMode = typeof CC_ALL | typeof CC_REOPENED;

interface NativeCcReset {
  begin(mode?: CcMode): void;
  next(max: number): CcRecord[] | null;
  close(): void;
}

export interface CcResetNative {
  CcReset: new (
    objectPath: string,
    service: number,
    ranges: Array<[number, number]>,
    service6?: Buffer,
  ) => NativeCcReset;
}

export const CC_RESET_OBJECT = join(PACKAGE_ROOT, 'build', 'Release', 'ccreset.bpf.o');

/** What one pass did. */
export interface CcResetResult {
  reset: number;
  failed: number;
  /** The first failure, for the log. */
  firstError?: string;
  ms: number;
}

/**
 * This process's passes, for the metrics, once a reset is loaded: connections
 * reset and failed, by mode (CC_ALL: as the node began serving alone;
 * CC_REOPENED: as their client's window reopened, both nodes up).
 */
export const congestionResets = {
  loaded: false,
  byMode: [
    { reset: 0, failed: 0 },
    { reset: 0, failed: 0 },
  ] as Record<CcMode, { reset: number; failed: number }>,
};

export class CongestionReset {
  private constructor(private readonly x: NativeCcReset) {
    congestionResets.loaded = true;
  }

  /**
   * Loads and attaches the iterator for `service` (host order), the IPv6
   * service address `service6` (text) if there is one, and the ports; throws
   * saying why it cannot.
   */
  static load(
    service: number,
    ports: PortSet,
    service6: string | null = null,
    object = CC_RESET_OBJECT,
  ): CongestionReset {
    const ranges = ports.map((p): [number, number] => (typeof p === 'number' ? [p, p] : [p[0], p[1]]));
    const six = service6 === null ? undefined : ipv6(service6);
    return new CongestionReset(new (addon().CcReset)(object, service >>> 0, ranges, six));
  }

  /** Passes run one after another: two would share the iterator. */
  private queue: Promise<unknown> = Promise.resolve();

  /** One pass over the connections, `slice` records per turn of the event loop: every one, or (CC_REOPENED) those whose client's window reopened. */
  run(slice = 256, mode: CcMode = CC_ALL): Promise<CcResetResult> {
    const pass = this.queue.then(() => this.pass(slice, mode));
    this.queue = pass.catch(() => undefined);
    return pass;
  }

  private async pass(slice: number, mode: CcMode): Promise<CcResetResult> {
    const t0 = performance.now();
    const out: CcResetResult = { reset: 0, failed: 0, ms: 0 };
    this.x.begin(mode);
    for (;;) {
      const recs = this.x.next(slice);
      if (recs === null) break;
      for (const r of recs) {
        if (r.err === 0) out.reset++;
        else {
          out.failed++;
          out.firstError ??= `${ipAddrToString(r.client)}:${r.cport} to port ${r.sport}: errno ${-r.err}`;
        }
      }
      await new Promise((res) => setImmediate(res));
    }
    out.ms = performance.now() - t0;
    congestionResets.byMode[mode].reset += out.reset;
    congestionResets.byMode[mode].failed += out.failed;
    return out;
  }

  close(): void {
    this.x.close();
  }
}
