// Tests for the benchmark's harness: pure statistics, the wrk parser, the tables, and its command line. The real
// run (minutes) is test/bench/quick-run.bench.test.ts, run by `npm run test:bench`.
import { beforeAll, describe, expect, it } from 'vitest';
import { runBenchCli } from './helpers/bench';

// The bench is ESM (.mjs) and this file may compile as CommonJS: load it with import(), typed from its .d.mts.
let stats: typeof import('../bench/stats.mjs', { with: { 'resolution-mode': 'import' }});
let load: typeof import('../bench/load.mjs', { with: { 'resolution-mode': 'import' }});
let stallClient: typeof import('../bench/stall-client.mjs', { with: { 'resolution-mode': 'import' }});
let stall: typeof import('../bench/stall.mjs', { with: { 'resolution-mode': 'import' }});
let cpuLocal: typeof import('../bench/cpu-local.mjs', { with: { 'resolution-mode': 'import' }});
let sticky: typeof import('../bench/sticky.mjs', { with: { 'resolution-mode': 'import' }});
beforeAll(async () => {
  sticky = await import('../bench/sticky.mjs');
  stats = await import('../bench/stats.mjs');
  load = await import('../bench/load.mjs');
  stallClient = await import('../bench/stall-client.mjs');
  stall = await import('../bench/stall.mjs');
  cpuLocal = await import('../bench/cpu-local.mjs');
});

const STALL_IDS = ['cluster-rr', 'cluster-shared', 'reuseport-plain', 'reuseport-supervised'];

describe('the sticky comparison (bench/sticky.mjs)', () => {
  it('tables the median CPU per request of each configuration and workload, and the kernel-measured moves', () => {
    const m = (config: string, workload: string, cpu: number, round: number) => ({
      round,
      config,
      workload,
      requests: 1000,
      errors: round,
      requestsPerSecond: 200,
      cpuMicrosPerRequest: cpu,
      primaryMicrosPerRequest: cpu / 10,
    });
    const table = sticky.stickyMarkdown({
      measurements: [m('sticky', 'close', 100, 0), m('sticky', 'close', 120, 1), m('sticky', 'close', 90, 2), m('socketio-sticky', 'close', 300, 0)],
      moves: [{ from: 2, to: 3, clients: 1024, seen: 1024, moved: 342, fraction: 342 / 1024, ideal: 1 / 3 }],
    });
    expect(table).toContain("| startCluster({ sticky: 'ip' }) | new connection per request | 100.0 | 100.0, 120.0, 90.0 | 10.0 | 200 | 3 |");
    expect(table).toContain('| node:cluster + @socket.io/sticky | new connection per request | 300.0 | 300.0 | 30.0 | 200 | 0 |');
    // Configurations and workloads not measured are left out.
    expect(table).not.toContain('keep-alive');
    expect(table).toContain('| 2 → 3 | 342 of 1024 (33.4%) | 33.3% |');
  });
});

describe('bench statistics', () => {
  it('median handles odd, even, empty and skips null/NaN', () => {
    expect(stats.median([3, 1, 2])).toBe(2);
    expect(stats.median([4, 1, 3, 2])).toBe(2.5);
    expect(stats.median([])).toBeNull();
    expect(stats.median([null, 5, Number.NaN, undefined])).toBe(5);
    expect(stats.median([1, Infinity, Infinity])).toBe(Infinity);
  });

  it('percentiles use nearest rank', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(stats.percentileSorted(sorted, 50)).toBe(50);
    expect(stats.percentileSorted(sorted, 99)).toBe(99);
    expect(stats.percentileSorted(sorted, 100)).toBe(100);
    expect(stats.percentileSorted(sorted, 0)).toBe(1);
    expect(stats.percentileSorted([], 50)).toBeNull();
    expect(stats.percentiles([5, 1, 4, 2, 3], [50, 99])).toEqual({ p50: 3, p99: 5 });
  });

  it("Jain's index is 1 for equal shares and 1/n when one worker does everything", () => {
    expect(stats.jainIndex([10, 10, 10, 10])).toBe(1);
    expect(stats.jainIndex([40, 0, 0, 0])).toBeCloseTo(0.25, 10);
    expect(stats.jainIndex([3, 1])).toBeCloseTo(16 / 20, 10);
    expect(stats.jainIndex([])).toBeNull();
    expect(stats.jainIndex([0, 0])).toBeNull();
  });

  it('max/min ratio, Infinity for an idle worker', () => {
    expect(stats.maxMinRatio([10, 5])).toBe(2);
    expect(stats.maxMinRatio([10, 0])).toBe(Infinity);
    expect(stats.maxMinRatio([0, 0])).toBeNull();
  });

  it('medianByPosition and CPU per request', () => {
    expect(
      stats.medianByPosition([
        [9, 1],
        [7, 3],
        [8, 2],
      ]),
    ).toEqual([8, 2]);
    expect(stats.cpuMicrosPerRequest(1000, 10)).toBe(100);
    expect(stats.cpuMicrosPerRequest(1000, 0)).toBeNull();
  });
});

