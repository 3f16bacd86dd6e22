/**
 * The secondary bridge process: libpcap capture of the client's frames →
 * injection into S's own stack; S's output to clients → diverted to P.
 *
 * Queue:
 *   base+2   S's output to clients, diverted   fail closed: a client must
 *            never see S's replies while P speaks for the pair.
 */
import { ipv4 } from '../wire/addr.js';
import { FrameCapture } from '../io/capture.js';
import { BRIDGE_MARK, Injector } from '../io/inject.js';
import { NodeState } from '../io/node-state.js';
import { PacketQueue, SKB_GSO, type PacketBatch } from '../io/nfqueue.js';
import { RuleSet } from '../io/rules.js';
import { PortMatcher, type PortSet } from '../ports.js';
import { Diverter } from './diverter.js';
import type { Config } from '../../config/config.js';
import type { Logger } from '../log.js';

/** BPF for client frames to the service's failover ports. */
export function serviceFilter(vip: string, ports: PortSet): string {
  const p = ports.map((x) => (typeof x === 'number' ? `dst port ${x}` : `dst portrange ${x[0]}-${x[1]}`)).join(' or ');
  return `tcp and dst host ${vip} and (${p})`;
}

export class SecondaryBridge {
  readonly diverter: Diverter;
  readonly state: NodeState;
  private q!: PacketQueue;
  private rules!: RuleSet;
  private injector!: Injector;
  private capture!: FrameCapture;
  private stopped = false;
  verdictErrors = 0;

  private constructor(
    readonly cfg: Config,
    readonly log: Logger,
  ) {
    this.diverter = new Diverter({
      service: ipv4(cfg.service.address),
      self: ipv4(cfg.secondary.address),
      primary: ipv4(cfg.primary.address),
      ports: new PortMatcher(cfg.service.ports),
      mtu: cfg.lan.mtu,
    });
    this.state = new NodeState(`${cfg.state_dir}/${cfg.instance}s.json`);
  }

  static async start(cfg: Config, log: Logger): Promise<SecondaryBridge> {
    const b = new SecondaryBridge(cfg, log);
    try {
      await b.setup();
    } catch (e) {
      await b.stop();
      throw e;
    }
    return b;
  }

  private async setup(): Promise<void> {
    const cfg = this.cfg;
    const recovered = await NodeState.recover(this.state.journal);
    if (recovered.length) this.log.warn({ changes: recovered.length }, 'undid what a previous secondary left behind');
    // The VIP dormant on lo: S's TCP sees the client's real destination, and
    // a takeover only has to announce it.
    await this.state.addDormantAddress(cfg.service.address, cfg.secondary.interface);
    // §3.1: the interface runs promiscuous (explicit, so it is undone and visible in `ip link`).
    await this.state.setPromisc(cfg.secondary.interface, true);
    const qnum = cfg.queue_base + 2;
    this.q = new PacketQueue(qnum, { gso: true, maxLen: 16384, rcvbuf: 64 << 20 }, (b) => this.onOutput(b));
    this.injector = new Injector(BRIDGE_MARK, 64, 1 << 16);
    this.rules = await RuleSet.install(
      `${cfg.instance}s`,
      [
        {
          hook: 'output',
          match: { src: ipv4(cfg.service.address), sports: cfg.service.ports },
          action: { queue: qnum, bypass: false },
          comment: 'tcpfo: S output to clients, diverted to P (fail closed)',
        },
      ],
      BRIDGE_MARK,
    );
    this.capture = new FrameCapture(cfg.secondary.interface, serviceFilter(cfg.service.address, cfg.service.ports), (frame) => {
      const pkt = this.diverter.inbound(frame);
      if (pkt) this.injector.send(pkt);
    });
    this.log.info(
      { role: 'secondary', service: cfg.service.address, interface: cfg.secondary.interface, backend: this.rules.backend, queue: qnum },
      'secondary bridge up: capturing and diverting',
    );
  }

  private onOutput(b: PacketBatch): void {
    for (let i = 0; i < b.count; i++) {
      const id = b.id(i);
      const out = this.diverter.divert(b.packet(i), (b.skbInfo(i) & SKB_GSO) !== 0);
      let ok: boolean;
      if (typeof out !== 'string') ok = this.q.acceptModified(id, out);
      else if (out === 'not-service' || out === 'not-failover-port') ok = this.q.accept(id);
      else ok = this.q.drop(id); // fail closed
      if (!ok) this.verdictErrors++;
    }
  }

  status(): Record<string, unknown> {
    return {
      role: 'secondary',
      diverter: this.diverter.stats,
      queue: this.q?.stats(),
      capture: this.capture?.stats,
      injector: this.injector?.stats,
      verdictErrors: this.verdictErrors,
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.log.info({ status: this.status() }, 'final counters');
    this.capture?.close();
    await this.rules?.remove();
    this.q?.close();
    await this.injector?.drain(1000);
    this.injector?.close();
    await this.state.undoAll();
    this.log.info({ role: 'secondary' }, 'secondary bridge stopped; rules, promiscuous mode and addresses undone');
  }
}
