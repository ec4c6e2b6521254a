// The README's demo runs, spreads load over every worker, and exits by itself.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('prints the mode, the reasons and a spread over every worker, then exits 0', async () => {
  const demo = path.join(__dirname, '..', 'examples', 'demo.js');
  // Bounds for a slow machine (a sanitizer build beside other test files), not expectations: the
  // whole demo, and each request's idle time (the demo's own 5 s is meant for a machine at rest).
  const { stdout } = await promisify(execFile)(process.execPath, [demo, '--workers', '3', '--requests', '300', '--timeout', '30000'], {
    timeout: 100_000,
    killSignal: 'SIGKILL',
  });
  expect(stdout).toMatch(/^mode: reuseport \(backend: addon\)$/m);
  expect(stdout).toMatch(/why: .*SO_REUSEPORT/);
  expect(stdout).toMatch(/300 requests, each on a new connection, .* 0 failed/);
  const workerLines = stdout.split('\n').filter((line) => /^ {2}worker \d+/.test(line));
  expect(workerLines).toHaveLength(3);
  for (const line of workerLines) expect(Number(line.trim().split(/\s+/)[2])).toBeGreaterThan(0);
  expect(stdout).toMatch(/fairness: Jain's index \d\.\d{3}/);
  expect(stdout).toMatch(/reload under load: 3 of 3 workers replaced in \d+ ms; 300 more requests, 0 failed/);
}, 120_000);
