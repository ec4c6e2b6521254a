// The benchmark run for real (bench/run.mjs with quick settings, minutes of wall time), kept out of
// `npm test`: `npm run test:bench` runs it, and CI as its own step. One file at a time: the
// benchmark wants the machine to itself.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/bench/**/*.bench.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    setupFiles: ['test/setup/own-tmp.ts'],
  },
});
