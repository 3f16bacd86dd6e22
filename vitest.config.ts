import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Rig tests create network namespaces and share the host's netfilter state
    // between files only through their unique prefixes; running files in
    // parallel is safe, but two cores is all we have.
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
