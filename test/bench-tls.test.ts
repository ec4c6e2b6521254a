// The TLS session-resumption bench (bench/tls.mjs): one quick real run, checked for sanity (both configurations, shared
// keys resume, a key per worker resumes less, figures above zero, no process left), never for speed; and the section it
// writes into a Markdown file, from the saved JSON.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BenchRun, runBenchCli } from './helpers/bench';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const VERSIONS = ['TLSv1.3', 'TLSv1.2'];

describe('TLS session-resumption bench, quick run (2 workers, 1 s per configuration and TLS version)', () => {
  let resultsDir: string;
  let jsonFile: string | undefined;
  let run: BenchRun;
  // biome-ignore lint/suspicious/noExplicitAny: the JSON is checked field by field below.
  let result: any;

  beforeAll(async () => {
    resultsDir = mkdtempSync(path.join(os.tmpdir(), 'reuseport-bench-tls-'));
    run = await runBenchCli(['--quick', '--duration-ms', '1000', '--workers', '2', '--results', resultsDir], 120_000, 'bench/tls.mjs');
    const name = readdirSync(resultsDir).find((f) => f.endsWith('-tls.json'));
    if (name) {
      jsonFile = path.join(resultsDir, name);
      result = JSON.parse(readFileSync(jsonFile, 'utf8'));
    }
  }, 130_000);

  afterAll(() => {
    if (resultsDir) rmSync(resultsDir, { recursive: true, force: true });
  });

  it('exits 0, prints a row per configuration and TLS version, and saves the JSON', () => {
    expect(run.code, run.stderr).toBe(0);
    expect(jsonFile).toBeDefined();
    for (const version of ['1.3', '1.2']) {
      expect(run.stdout).toMatch(new RegExp(`^${version.replace('.', '\\.')}\\s+true \\(shared key\\)\\s+[\\d,]+\\s+[\\d.]+%`, 'm'));
      expect(run.stdout).toMatch(new RegExp(`^${version.replace('.', '\\.')}\\s+false \\(key per worker\\)\\s+[\\d,]+\\s+[\\d.]+%`, 'm'));
    }
    expect(result.schema).toBe('reuseport-bench-tls/1');
    expect(result.settings).toMatchObject({ workers: 2, durationMs: 1000, concurrency: 8, runs: 1, versions: VERSIONS, quick: true });
    expect(result.failures).toEqual([]);
    expect(result.machine.clkTck).toBeGreaterThan(0);
  });

  it('shared keys resume over 95% of reconnections, a key per worker fewer; reconnections/s and CPU per reconnection above 0', () => {
    expect(result.summary).toHaveLength(4);
    for (const version of VERSIONS) {
      const shared = result.summary.find((s: { configuration: string; version: string }) => s.configuration === 'shared' && s.version === version);
      const own = result.summary.find((s: { configuration: string; version: string }) => s.configuration === 'per-worker' && s.version === version);
      for (const s of [shared, own]) {
        expect(s.runs, `${s.configuration} ${version}`).toBe(1);
        expect(s.reconnectionsPerSecond).toBeGreaterThan(0);
        expect(s.cpuMicrosPerReconnection).toBeGreaterThan(0);
        expect(s.supervisorCpuMicrosPerReconnection).toBeGreaterThanOrEqual(0);
        expect(s.supervisorCpuMicrosPerReconnection).toBeLessThan(s.cpuMicrosPerReconnection);
        // A timeout or two on a loaded machine, not more.
        expect(s.errors).toBeLessThanOrEqual(Math.max(2, s.reconnections * 0.01));
      }
      expect(shared.resumedShare, version).toBeGreaterThan(0.95);
      expect(own.resumedShare, version).toBeLessThan(shared.resumedShare);
      // 2 workers, a key each: about half land on the worker that sealed the ticket.
      expect(own.resumedShare, version).toBeLessThan(0.9);
    }
  });

  it("measured what it says: supervised reuseport workers, the servers' own CPU, a new connection per reconnection", () => {
    expect(result.records).toHaveLength(4);
    for (const r of result.records) {
      expect(r.plan.mode).toBe('reuseport');
      expect(r.workerPids).toHaveLength(2);
      // The supervisor and both workers, each from /proc/<pid>/stat.
      expect(r.cpu.ticks.map((t: { pid: number }) => t.pid)).toEqual([r.supervisorPid, ...r.workerPids]);
      expect(r.cpu.serverMicros).toBeGreaterThan(0);
      expect(r.reconnections).toBe(r.client.ok);
      expect(r.client.resumed).toBeLessThanOrEqual(r.client.ok);
      // The client is a process of its own.
      expect([r.supervisorPid, ...r.workerPids]).not.toContain(r.clientPid);
      expect(r.warmup.lanesWithSession).toBe(8);
    }
  });

  it('leaves no server or client process running', () => {
    const pids: number[] = result.records.flatMap((r: { supervisorPid: number; workerPids: number[]; clientPid: number }) => [
      r.supervisorPid,
      ...r.workerPids,
      r.clientPid,
    ]);
    expect(pids.length).toBe(16);
    expect(pids.filter(isAlive)).toEqual([]);
  });

  it('--out with --from-json appends its section at the end of a Markdown file once, then replaces it, leaving the rest alone', async () => {
    const md = path.join(resultsDir, 'benchmarks.md');
    const before = '# Benchmarks\n\nIntro.\n\n## Method notes\n\n- a note\n';
    writeFileSync(md, before);
    const first = await runBenchCli(['--from-json', jsonFile as string, '--out', md], 30_000, 'bench/tls.mjs');
    expect(first.code, first.stderr).toBe(0);
    const once = readFileSync(md, 'utf8');
    expect(once.startsWith(before)).toBe(true);
    expect(once.match(/^## TLS session resumption$/gm)).toHaveLength(1);
    expect(once).toContain('| 1.3 | true (shared key) |');
    expect(once).toContain('| 1.2 | false (key per worker) |');
    expect(once).toContain(`Node ${result.machine.node}`);
    const second = await runBenchCli(['--from-json', jsonFile as string, '--out', md], 30_000, 'bench/tls.mjs');
    expect(second.code, second.stderr).toBe(0);
    expect(readFileSync(md, 'utf8')).toBe(once);
  });

  it('refuses bad options with exit code 2 and the usage', async () => {
    const bad = await runBenchCli(['--tls', '1.1'], 30_000, 'bench/tls.mjs');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--tls must be 1\.3, 1\.2 or both/);
    expect(bad.stderr).toContain('--duration-ms');
  });
});
