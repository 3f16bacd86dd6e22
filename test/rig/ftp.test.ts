/**
 * vsftpd from Debian on both nodes, the Debian ftp client in active mode: the
 * paper's file sizes, get and put, byte-exact through the pair. The data
 * connections are server-initiated from port 20 (§7.2).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileName, PAPER_FILE_KB, prepareFtpRoot, runFtp, sha256File, startVsftpd } from '../../rig/ftp.js';
import { finalCounters, TcpfoPair, VIP } from '../../rig/pair.js';
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
});
