/**
 * `npm run demo`. Until the bridges land this shows the test rig carrying a
 * real TCP transfer between namespaces, byte-exact; it becomes the failover
 * demo (kill the primary mid-transfer) when the bridges exist.
 */
import { withRig } from '../test/rig/rig.js';

async function main(): Promise<void> {
  const sizeMb = 20;
  await withRig({ mode: 'hub', links: { primary: { rateMbit: 100 } } }, async (rig) => {
    const p = rig.host('primary');
    const c = rig.host('client');
    console.log(`rig ${rig.id}: client ${c.ip}, primary ${p.ip}, secondary ${rig.host('secondary').ip} (hub mode)`);
    const file = `${rig.tmpdir}/data.bin`;
    await p.sh(`head -c ${sizeMb}M /dev/urandom > ${file}`);
    const want = (await p.sh(`sha256sum ${file} | cut -d' ' -f1`)).stdout.trim();
    p.spawn(['socat', '-u', `FILE:${file}`, 'TCP-LISTEN:9000,reuseaddr']);
    await p.sh('for i in $(seq 50); do ss -ltn | grep -q :9000 && exit 0; sleep 0.1; done; exit 1');
    const t0 = Date.now();
    const got = (await c.sh(`socat -u TCP:${p.ip}:9000 - | sha256sum | cut -d' ' -f1`, { timeoutMs: 120_000 })).stdout.trim();
    const secs = (Date.now() - t0) / 1000;
    console.log(`downloaded ${sizeMb} MB at 100 Mbit/s in ${secs.toFixed(2)} s (${((sizeMb * 8) / secs).toFixed(1)} Mbit/s)`);
    console.log(`sha256 sent ${want}\nsha256 got  ${got}\n${want === got ? 'byte-exact' : 'MISMATCH'}`);
    if (want !== got) process.exitCode = 1;
  });
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
