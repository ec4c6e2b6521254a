// Stalls under load, each in a network namespace the test makes: no client waits behind a busy or
// dead worker when the supervisor lends its slot, while every worker keeps its own socket.
import { beforeAll, describe, expect, it } from 'vitest';
import { namespaceUnavailable, runScenario } from '../helpers/netns';

interface Report {
  load: { sent: number; failed: number; errors: Record<string, number>; p99: number; max: number; over500ms: number };
  events?: { name: string; slot?: number; pid?: number; signal?: string | null; expected?: boolean }[];
  stats?: { slot: number; pid: number; accepted: number; stalls: number; lentTo?: number; cpu?: number }[];
  cpus?: number[];
  fdsBefore?: Record<string, number>;
  fdsAfter?: Record<string, number>;
  replacedInMs?: number;
  /** Connections the killed worker held open when it died (it wrote the count, then SIGKILLed itself). */
  victimOpenAtKill?: number;
}

let unavailable: string | undefined;
beforeAll(async () => {
  unavailable = await namespaceUnavailable();
  if (unavailable) console.warn(`stall tests skipped: ${unavailable}`);
});

const load = { rate: 800, durationMs: 5000 };

function show(name: string, { load: l, victimOpenAtKill }: Report): void {
  const held = victimOpenAtKill === undefined ? '' : `, the dead worker held ${victimOpenAtKill}`;
  console.log(`${name}: ${l.failed} of ${l.sent} failed ${JSON.stringify(l.errors)}, ${l.over500ms} over 500 ms, p99 ${l.p99} ms, max ${l.max} ms${held}`);
}

// The goal of the stall issue: the load kept its rate, none failed, at most 5 over 500 ms, p99 <= 100 ms,
// one stall seen, and at the end every slot served by its own worker.
// A stall is noticed (and counted) when connections wait for the stalled worker: the supervisor asks
// a worker whether it answers only when its slot's accept queue is not empty. `mayGoUnseen`: the
// stalled slot may have been sent no connection at all (CPU-local steering), and then none waited.
function expectStallServed(report: Report, { mayGoUnseen = false } = {}): void {
  expect(report.load.sent).toBeGreaterThan(3600);
  expect(report.load.failed).toBe(0);
  expect(report.load.over500ms).toBeLessThanOrEqual(5);
  expect(report.load.p99).toBeLessThanOrEqual(100);
  const stalls = report.events?.filter((e) => e.name === 'stall') ?? [];
  if (mayGoUnseen) expect(stalls.length).toBeLessThanOrEqual(1);
  else expect(stalls).toHaveLength(1);
  expect(report.stats?.map((s) => s.lentTo)).toEqual([undefined, undefined, undefined]);
}

describe('one of 3 workers blocked for 2 s under 800 new connections/s', () => {
  it('through the supervisor: none fails, at most 5 take over 500 ms, p99 <= 100 ms', async (context) => {
    if (unavailable) return context.skip();
    const report = await runScenario<Report>({ scenario: 'stall', way: 'supervised', ...load }, 0);
    show('supervised reuseport', report);
    const plain = await runScenario<Report>({ scenario: 'stall', way: 'plain', ...load }, 0);
    show('plain reuseport, for comparison', plain);
    expectStallServed(report);
  });
});

describe('the same stall in CPU-local mode', () => {
  it("none fails, at most 5 take over 500 ms, p99 <= 100 ms, though the client's CPU may feed only the blocked worker", async (context) => {
    if (unavailable) return context.skip();
    const report = await runScenario<Report>({ scenario: 'stall', way: 'supervised', cpuLocal: true, ...load }, 0);
    show('supervised reuseport, CPU-local', report);
    expectStallServed(report, { mayGoUnseen: true });
    // Each slot on its CPU (3 workers on this machine's CPUs, wrapping around).
    const cpus = report.cpus ?? [];
    expect(cpus.length).toBeGreaterThan(0);
    expect(report.stats?.map((s) => s.cpu)).toEqual([0, 1, 2].map((slot) => cpus[slot % cpus.length]));
  });
});

describe('a worker killed with SIGKILL under 800 new connections/s', () => {
  it('at most 2 fail, at most 5 take over 500 ms, p99 <= 100 ms, and it is replaced', async (context) => {
    if (unavailable) return context.skip();
    const report = await runScenario<Report>({ scenario: 'crash', way: 'supervised', ...load, killAtMs: 1500 }, 0);
    show('supervised kill -9', report);
    // Only what the dead worker held can be lost (it says how many as it dies), and at most 2.
    expect(report.victimOpenAtKill).toBeTypeOf('number');
    expect(report.load.failed).toBeLessThanOrEqual(Math.min(2, report.victimOpenAtKill ?? 0));
    expect(report.load.over500ms).toBeLessThanOrEqual(5);
    expect(report.load.p99).toBeLessThanOrEqual(100);
    expect(report.replacedInMs).toBeGreaterThan(0);
  });
});

describe('repeated and endless stalls', () => {
  it('a worker that stalls and recovers 10 times loses nothing, leaks no fd, and ends with every slot its own', async (context) => {
    if (unavailable) return context.skip();
    const report = await runScenario<Report>(
      { scenario: 'stall', way: 'supervised', rate: 800, durationMs: 7000, blockAtMs: 500, blocks: 10, blockMs: 250, blockEveryMs: 300 },
      0,
    );
    show('10 stalls', report);
    expect(report.load.failed).toBe(0);
    const stalls = report.events?.filter((e) => e.name === 'stall') ?? [];
    expect(stalls.length).toBeGreaterThanOrEqual(10);
    expect(report.stats?.map((s) => s.lentTo)).toEqual([undefined, undefined, undefined]);
    expect(report.fdsAfter).toEqual(report.fdsBefore);
  });

  it('a worker that never recovers is replaced after the bound, and its slot goes to the new worker', async (context) => {
    if (unavailable) return context.skip();
    const report = await runScenario<Report>(
      { scenario: 'stall', way: 'supervised', rate: 400, durationMs: 4000, blockAtMs: 500, blockMs: 20_000, stallReplaceMs: 1000 },
      0,
    );
    show('endless stall', report);
    // Killing the stuck worker loses what it had already accepted, as any kill -9 does.
    expect(report.load.failed).toBeLessThanOrEqual(2);
    const replaced = report.events?.find((e) => e.name === 'stall-replace');
    expect(replaced).toMatchObject({ slot: 0 });
    expect(report.events?.find((e) => e.name === 'exit')).toMatchObject({ slot: 0, pid: replaced?.pid, signal: 'SIGKILL', expected: false });
    const slot0 = report.stats?.[0];
    expect(slot0?.pid).not.toBe(replaced?.pid);
    expect(slot0?.lentTo).toBeUndefined();
  });
});
