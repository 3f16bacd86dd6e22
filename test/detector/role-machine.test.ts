/**
 * The secondary's role machine: every order of events the soaks and the
 * rig tests met, and random orders checked against its invariants.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_ROLE_MACHINE,
  nodeRoleOf,
  ROLE_STATES,
  RoleMachine,
  STEP_WORDS,
  stepOf,
  type RoleAction,
} from '../../bridge/node/role-machine.js';
import { NODE_ROLES } from '../../bridge/node/roles.js';

const {
  probeWaitMs: WAIT,
  reprobeMs: REPROBE,
  promoteRetryMs: RETRY,
  claimLogEveryMs: CLAIM_LOG,
} = DEFAULT_ROLE_MACHINE;
const kinds = (a: RoleAction[]) => a.map((x) => x.do);

describe('the secondary’s role machine', () => {
  it('the primary dies: probe, no ARP answer, take over', () => {
    const m = new RoleMachine();
    expect(m.decision('down', 'primary', 1000)).toEqual([{ do: 'probe', waitMs: WAIT }]);
    expect(m.state).toBe('secondary');
    expect(m.timer(1000 + WAIT)).toEqual([{ do: 'take-over' }]);
    expect(m.state).toBe('active');
    expect(m.probing).toBe(false);
  });

  it('the takeover’s clock starts at the decision: the detector’s (earlier than the call), a handover’s, not a later repeat', () => {
    const m = new RoleMachine();
    m.decision('down', 'primary', 1000, 980);
    expect(m.decidedAt).toBe(980);
    // A repeated decision while the probe waits changes nothing.
    m.decision('down', 'primary', 1010, 1005);
    expect(m.decidedAt).toBe(980);
    m.timer(1000 + WAIT);
    expect(m.state).toBe('active');
    const h = new RoleMachine();
    h.decision('up', 'primary', 0);
    expect(kinds(h.handedOver(5000))).toEqual(['probe']);
    expect(h.decidedAt).toBe(5000);
  });

  it('only the heartbeat path is cut: the VIP answers, so no takeover; probes repeat, the warning at most every 5 s', () => {
    const m = new RoleMachine();
    let t = 0;
    expect(kinds(m.decision('down', 'primary', t))).toEqual(['probe']);
    const logs: boolean[] = [];
    for (let i = 0; i < 60; i++) {
      m.vipClaimed(t + 10); // the primary's bridge answers the probe
      t += WAIT;
      const w = m.timer(t);
      expect(w).toHaveLength(1);
      expect(w[0]).toMatchObject({ do: 'wait', waitMs: REPROBE });
      logs.push((w[0] as { log: boolean }).log);
      t += REPROBE;
      expect(m.timer(t)).toEqual([{ do: 'probe', waitMs: WAIT }]);
    }
    expect(m.state).toBe('secondary');
    // 60 rounds of 250 ms = 15 s: the first warning and one every 5 s.
    expect(logs.filter(Boolean)).toHaveLength(Math.ceil((60 * (WAIT + REPROBE)) / CLAIM_LOG));
    expect(logs[0]).toBe(true);
    // The primary's heartbeats come back: probing ends at the next timer, nothing else happens.
    expect(m.decision('up', 'primary', t + 1)).toEqual([]);
    expect(m.timer(t + WAIT)).toEqual([]);
    expect(m.probing).toBe(false);
    expect(m.state).toBe('secondary');
  });

  it('an ARP answer from before the probe does not count (a stale claim)', () => {
    const m = new RoleMachine();
    m.vipClaimed(500);
    m.decision('down', 'primary', 1000);
    expect(kinds(m.timer(1000 + WAIT))).toEqual(['take-over']);
  });

  it('the primary comes back while a probe waits: no takeover', () => {
    const m = new RoleMachine();
    m.decision('down', 'primary', 0);
    expect(m.decision('up', 'primary', 10)).toEqual([]);
    expect(m.timer(WAIT)).toEqual([]);
    expect(m.state).toBe('secondary');
    // Down again later: a fresh probe.
    expect(kinds(m.decision('down', 'primary', 1000))).toEqual(['probe']);
  });

  it('a second "down" while probing starts no second probe', () => {
    const m = new RoleMachine();
    m.decision('down', 'primary', 0);
    expect(m.decision('down', 'primary', 5)).toEqual([]);
    expect(kinds(m.timer(WAIT))).toEqual(['take-over']);
  });

  it('a stop during a probe: no takeover, nothing started after', () => {
    const m = new RoleMachine();
    m.decision('down', 'primary', 0);
    m.stop();
    expect(m.timer(WAIT)).toEqual([]);
    expect(m.state).toBe('secondary');
    expect(m.decision('down', 'primary', 1000)).toEqual([]);
  });

  it('the old primary rejoins as our secondary: promote once; a failed promotion is retried only after 10 s', () => {
    const m = new RoleMachine();
    m.decision('down', 'primary', 0);
    m.timer(WAIT);
    expect(m.state).toBe('active');
    // Down decisions while active change nothing (we serve).
    expect(m.decision('down', 'primary', 100)).toEqual([]);
    expect(m.decision('up', 'secondary', 2000)).toEqual([{ do: 'promote' }]);
    expect(m.state).toBe('promoting');
    // The same peer's decisions while the promotion runs start no second one.
    expect(m.decision('down', null, 2100)).toEqual([]);
    expect(m.decision('up', 'secondary', 2200)).toEqual([]);
    m.promoted(false, 2300);
    expect(m.state).toBe('active');
    expect(m.decision('up', 'secondary', 2300 + RETRY - 1)).toEqual([]);
    expect(m.decision('up', 'secondary', 2300 + RETRY)).toEqual([{ do: 'promote' }]);
    m.promoted(true, 13_000);
    expect(m.state).toBe('primary');
    // From here the primary bridge decides; this machine starts nothing.
    expect(m.decision('down', 'secondary', 14_000)).toEqual([]);
    expect(m.decision('up', 'secondary', 15_000)).toEqual([]);
  });

  it('both nodes started as secondary: logged, never promoted, never taken over for it', () => {
    const m = new RoleMachine();
    expect(m.decision('up', 'secondary', 0)).toEqual([{ do: 'log-both-secondary' }]);
    expect(m.state).toBe('secondary');
  });

  it('ARP answers are noted only while the secondary: an active node ignores its own', () => {
    const m = new RoleMachine();
    m.decision('down', 'primary', 0);
    m.timer(WAIT);
    m.vipClaimed(WAIT + 1);
    expect(m.state).toBe('active');
  });

  it('handed over (a planned switchover): one probe, then take over while the primary is up; answered: refused, stay secondary; never when serving or stopped', () => {
    const m = new RoleMachine();
    expect(m.handedOver(0)).toEqual([{ do: 'probe', waitMs: WAIT }]);
    // The primary's heartbeats go on meanwhile: no reason to stop.
    expect(m.decision('up', 'primary', 10)).toEqual([]);
    expect(m.timer(WAIT)).toEqual([{ do: 'take-over' }]);
    expect(m.state).toBe('active');
    expect(m.handedOver(100)).toEqual([]);
    // The other node rejoins as our secondary afterwards: promoted as after a failover.
    expect(m.decision('up', 'secondary', 200)).toEqual([{ do: 'promote' }]);
    // Someone answers for the VIP: refused; a later failure of the primary probes afresh.
    const r = new RoleMachine();
    expect(kinds(r.handedOver(0))).toEqual(['probe']);
    r.vipClaimed(10);
    expect(r.timer(WAIT)).toEqual([{ do: 'refuse-handover' }]);
    expect(r.state).toBe('secondary');
    expect(r.probing).toBe(false);
    expect(r.timer(WAIT + REPROBE)).toEqual([]);
    expect(kinds(r.decision('down', 'primary', 1000))).toEqual(['probe']);
    const s = new RoleMachine();
    s.stop();
    expect(s.handedOver(0)).toEqual([]);
    expect(s.state).toBe('secondary');
  });

  it('any order of events: at most one takeover, and only after a probe that went unanswered while the primary was down or had handed over', () => {
    type Ev = {
      k: 'down' | 'up' | 'up-secondary' | 'claim' | 'timer' | 'promoted-ok' | 'promoted-fail' | 'stop' | 'handover';
      dt: number;
    };
    const ev = fc.record({
      k: fc.constantFrom(
        'down',
        'up',
        'up-secondary',
        'claim',
        'timer',
        'promoted-ok',
        'promoted-fail',
        'stop',
        'handover',
      ),
      dt: fc.integer({ min: 0, max: 400 }),
    }) as fc.Arbitrary<Ev>;
    fc.assert(
      fc.property(fc.array(ev, { maxLength: 60 }), (events) => {
        const m = new RoleMachine();
        let t = 0;
        let takeovers = 0;
        let promotes = 0;
        let down = false;
        let stopped = false;
        // A claim counts against a probe sent in the same millisecond, before or
        // after it (the clock's resolution): the safe side, no takeover.
        let claimAt = -Infinity;
        let probeAt: number | null = null;
        const claimedSinceProbe = () => probeAt !== null && claimAt >= probeAt;
        let handed = false;
        for (const e of events) {
          t += e.dt;
          let out: RoleAction[] = [];
          if (e.k === 'down') out = m.decision('down', 'primary', t);
          else if (e.k === 'up') out = m.decision('up', 'primary', t);
          else if (e.k === 'up-secondary') out = m.decision('up', 'secondary', t);
          else if (e.k === 'claim') {
            if (m.state === 'secondary') claimAt = t;
            m.vipClaimed(t);
          } else if (e.k === 'timer') out = m.timer(t);
          else if (e.k === 'promoted-ok') m.promoted(true, t);
          else if (e.k === 'promoted-fail') m.promoted(false, t);
          else if (e.k === 'handover') {
            out = m.handedOver(t);
            if (out.length) handed = true;
          } else {
            m.stop();
            stopped = true;
          }
          if (e.k === 'down') down = true;
          if (e.k === 'up' || e.k === 'up-secondary') down = false;
          for (const a of out) {
            if (a.do === 'probe') {
              probeAt = t;
            }
            if (a.do === 'refuse-handover') {
              expect(handed).toBe(true);
              expect(claimedSinceProbe()).toBe(true);
              handed = false;
            }
            if (a.do === 'take-over') {
              takeovers++;
              expect(down || handed).toBe(true);
              expect(stopped).toBe(false);
              expect(probeAt).not.toBeNull();
              expect(claimedSinceProbe()).toBe(false);
            }
            if (a.do === 'promote') {
              promotes++;
              expect(takeovers).toBe(1);
            }
            if (stopped) expect(a.do).toBe('never');
          }
        }
        expect(takeovers).toBeLessThanOrEqual(1);
        if (promotes) expect(['promoting', 'active', 'primary']).toContain(m.state);
      }),
      {
        numRuns: 2000,
        // A claim in the probe's own millisecond, just before it: a refusal, never a takeover.
        examples: [
          [
            [
              { k: 'claim', dt: 0 },
              { k: 'handover', dt: 0 },
              { k: 'timer', dt: 0 },
            ],
          ],
          [
            [
              { k: 'down', dt: 5 },
              { k: 'claim', dt: 0 },
              { k: 'timer', dt: 0 },
            ],
          ],
        ],
      },
    );
  });
});

describe('the primary’s role machine', () => {
  const primary = () => new RoleMachine(DEFAULT_ROLE_MACHINE, 'primary');

  it('the secondary dies: its silence is checked, then every connection turns primary-only, then alone; it rejoins', () => {
    const m = primary();
    expect(m.role).toBe('primary');
    expect(m.decision('down', 'secondary', 1000, 1000, 700)).toEqual([{ do: 'check-silence', lastHeard: 700 }]);
    expect(m.silence(700, false, 1000)).toEqual([{ do: 'go-alone' }]);
    expect([m.state, m.role, m.alone]).toEqual(['going-alone', 'alone', true]);
    // A repeated check (a timer that fired late) changes nothing.
    expect(m.silence(700, false, 1010)).toEqual([]);
    expect(m.aloneDone()).toEqual([]);
    expect(m.state).toBe('alone');
    expect(m.decision('up', 'secondary', 5000)).toEqual([{ do: 'rejoin' }]);
    expect([m.state, m.alone]).toEqual(['primary', false]);
  });

  it('heartbeats lost while the secondary’s segments still arrive: excused (said once), looked at again, heard again', () => {
    const m = primary();
    m.decision('down', 'secondary', 1000, 1000, 700);
    expect(m.silence(700, true, 1000)).toEqual([{ do: 'excuse', lastHeard: 700, log: true }]);
    expect(m.excused).toBe(true);
    expect(m.silence(700, true, 1100)).toEqual([{ do: 'excuse', lastHeard: 700, log: false }]);
    expect(m.decision('up', 'secondary', 1150)).toEqual([{ do: 'heard-again', since: 1000 }]);
    expect([m.state, m.excused]).toEqual(['primary', false]);
    // The look that was due: the peer is up, nothing happens.
    expect(m.silence(700, false, 1200)).toEqual([]);
    // Excused, then its segments stop too: it failed.
    m.decision('down', 'secondary', 2000, 2000, 1800);
    m.silence(1800, true, 2000);
    expect(m.silence(1800, false, 2100)).toEqual([{ do: 'go-alone' }]);
    expect(m.excused).toBe(false);
  });

  it('the secondary rejoins while the connections still turn primary-only: it rejoins once they have (said once); gone again meanwhile, not', () => {
    const m = primary();
    m.peerGone();
    expect(m.state).toBe('going-alone');
    expect(m.decision('up', 'secondary', 10)).toEqual([{ do: 'log-rejoin-waits' }]);
    expect(m.decision('up', 'secondary', 20)).toEqual([]);
    expect(m.aloneDone()).toEqual([{ do: 'rejoin' }]);
    expect(m.state).toBe('primary');

    const g = primary();
    g.peerGone();
    g.decision('up', 'secondary', 10);
    // Down again before the steps end: no check (already going alone), no rejoin at their end.
    expect(g.decision('down', 'secondary', 20, 20, 15)).toEqual([]);
    expect(g.aloneDone()).toEqual([]);
    expect(g.state).toBe('alone');
  });

  it('a planned switchover: only from primary; the secondary going down, refusing or not answering resumes the service here', () => {
    const m = primary();
    expect(m.beginHandover()).toBe(true);
    expect([m.state, m.switching, m.role]).toEqual(['handing', true, 'primary']);
    expect(m.beginHandover()).toBe(false);
    expect(m.decision('down', 'secondary', 100, 100, 40)).toEqual([
      { do: 'resume-service', why: 'the secondary went down during the switchover' },
      { do: 'check-silence', lastHeard: 40 },
    ]);
    expect(m.state).toBe('primary');

    const r = primary();
    expect(r.handoverRefused('x')).toEqual([]);
    r.beginHandover();
    expect(r.handoverRefused('its configuration differs')).toEqual([
      { do: 'resume-service', why: 'the secondary refused: its configuration differs' },
    ]);
    expect(r.handoverRefused('again')).toEqual([]);

    const t = primary();
    t.beginHandover();
    expect(t.handoverTimedOut('secondary', 2000)).toEqual([
      { do: 'resume-service', why: 'the secondary did not take over within 2000 ms' },
    ]);
    // It took over after all (its word came late): two nodes must not both serve.
    expect(t.peerTook('it said so')).toEqual([{ do: 'handed-over', how: 'it said so' }]);
    expect(t.state).toBe('handed-over');

    const a = primary();
    a.peerGone();
    expect(a.beginHandover()).toBe(false);
  });

  it('handed over: its heartbeats saying it serves count as its word; after that nothing here is ours', () => {
    const m = primary();
    m.beginHandover();
    expect(m.handoverTimedOut('alone', 2000)).toEqual([{ do: 'handed-over', how: 'its heartbeats say it serves' }]);
    expect(m.decision('down', 'alone', 3000)).toEqual([]);
    expect(m.decision('up', 'alone', 3100)).toEqual([]);
    expect(m.peerTook('it said so')).toEqual([]);
    expect(m.silence(0, false, 3200)).toEqual([]);
  });

  it('stopping: a switchover in flight resumes the service; nothing more starts', () => {
    const m = primary();
    m.beginHandover();
    expect(m.stop()).toEqual([{ do: 'resume-service', why: 'this node is stopping' }]);
    expect(m.decision('down', 'secondary', 10)).toEqual([]);
    expect(m.silence(0, false, 20)).toEqual([]);
    expect(m.peerGone()).toEqual([]);
    const a = primary();
    a.peerGone();
    a.aloneDone();
    a.stop();
    expect(a.decision('up', 'secondary', 10)).toEqual([]);
  });

  it('random orders of events: going alone only with the secondary down and no switchover done, a rejoin only after it and with the peer up, nothing after a handover or a stop', () => {
    type Ev = { k: string; still: boolean; dt: number };
    const ev = fc.record({
      k: fc.constantFrom(
        'down',
        'up',
        'silence',
        'gone',
        'alone-done',
        'begin',
        'timeout',
        'timeout-alone',
        'refused',
        'took',
        'stop',
      ),
      still: fc.boolean(),
      dt: fc.integer({ min: 0, max: 300 }),
    }) as fc.Arbitrary<Ev>;
    fc.assert(
      fc.property(fc.array(ev, { maxLength: 60 }), (events) => {
        const m = primary();
        let t = 0;
        let down = false;
        let stopped = false;
        let handedOver = false;
        let goneAlone = false;
        let excusedLogs = 0;
        for (const e of events) {
          t += e.dt;
          let out: RoleAction[] = [];
          const was = m.state;
          if (e.k === 'down') out = m.decision('down', 'secondary', t, t, t - 50);
          else if (e.k === 'up') out = m.decision('up', 'secondary', t);
          else if (e.k === 'silence') out = m.silence(t - 50, e.still, t);
          else if (e.k === 'gone') out = m.peerGone();
          else if (e.k === 'alone-done') out = m.aloneDone();
          else if (e.k === 'begin') m.beginHandover();
          else if (e.k === 'timeout') out = m.handoverTimedOut('secondary', 2000);
          else if (e.k === 'timeout-alone') out = m.handoverTimedOut('alone', 2000);
          else if (e.k === 'refused') out = m.handoverRefused('no');
          else if (e.k === 'took') out = m.peerTook('said');
          else {
            out = m.stop();
            stopped = true;
          }
          if (e.k === 'down' || e.k === 'gone') down = true;
          if (e.k === 'up') down = false;
          if (handedOver) expect(out).toEqual([]);
          for (const a of out) {
            if (a.do === 'go-alone') {
              expect(down).toBe(true);
              expect(stopped).toBe(false);
              expect(was).toBe('primary');
              goneAlone = true;
            }
            if (a.do === 'rejoin') {
              expect(goneAlone).toBe(true);
              expect(down).toBe(false);
              goneAlone = false;
            }
            if (a.do === 'check-silence') expect(stopped).toBe(false);
            if (a.do === 'excuse' && a.log) excusedLogs++;
            if (a.do === 'handed-over') handedOver = true;
            if (a.do === 'resume-service') expect(was).toBe('handing');
          }
          expect(m.alone).toBe(m.state === 'going-alone' || m.state === 'alone');
          if (m.alone) expect(goneAlone).toBe(true);
          if (stopped) expect(m.state).not.toBe('handing');
        }
        // An excused silence is said once per silence: never more often than the peer went down.
        expect(excusedLogs).toBeLessThanOrEqual(events.filter((e) => e.k === 'down' || e.k === 'gone').length);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('the primary’s start (claiming the service address)', () => {
  const { claimProbes: PROBES, claimWaitMs: CWAIT } = DEFAULT_ROLE_MACHINE;
  const SILENT = 3500;
  /** Drives a start: the probes' waits pass; `claimAt` (probe index → MAC) answers during that probe's wait. */
  function run(leftovers: boolean, claimAt: Map<number, string> = new Map()) {
    const m = new RoleMachine(DEFAULT_ROLE_MACHINE, 'claiming');
    const seen: RoleAction[] = [];
    let t = 1000;
    let out = m.startClaim(leftovers, SILENT, t);
    let probes = 0;
    for (let guard = 0; out.length && guard < 20; guard++) {
      seen.push(...out);
      const a = out[0]!;
      if (a.do === 'claim' || a.do === 'refuse') break;
      if (a.do === 'probe') {
        const by = claimAt.get(probes++);
        if (by) m.vipClaimed(t + 5, by);
      }
      t += a.do === 'stay-silent' ? a.waitMs : (a as { waitMs: number }).waitMs;
      out = m.timer(t);
    }
    return { m, kinds: kinds(seen), last: seen.at(-1) };
  }

  it('nobody answers three probes: the VIP is claimed, the machine is primary', () => {
    const r = run(false);
    expect(r.kinds).toEqual([...Array<string>(PROBES).fill('probe'), 'claim']);
    expect(r.m.state).toBe('primary');
    expect(r.m.probing).toBe(false);
  });

  it('a predecessor left state: silent first for as long as asked, then the probes', () => {
    const r = run(true);
    expect(r.kinds).toEqual(['stay-silent', ...Array<string>(PROBES).fill('probe'), 'claim']);
    const m = new RoleMachine(DEFAULT_ROLE_MACHINE, 'claiming');
    expect(m.startClaim(true, SILENT, 0)).toEqual([{ do: 'stay-silent', waitMs: SILENT }]);
    // An answer during the silence is no answer to a probe (none was sent).
    m.vipClaimed(100, '02:00:00:00:00:09');
    expect(m.timer(SILENT)).toEqual([{ do: 'probe', waitMs: CWAIT }]);
  });

  it('another station answers a probe: refuse, naming it, and send no more probes; never primary', () => {
    for (let i = 0; i < PROBES; i++) {
      const r = run(i % 2 === 0, new Map([[i, '02:00:00:00:00:0b']]));
      expect(r.last).toEqual({ do: 'refuse', claimer: '02:00:00:00:00:0b' });
      expect(r.kinds.filter((k) => k === 'probe')).toHaveLength(i + 1);
      expect(r.m.state).toBe('claiming');
    }
  });

  it('the first station to answer is the one named', () => {
    const m = new RoleMachine(DEFAULT_ROLE_MACHINE, 'claiming');
    m.startClaim(false, SILENT, 0);
    m.vipClaimed(10, '02:00:00:00:00:0a');
    m.vipClaimed(20, '02:00:00:00:00:0b');
    expect(m.timer(CWAIT)).toEqual([{ do: 'refuse', claimer: '02:00:00:00:00:0a' }]);
  });

  it('stopped while claiming: nothing more, no claim; a detector decision meanwhile starts nothing', () => {
    const m = new RoleMachine(DEFAULT_ROLE_MACHINE, 'claiming');
    m.startClaim(false, SILENT, 0);
    expect(m.decision('down', 'secondary', 10)).toEqual([]);
    expect(m.peerGone()).toEqual([]);
    expect(m.silence(0, false, 20)).toEqual([]);
    expect(m.stop()).toEqual([]);
    expect(m.timer(CWAIT)).toEqual([]);
    expect(m.state).toBe('claiming');
    expect(m.startClaim(false, SILENT, 100)).toEqual([]);
  });

  it('only a machine made claiming starts one: a secondary or a running primary does not', () => {
    expect(new RoleMachine().startClaim(false, SILENT, 0)).toEqual([]);
    expect(new RoleMachine(DEFAULT_ROLE_MACHINE, 'primary').startClaim(true, SILENT, 0)).toEqual([]);
  });

  it('random orders of answers, timers and stops: a claim only after every probe went unanswered, a refusal only after an answer to one', () => {
    type Ev = { k: 'claim-arp' | 'timer' | 'stop'; dt: number };
    const ev = fc.record({
      k: fc.constantFrom('claim-arp', 'timer', 'timer', 'timer', 'stop'),
      dt: fc.integer({ min: 0, max: 100 }),
    }) as fc.Arbitrary<Ev>;
    fc.assert(
      fc.property(fc.boolean(), fc.array(ev, { maxLength: 30 }), (leftovers, events) => {
        const m = new RoleMachine(DEFAULT_ROLE_MACHINE, 'claiming');
        let t = 0;
        let silent = leftovers;
        let probes = 0;
        let answered = false;
        let stopped = false;
        let ended = false;
        const take = (out: RoleAction[]) => {
          for (const a of out) {
            expect(ended).toBe(false);
            expect(stopped).toBe(false);
            if (a.do === 'stay-silent') expect(leftovers).toBe(true);
            if (a.do === 'probe') {
              silent = false;
              probes++;
            }
            if (a.do === 'claim') {
              expect(answered).toBe(false);
              expect(probes).toBe(PROBES);
              expect(m.state).toBe('primary');
              ended = true;
            }
            if (a.do === 'refuse') {
              expect(answered).toBe(true);
              ended = true;
            }
          }
        };
        take(m.startClaim(leftovers, SILENT, t));
        for (const e of events) {
          t += e.dt;
          if (e.k === 'claim-arp') {
            m.vipClaimed(t, 'x');
            if (!silent && probes > 0 && !stopped && !ended) answered = true;
          } else if (e.k === 'timer') take(m.timer(t));
          else {
            take(m.stop());
            stopped = true;
          }
        }
        if (m.state === 'primary') expect(answered).toBe(false);
        if (answered && !stopped) expect(m.state).toBe('claiming');
      }),
      { numRuns: 3000 },
    );
  });
});

describe('the steps in `tcpfo status`', () => {
  it('a step that is a node role is not repeated; every other one has its words', () => {
    for (const s of ROLE_STATES) {
      const role = nodeRoleOf(s);
      if ((NODE_ROLES as readonly string[]).includes(s)) expect(stepOf(s)).toBeUndefined();
      else {
        expect(stepOf(s)).toBe(s);
        expect(STEP_WORDS[stepOf(s)!]).toMatch(/\w/);
        expect(role).not.toBe(s);
      }
    }
    expect(nodeRoleOf('handing')).toBe('primary');
    expect(nodeRoleOf('going-alone')).toBe('alone');
    expect(nodeRoleOf('promoting')).toBe('active');
  });
});
