// The UDP spread bench (bench/udp.mjs): one small real run, checked for sanity (every flow answered, three configurations,
// every process of the reuseport ones answering, no process left), never for figures.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { alive } from './helpers/pids';

const ROOT = path.resolve(__dirname, '..');
const results = mkdtempSync(path.join(os.tmpdir(), 'bench-udp-'));
afterAll(() => rmSync(results, { recursive: true, force: true }));

describe('bench/udp.mjs', () => {
  it('measures every configuration, saves the figures, and stops every process it started', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [path.join(ROOT, 'bench', 'udp.mjs'), '--flows', '300', '--runs', '1', '--results', results],
      {
        cwd: ROOT,
        timeout: 120_000,
        killSignal: 'SIGTERM',
      },
    );
    expect(stdout).toMatch(/^\| standalone \| [\d.]+% \/ [\d.]+% \/ [\d.]+% \|/m);
    const [file] = readdirSync(results);
    const saved = JSON.parse(readFileSync(path.join(results, file!), 'utf8'));
    expect(saved).toMatchObject({ schema: 'reuseport-bench-udp/1', flows: 300, runs: 1 });
    expect(saved.results.map((r: { id: string }) => r.id)).toEqual(['standalone', 'cluster-reuseport', 'cluster-shared']);
    for (const result of saved.results as { id: string; rounds: number[][]; pids: number[] }[]) {
      expect(result.rounds[0]!.reduce((a, b) => a + b, 0)).toBe(300);
      if (result.id !== 'cluster-shared') expect(result.rounds[0]!.every((count) => count > 0)).toBe(true);
      expect(result.pids.filter(alive)).toEqual([]);
    }
  }, 150_000);
});