describe('wrk output parser', () => {
  it('reads requests, latency distribution and errors', () => {
    const sample = `Running 5s test @ http://127.0.0.1:8080/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  456.78us   1.02s    89.01%
    Req/Sec    20.12k     1.23k   22.34k    70.00%
  Latency Distribution
     50%  850.00us
     75%    1.40ms
     90%    1.80ms
     99%    1.02s
  200234 requests in 5.00s, 24.63MB read
  Socket errors: connect 1, read 12, write 2, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:  40046.80
Transfer/sec:      4.93MB
`;
    const p = load.parseWrkOutput(sample);
    expect(p.requests).toBe(200234);
    expect(p.durationSec).toBe(5);
    expect(p.requestsPerSecond).toBe(40046.8);
    expect(p.latencyMs.p50).toBeCloseTo(0.85, 10);
    expect(p.latencyMs.p90).toBeCloseTo(1.8, 10);
    expect(p.latencyMs.p99).toBeCloseTo(1020, 10);
    expect(p.socketErrors).toBe(15);
    expect(p.timeouts).toBe(3);
    expect(p.non2xx).toBe(5);
  });

  it('reads a clean run without error lines', () => {
    const p = load.parseWrkOutput('  Latency Distribution\n     50%   1.00ms\n     99%   2.00ms\n  10 requests in 1.00s, 1KB read\nRequests/sec:     10.00\n');
    expect(p).toMatchObject({ requests: 10, socketErrors: 0, timeouts: 0, non2xx: 0, latencyMs: { p50: 1, p99: 2 } });
  });

  it('throws on output it does not understand', () => {
    expect(() => load.parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused')).toThrow(/cannot read wrk output/);
  });
});

describe('stall scenario statistics', () => {
  it('summarizes connections: slow ones (failed ones included), percentiles of the successful ones, errors and a timeline', () => {
    const conns = [
      { ok: true, ms: 1, atMs: 0 },
      { ok: true, ms: 2, atMs: 50 },
      { ok: true, ms: 900, atMs: 120 },
      { ok: false, ms: 5000, code: 'ETIMEDOUT', atMs: 130 },
      { ok: false, ms: 0.5, code: 'ECONNREFUSED', atMs: 250 },
    ];
    const s = stallClient.summarizeConnections(conns, { durationMs: 300, bucketMs: 100 });
    expect(s).toMatchObject({ sent: 5, ok: 3, failed: 2, overSlowMs: 2, slowMs: 500, errors: { ETIMEDOUT: 1, ECONNREFUSED: 1 } });
    expect(s.latencyMs).toEqual({ p50: 2, p90: 900, p99: 900, max: 900 });
    expect(s.timeline.buckets.map((b) => [b.started, b.slow, b.failed])).toEqual([
      [2, 0, 0],
      [2, 2, 1],
      [1, 0, 1],
    ]);
  });

  it("takes medians over rounds and keeps every round's count", () => {
    const round = (over500ms: number, p99: number) => ({
      client: { sent: 100, ok: 100 },
      over500ms,
      latencyMs: { p50: 1, p99, max: p99 * 2 },
      failures: 0,
      block: { durationMs: 2000 },
      server: { blockedWorkerShare: 0.3, perWorker: [{ connections: 30 }, { connections: 40 }, { connections: 30 }] },
      cpu: { microsPerConnection: 100, primaryMicrosPerConnection: 1 },
      supervisor: null,
    });
    const s = stall.summarizeStallRounds([round(10, 50), round(30, 900), round(20, 100)]);
    expect(s).toMatchObject({ rounds: 3, over500ms: 20, over500msPercent: 20, latencyP99Ms: 100, latencyMaxMs: 200, failures: 0, stalls: null });
    expect(s.over500msByRound).toEqual([10, 30, 20]);
    expect(s.perWorkerConnections).toEqual([40, 30, 30]);
  });

  it('defaults to 800 connections/s for 5 s, 3 workers, one blocked for 2 s at 1.5 s', () => {
    expect(stall.stallDefaults(false)).toMatchObject({ workers: 3, rate: 800, durationSec: 5, blockAtSec: 1.5, blockSec: 2, timeoutMs: 5000 });
    expect(stall.STALL_CONFIGURATIONS.map((c) => c.id)).toEqual(STALL_IDS);
  });
});

describe('CPU-local comparison, pure parts', () => {
  it.each<[string, 'one-client' | 'client-per-cpu', number, number[], { cpu: number | undefined; connections: number }[]]>([
    ['one unpinned client takes every connection', 'one-client', 50, [0, 1], [{ cpu: undefined, connections: 50 }]],
    [
      'one client per CPU, evenly',
      'client-per-cpu',
      50,
      [0, 1],
      [
        { cpu: 0, connections: 25 },
        { cpu: 1, connections: 25 },
      ],
    ],
    [
      'the remainder goes to the first clients',
      'client-per-cpu',
      7,
      [2, 4, 6],
      [
        { cpu: 2, connections: 3 },
        { cpu: 4, connections: 2 },
        { cpu: 6, connections: 2 },
      ],
    ],
    [
      'never an empty client',
      'client-per-cpu',
      2,
      [0, 1, 2, 3],
      [
        { cpu: 0, connections: 1 },
        { cpu: 1, connections: 1 },
      ],
    ],
  ])('clientPlan: %s', (_name, layout, connections, cpus, expected) => {
    expect(cpuLocal.clientPlan(layout, connections, cpus)).toEqual(expected);
  });

  it('sums the clients, charges the primary and workers per request, and measures the spread', () => {
    const m = cpuLocal.summarizeMeasurement(
      [
        { requestsPerSecond: 1000, errors: { total: 1 }, latencyMs: { p99: 12 }, pinnedTo: [0] },
        { requestsPerSecond: 500, errors: { total: 0 }, latencyMs: { p99: 30 }, pinnedTo: [1] },
      ],
      {
        primary: { cpuMicros: 3000 },
        workers: [
          { requests: 3000, cpuMicros: 150_000 },
          { requests: 1000, cpuMicros: 50_000 },
        ],
      },
    );
    expect(m).toMatchObject({ requestsPerSecond: 1500, errors: 1, p99Ms: 30, requests: 4000, shares: [0.75, 0.25], pinnedTo: [[0], [1]] });
    expect(m.cpuMicrosPerRequest).toBeCloseTo(50.75);
    expect(m.primaryCpuMicrosPerRequest).toBeCloseTo(0.75);
    expect(m.jainIndex).toBeCloseTo(0.8);
    const s = cpuLocal.summarizeCpuLocal([m, { ...m, requestsPerSecond: 900, shares: [0.4, 0.6] }, { ...m, requestsPerSecond: 1200 }]);
    expect(s).toMatchObject({
      rounds: 3,
      requestsPerSecond: 1200,
      errors: 3,
      sharesByRound: [
        [0.75, 0.25],
        [0.6, 0.4],
        [0.75, 0.25],
      ],
    });
    const table = cpuLocal.cpuLocalMarkdown({
      configurations: cpuLocal.CPU_LOCAL_CONFIGURATIONS,
      layouts: cpuLocal.CLIENT_LAYOUTS,
      summary: { 'reuseport-cpu-local|client-per-cpu|close': s },
    });
    expect(table).toContain('| close | one client pinned to each CPU | CPU-local | 1200 | 51 (1) | 0.800 | 75%, 60%, 75% | 30.0 | 3 |');
    expect(table).toContain('| keepalive | one client, unpinned | hash steering | failed |');
  });
});

describe('bench command line', () => {
  it('refuses --stall with --skip-stall, and lists the stall options in --help', async () => {
    const both = await runBenchCli(['--stall', '--skip-stall'], 30_000);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/exclude each other/);
    const help = await runBenchCli(['--help'], 30_000);
    expect(help.code).toBe(0);
    for (const flag of ['--stall', '--skip-stall', '--stall-rate', '--block-for', '--cpu-local']) expect(help.stdout).toContain(flag);
  });
});
