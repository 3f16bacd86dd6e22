/**
 * vsftpd (Debian) on both nodes of the rig, configured identically, serving
 * anonymous FTP in active mode (the data connection is opened by the server
 * from port 20: paper §7.2), and passive mode on one fixed port if asked
 * (both replicas must offer the same port), over IPv4 or IPv6 (EPRT, EPSV);
 * and the Debian `ftp` client (tnftp) in the client host.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { patternChunks } from './servers/pattern.js';
import type { Rig, RigHost } from './rig.js';

/** The paper's FTP file sizes (Figure 6), in KB. */
export const PAPER_FILE_KB = [0.2, 1.3, 18.2, 144.9, 1738.1] as const;

export function fileBytes(kb: number): number {
  return Math.round(kb * 1024);
}

export function fileName(kb: number): string {
  return `f${String(kb).replace('.', '_')}.bin`;
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function patternFile(path: string, bytes: number, seed: number): void {
  const parts: Buffer[] = [];
  for (const c of patternChunks(bytes, seed)) parts.push(c);
  writeFileSync(path, Buffer.concat(parts));
}

function ftpIds(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'ftp'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'ftp'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

export interface FtpServerOptions {
  /** The one port passive mode offers (PASV, EPSV); without it, active mode only. */
  pasvPort?: number;
}

/**
 * Creates the FTP tree for one node (identical content on both) and its
 * vsftpd.conf, listening on `vip` (either family).
 */
export function prepareFtpRoot(
  rig: Rig,
  node: string,
  vip: string,
  kbs: readonly number[] = PAPER_FILE_KB,
  opts: FtpServerOptions = {},
): { root: string; conf: string } {
  const v6 = vip.includes(':');
  const base = join(rig.tmpdir, `ftp-${node}`);
  const root = join(base, 'root');
  const empty = join(base, 'empty');
  for (const d of [root, join(root, 'pub'), join(root, 'incoming'), empty]) mkdirSync(d, { recursive: true });
  chmodSync(rig.tmpdir, 0o755); // vsftpd's unprivileged side must reach its root
  for (const d of [base, root, join(root, 'pub'), empty]) chmodSync(d, 0o755);
  const { uid, gid } = ftpIds();
  chownSync(join(root, 'incoming'), uid, gid);
  chmodSync(join(root, 'incoming'), 0o755);
  // Same bytes and the same modification time on both nodes: the replicas
  // must be deterministic, and `MDTM` (which the ftp client asks after a get)
  // reports the time.
  const mtime = new Date('2026-01-01T00:00:00Z');
  kbs.forEach((kb, i) => {
    const f = join(root, 'pub', fileName(kb));
    patternFile(f, fileBytes(kb), 100 + i);
    utimesSync(f, mtime, mtime);
  });
  const conf = join(base, 'vsftpd.conf');
  writeFileSync(
    conf,
    [
      `listen=${v6 ? 'NO' : 'YES'}`,
      `listen_ipv6=${v6 ? 'YES' : 'NO'}`,
      v6 ? `listen_address6=${vip}` : `listen_address=${vip}`,
      'listen_port=21',
      'background=NO',
      'anonymous_enable=YES',
      'local_enable=NO',
      'no_anon_password=YES',
      `anon_root=${root}`,
      'write_enable=YES',
      'anon_upload_enable=YES',
      'anon_umask=022',
      'connect_from_port_20=YES',
      'ftp_data_port=20',
      'port_enable=YES',
      ...(opts.pasvPort === undefined
        ? ['pasv_enable=NO']
        : ['pasv_enable=YES', `pasv_min_port=${opts.pasvPort}`, `pasv_max_port=${opts.pasvPort}`]),
      'seccomp_sandbox=NO',
      `secure_chroot_dir=${empty}`,
      'xferlog_enable=YES',
      'log_ftp_protocol=YES',
      `vsftpd_log_file=${join(base, 'vsftpd.log')}`,
      'xferlog_std_format=NO',
      'dirmessage_enable=NO',
      'hide_ids=YES',
      'use_localtime=NO',
      'ftpd_banner=tcpfo replicated FTP',
      'max_per_ip=0',
      'max_clients=0',
      '',
    ].join('\n'),
  );
  return { root, conf };
}

export async function startVsftpd(host: RigHost, conf: string): Promise<ChildProcess> {
  const proc = host.spawn(['vsftpd', conf]);
  // Listening on its own address (a second vsftpd of the node, on another address, does not count).
  const addr = /^listen_address6?=(.*)$/m.exec(readFileSync(conf, 'utf8'))?.[1] ?? '';
  const at = addr.includes(':') ? `[${addr}]:21` : `${addr}:21`;
  const r = await host.sh(`for i in $(seq 50); do ss -ltn | grep -qF "${at} " && exit 0; sleep 0.1; done; exit 1`, {
    allowFail: true,
  });
  if (r.code !== 0) throw new Error(`vsftpd did not start on ${host.name}`);
  return proc;
}

/**
 * vsftpd on both nodes for the VIP (the same files) and a plain one on the
 * primary's own address, for the paper's FTP figure; every process goes into
 * `servers` for the caller to stop. Returns the roots to check files against.
 */
export async function startFtpPair(
  rig: Rig,
  vip: string,
  servers: ChildProcess[],
  plainAddr = rig.host('primary').ip,
): Promise<{ tcpfoRoot: string; plainRoot: string }> {
  // One vsftpd per address: an IPv6 one's tree and files apart from the IPv4 one's.
  const tag = vip.includes(':') ? '6' : '';
  const roots: Record<string, string> = {};
  for (const n of ['primary', 'secondary']) {
    const { root, conf } = prepareFtpRoot(rig, `${n}${tag}`, vip);
    roots[n] = root;
    servers.push(await startVsftpd(rig.host(n), conf));
  }
  const p = rig.host('primary');
  const plain = prepareFtpRoot(rig, `plain${tag}`, plainAddr);
  servers.push(await startVsftpd(p, plain.conf));
  return { tcpfoRoot: roots.primary!, plainRoot: plain.root };
}

export interface FtpResult {
  /** The client exited 0. */
  ok: boolean;
  /** "226 Transfer complete" replies: one per finished get or put. */
  completed: number;
  /** KB/s as the ftp client reported each transfer, in order. */
  rates: number[];
  transcript: string;
}

/**
 * Runs the Debian ftp client in `client` with `commands`. tnftp tries
 * passive mode first and falls back to active mode where the server refuses
 * it; `passive off` or `passive on` among `commands` chooses. `ftp -n -v`:
 * no auto-login, verbose (prints the server's replies and the transfer rates).
 */
export async function runFtp(
  client: RigHost,
  vip: string,
  commands: string[],
  timeoutMs = 120_000,
): Promise<FtpResult> {
  const script = ['user anonymous tcpfo', 'binary', ...commands, 'bye', ''].join('\n');
  const r = await client.exec(['ftp', '-n', '-v', vip], { input: script, allowFail: true, timeoutMs });
  const transcript = r.stdout + r.stderr;
  const rates: number[] = [];
  // netkit-ftp: "1331 bytes received in 00:00 (1.55 MiB/s)"
  const unit: Record<string, number> = {
    B: 1 / 1024,
    KiB: 1,
    kB: 1,
    MiB: 1024,
    MB: 1024,
    GiB: 1024 * 1024,
    GB: 1024 * 1024,
  };
  for (const m of transcript.matchAll(/bytes (?:received|sent) in \S+(?: secs)? \(([\d.]+) ([KMG]?i?B)\/s\)/g)) {
    rates.push(Number(m[1]) * (unit[m[2]!] ?? 1));
  }
  const completed = [...transcript.matchAll(/^226 /gm)].length;
  return { ok: r.code === 0, completed, rates, transcript };
}
