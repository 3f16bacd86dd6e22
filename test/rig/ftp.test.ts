/**
 * vsftpd from Debian on both nodes, the Debian ftp client in active mode: the
 * paper's file sizes, get and put, byte-exact through the pair. The data
 * connections are server-initiated from port 20 (§7.2). Then the same over
 * IPv6, in active mode (EPRT) and passive mode (EPSV, client-initiated data
 * connections to a failover port).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileName, PAPER_FILE_KB, prepareFtpRoot, runFtp, sha256File, startVsftpd } from '../../rig/ftp.js';
import { finalCounters, TcpfoPair, VIP, VIP6 } from '../../rig/pair.js';
import { withRig } from '../../rig/rig.js';
import { slow } from '../../rig/slow.js';

describe('FTP through the pair (vsftpd, active mode)', () => {
  it(
    'gets and puts 0.2 … 1738.1 KB files byte-exact; both replicas store the uploads',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pair = await TcpfoPair.start(rig, { ports: [20, 21], demoServer: false, heartbeatTimeoutMs: 500 });
        try {
          const roots: Record<string, string> = {};
          for (const n of ['primary', 'secondary']) {
            const { root, conf } = prepareFtpRoot(rig, n, VIP);
            roots[n] = root;
            await startVsftpd(rig.host(n), conf);
          }
          const local = join(rig.tmpdir, 'download');
          const cmds = PAPER_FILE_KB.flatMap((kb) => [
            `get pub/${fileName(kb)} ${local}-${fileName(kb)}`,
            `put ${roots.primary}/pub/${fileName(kb)} incoming/up-${fileName(kb)}`,
          ]);
          const r = await runFtp(rig.host('client'), VIP, cmds);
          expect(r.ok, r.transcript).toBe(true);
          expect(r.completed, r.transcript).toBe(2 * PAPER_FILE_KB.length);
          expect(r.rates).toHaveLength(2 * PAPER_FILE_KB.length);
          for (const kb of PAPER_FILE_KB) {
            const want = sha256File(join(roots.primary!, 'pub', fileName(kb)));
            expect(sha256File(`${local}-${fileName(kb)}`), `get ${kb} KB`).toBe(want);
            expect(
              sha256File(join(roots.primary!, 'incoming', `up-${fileName(kb)}`)),
              `put ${kb} KB on the primary`,
            ).toBe(want);
            expect(
              sha256File(join(roots.secondary!, 'incoming', `up-${fileName(kb)}`)),
              `put ${kb} KB on the secondary`,
            ).toBe(want);
          }
        } finally {
          await pair.stop();
        }
        const p = finalCounters(pair.primary!.log) as { merger: { handshakes: number; divergences: number } };
        // The control connection and one data connection per transfer, all merged.
        expect(p.merger.handshakes).toBe(1 + 2 * PAPER_FILE_KB.length);
        const vlogs = ['primary', 'secondary']
          .map((n) => `--- vsftpd ${n} ---\n${readFileSync(join(rig.tmpdir, `ftp-${n}`, 'vsftpd.log'), 'utf8')}`)
          .join('\n');
        expect(p.merger.divergences, pair.logs() + vlogs).toBe(0);
      });
    },
    slow(180_000),
  );

  it(
    'over IPv6: gets and puts every size in active mode (EPRT) and passive mode (EPSV), byte-exact on both replicas',
    async () => {
      await withRig({ mode: 'hub' }, async (rig) => {
        const pasvPort = 30000;
        const pair = await TcpfoPair.start(rig, {
          ports: [20, 21, pasvPort],
          demoServer: false,
          heartbeatTimeoutMs: 500,
          ipv6: true,
        });
        const roots: Record<string, string> = {};
        try {
          for (const n of ['primary', 'secondary']) {
            const { root, conf } = prepareFtpRoot(rig, n, VIP6, PAPER_FILE_KB, { pasvPort });
            roots[n] = root;
            await startVsftpd(rig.host(n), conf);
          }
          const local = join(rig.tmpdir, 'download');
          const cmds = ['off', 'on'].flatMap((mode) => [
            `passive ${mode}`,
            ...PAPER_FILE_KB.flatMap((kb) => [
              `get pub/${fileName(kb)} ${local}-${mode}-${fileName(kb)}`,
              `put ${roots.primary}/pub/${fileName(kb)} incoming/up-${mode}-${fileName(kb)}`,
            ]),
          ]);
          const r = await runFtp(rig.host('client'), VIP6, cmds);
          expect(r.ok, r.transcript).toBe(true);
          expect(r.completed, r.transcript).toBe(4 * PAPER_FILE_KB.length);
          // Each mode's data connections were opened the IPv6 way.
          expect([...r.transcript.matchAll(/^200 EPRT /gm)], r.transcript).toHaveLength(2 * PAPER_FILE_KB.length);
          expect(
            [
              ...r.transcript.matchAll(
                new RegExp(`^229 Entering Extended Passive Mode \\(\\|\\|\\|${pasvPort}\\|\\)`, 'gm'),
              ),
            ],
            r.transcript,
          ).toHaveLength(2 * PAPER_FILE_KB.length);
          for (const mode of ['off', 'on'])
            for (const kb of PAPER_FILE_KB) {
              const want = sha256File(join(roots.primary!, 'pub', fileName(kb)));
              expect(sha256File(`${local}-${mode}-${fileName(kb)}`), `get ${kb} KB, passive ${mode}`).toBe(want);
              for (const n of ['primary', 'secondary'])
                expect(
                  sha256File(join(roots[n]!, 'incoming', `up-${mode}-${fileName(kb)}`)),
                  `put ${kb} KB on the ${n}, passive ${mode}`,
                ).toBe(want);
            }
        } finally {
          await pair.stop();
        }
        const p = finalCounters(pair.primary!.log) as { merger: { handshakes: number; divergences: number } };
        expect(p.merger.handshakes).toBe(1 + 4 * PAPER_FILE_KB.length);
        expect(p.merger.divergences, pair.logs()).toBe(0);
      });
    },
    slow(180_000),
  );
});
