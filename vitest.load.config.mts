// The long runs under load (reloads, crashes), kept out of `npm test`; CI runs them after it.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/load/**/*.load.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 240_000,
    hookTimeout: 30_000,
  },
});
