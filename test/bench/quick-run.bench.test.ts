// The benchmark (bench/run.mjs) run for real, quick settings, checked for shape (never for speed): every
// configuration and workload measured, the figures and charts saved, the stall scenario, no process left.
// Minutes of wall time, so not in `npm test`: `npm run test:bench` runs it (CI: its own step). The
// harness's pure parts (statistics, the wrk parser, the tables) and its command line are in test/bench.test.ts.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BenchRun, isAlive, runBenchCli } from '../helpers/bench';

const CONFIG_IDS = ['single', 'cluster-rr', 'cluster-shared', 'reuseport-addon', 'reuseport-supervised', 'reuseport-node'];
const WORKLOADS = ['keepalive', 'close'];
const STALL_IDS = ['cluster-rr', 'cluster-shared', 'reuseport-plain', 'reuseport-supervised'];

describe('quick CPU-local comparison', () => {
  let outDir: string;
  // biome-ignore lint/suspicious/noExplicitAny: the JSON is checked field by field below.
  let result: any;
  let run: BenchRun;

  beforeAll(async () => {
    outDir = mkdtempSync(path.join(os.tmpdir(), 'reuseport-bench-cpu-local-'));
    run = await runBenchCli(['--cpu-local', '--rounds', '1', '--duration', '0.5', '--warmup', '0', '--connections', '8', '--out', outDir], 120_000);
    const json = readdirSync(outDir).find((f) => f.endsWith('-cpu-local.json'));
    if (json) result = JSON.parse(readFileSync(path.join(outDir, json), 'utf8'));
  }, 150_000);

  afterAll(() => {
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  it('measures both steerings under both client layouts and workloads, with pinned clients really pinned', () => {
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('| close | one client pinned to each CPU | CPU-local |');
    expect(result.failures).toEqual([]);
    expect(Object.values(result.summary).every((s) => s !== null)).toBe(true);
    expect(result.records).toHaveLength(12);
    for (const record of result.records) {
      expect(record.requests).toBeGreaterThan(0);
      expect(record.shares).toHaveLength(result.cpus.length);
      if (record.layout === 'client-per-cpu') expect(record.pinnedTo).toEqual(result.cpus.map((cpu: number) => [cpu]));
      else expect(record.pinnedTo).toEqual([null]);
    }
    expect(readdirSync(outDir).filter((f) => f.endsWith('-cpu-local.md'))).toHaveLength(1);
  });
});

describe('quick bench run', () => {
  let outDir: string;
  // biome-ignore lint/suspicious/noExplicitAny: the JSON is checked field by field below.
  let result: any;
  let files: string[];
  let run: BenchRun;

  beforeAll(async () => {
    outDir = mkdtempSync(path.join(os.tmpdir(), 'reuseport-bench-'));
    run = await runBenchCli(['--quick', '--workers', '2', '--out', outDir], 200_000);
    files = readdirSync(outDir);
    const json = files.find((f) => f.endsWith('.json'));
    if (json) result = JSON.parse(readFileSync(path.join(outDir, json), 'utf8'));
  }, 230_000);

  afterAll(() => {
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  it('exits 0, prints the table and writes JSON, Markdown and SVG', () => {
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('new connection per request');
    expect(run.stdout).toMatch(/trust CPU\s+per request and fairness/);
    expect(files.filter((f) => f.endsWith('.json'))).toHaveLength(1);
    const md = files.find((f) => f.endsWith('.md'));
    const svg = files.find((f) => f.endsWith('.svg') && !f.endsWith('-stall.svg'));
    expect(md).toBeDefined();
    expect(svg).toBeDefined();
    const mdText = readFileSync(path.join(outDir, md as string), 'utf8');
    expect(mdText).toContain('## keep-alive');
    expect(mdText).toContain('## new connection per request');
    expect(mdText).toContain(svg as string);
    const svgText = readFileSync(path.join(outDir, svg as string), 'utf8');
    expect(svgText.startsWith('<svg')).toBe(true);
    expect(svgText).toContain('CPU microseconds per request');
    // The stall scenario follows the throughput part: its own table, section and chart.
    expect(run.stdout).toContain('One worker blocked for 1 s');
    expect(mdText).toContain('## One worker blocked for 1 s');
    const stallSvg = files.find((f) => f.endsWith('-stall.svg'));
    expect(stallSvg).toBeDefined();
    expect(mdText).toContain(stallSvg as string);
    const stallSvgText = readFileSync(path.join(outDir, stallSvg as string), 'utf8');
    expect(stallSvgText.startsWith('<svg')).toBe(true);
    expect(stallSvgText).toContain('connections over 500 ms');
  });

  it('records the machine and settings', () => {
    expect(result.machine.cores).toBeGreaterThan(0);
    expect(result.machine.kernel).toBe(os.release());
    expect(result.machine.benchNode).toBe(process.version);
    expect(result.settings).toMatchObject({ workers: 2, rounds: 1, durationSec: 1 });
    expect(result.workloads).toEqual(WORKLOADS);
  });

  it('has every configuration and workload with the reported fields', () => {
    expect(result.configurations.map((c: { id: string }) => c.id)).toEqual(CONFIG_IDS);
    for (const cfg of result.configurations) {
      const workers = cfg.id === 'single' ? 1 : 2;
      expect(cfg.workers).toBe(workers);
      expect(typeof cfg.available).toBe('boolean');
      for (const workload of WORKLOADS) {
        const s = result.summary[cfg.id][workload];
        if (!cfg.available) {
          // Only Node's own reusePort may be missing, and then it says why.
          expect(cfg.id).toBe('reuseport-node');
          expect(cfg.reason).toMatch(/reusePort/);
          expect(s).toBeNull();
          continue;
        }
        expect(s, `${cfg.id} ${workload}`).not.toBeNull();
        expect(s.rounds).toBe(1);
        expect(s.requestsPerSecond).toBeGreaterThan(0);
        expect(s.serverRequests).toBeGreaterThan(0);
        expect(s.latencyP50Ms).toBeGreaterThanOrEqual(0);
        expect(s.latencyP99Ms).toBeGreaterThanOrEqual(s.latencyP50Ms);
        expect(s.errors).toBeGreaterThanOrEqual(0);
        expect(s.cpuMicrosPerRequest).toBeGreaterThan(0);
        expect(s.primaryCpuMicrosPerRequest).toBeGreaterThanOrEqual(0);
        expect(s.jainIndex).toBeGreaterThan(0);
        expect(s.jainIndex).toBeLessThanOrEqual(1 + 1e-9);
        expect(s.maxMinRatio === 'Infinity' || s.maxMinRatio >= 1).toBe(true);
        expect(s.perWorkerRequests).toHaveLength(workers);

        const records = result.rounds.filter((r: { configuration: string; workload: string }) => r.configuration === cfg.id && r.workload === workload);
        expect(records).toHaveLength(1);
        const rec = records[0];
        expect(rec.server.perWorker).toHaveLength(workers);
        for (const w of rec.server.perWorker) {
          expect(Number.isInteger(w.pid)).toBe(true);
          expect(Number.isInteger(w.requests)).toBe(true);
          expect(w.cpuMicros).toBeGreaterThanOrEqual(0);
        }
        expect(rec.server.requests).toBe(rec.server.perWorker.reduce((a: number, w: { requests: number }) => a + w.requests, 0));
        expect(rec.errors).toMatchObject({
          non2xx: expect.any(Number),
          socketErrors: expect.any(Number),
          timeouts: expect.any(Number),
          total: expect.any(Number),
        });
        expect(rec.cpu.totalMicros).toBeGreaterThan(0);
      }
    }
  });

  it('opens one connection per request in the close workload, and reuses connections in keep-alive (counted by the servers)', () => {
    for (const cfg of result.configurations.filter((c: { available: boolean }) => c.available)) {
      const close = result.summary[cfg.id].close;
      const keep = result.summary[cfg.id].keepalive;
      // Connections opened at the very end may not have carried a request yet, hence a range.
      expect(close.requestsPerConnection).toBeGreaterThan(0.8);
      expect(close.requestsPerConnection).toBeLessThanOrEqual(1.0001);
      expect(keep.requestsPerConnection).toBeGreaterThan(2);
    }
  });

  it('has the stall section with every configuration and the reported fields', () => {
    const st = result.stall;
    expect(st).toBeTruthy();
    expect(st.settings).toMatchObject({ workers: 3, rounds: 1, rate: 400, durationSec: 2.5, blockAtSec: 0.5, blockSec: 1, slowMs: 500 });
    expect(st.configurations.map((c: { id: string }) => c.id)).toEqual(STALL_IDS);
    for (const id of STALL_IDS) {
      const s = st.summary[id];
      expect(s, id).not.toBeNull();
      expect(s.rounds).toBe(1);
      expect(s.sent).toBeGreaterThan(0);
      expect(Number.isInteger(s.over500ms)).toBe(true);
      expect(s.over500ms).toBeGreaterThanOrEqual(0);
      expect(s.over500ms).toBeLessThanOrEqual(s.sent);
      expect(s.latencyP50Ms).toBeGreaterThan(0);
      expect(s.latencyP99Ms).toBeGreaterThanOrEqual(s.latencyP50Ms);
      expect(s.latencyMaxMs).toBeGreaterThanOrEqual(s.latencyP99Ms);
      expect(Number.isInteger(s.failures)).toBe(true);
      expect(s.cpuMicrosPerConnection).toBeGreaterThan(0);
      expect(s.perWorkerConnections).toHaveLength(3);

      const records = st.rounds.filter((r: { configuration: string }) => r.configuration === id);
      expect(records).toHaveLength(1);
      const rec = records[0];
      // The block really happened, on one of this configuration's workers, while the client was sending.
      expect(rec.workerPids).toContain(rec.blockedPid);
      expect(rec.block.durationMs).toBeGreaterThanOrEqual(1000);
      expect(rec.block.startedAtMs).toBeGreaterThan(0);
      expect(rec.block.startedAtMs).toBeLessThan(st.settings.durationSec * 1000);
      expect(rec.client.sent).toBe(rec.client.ok + rec.client.failed);
      expect(rec.client.errors).toBeTypeOf('object');
      // The client is its own process, never one of the servers.
      expect(Number.isInteger(rec.clientPid)).toBe(true);
      expect([rec.primaryPid, ...rec.workerPids]).not.toContain(rec.clientPid);
      expect(rec.server.perWorker.filter((w: { blocked: boolean }) => w.blocked)).toHaveLength(1);
      expect(rec.listen.map((l: { mode: string }) => l.mode)).toEqual(id.startsWith('reuseport') ? ['reuseport', 'reuseport', 'reuseport'] : [id, id, id]);
      if (id === 'reuseport-supervised') expect(rec.supervisor.stats).toHaveLength(3);
      else expect(rec.supervisor).toBeNull();
    }
  });

  it('leaves no server process running', () => {
    const pids: number[] = [
      ...result.rounds.flatMap((r: { primaryPid: number; workerPids: number[] }) => [r.primaryPid, ...r.workerPids]),
      ...result.stall.rounds.flatMap((r: { primaryPid: number; workerPids: number[]; clientPid: number }) => [r.primaryPid, ...r.workerPids, r.clientPid]),
    ];
    expect(pids.length).toBeGreaterThan(0);
    expect(pids.filter(isAlive)).toEqual([]);
  });
});
