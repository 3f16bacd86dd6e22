import { defineConfig } from 'vitest/config';

/**
 * Files that load the whole machine (SYN floods at thousands of packets a
 * second, hundreds of connections) or that judge failures on a 100 ms
 * detector run alone, after the rest: one's flood must not be the other's
 * "failure that did not happen".
 */
const SOLO = ['test/rig/hardening.test.ts', 'test/rig/soak.test.ts', 'test/rig/scale.test.ts'];

/** Under emulation (scripts/kernel-vm.sh) everything takes longer: rig/slow.ts. */
const SCALE = Math.max(1, Number(process.env.TCPFO_RIG_TIME_SCALE ?? '1') || 1);

export default defineConfig({
  test: {
    testTimeout: 60_000 * SCALE,
    hookTimeout: 60_000 * SCALE,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: ['test/**/*.test.ts'],
          exclude: SOLO,
          // Rig tests create network namespaces and share the host's netfilter state
          // between files only through their unique prefixes; running files in
          // parallel is safe, but two cores is all we have.
          fileParallelism: true,
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'solo',
          include: SOLO,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
