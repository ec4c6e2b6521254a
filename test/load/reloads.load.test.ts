// Reloads and crashes under load, each in a network namespace the test makes: what the client loses.
import { beforeAll, describe, expect, it } from 'vitest';
import { namespaceUnavailable, runScenario } from '../helpers/netns';

interface LoadSummary {
  sent: number;
  ok: number;
  failed: number;
  errors: Record<string, number>;
  p99: number;
  over500ms: number;
}
interface Report {
  migrate: number;
  load: LoadSummary;
  reloadMs?: number[];
  replacedInMs?: number;
  /** Connections the killed worker held open when it died (it wrote the count, then SIGKILLed itself). */
  victimOpenAtKill?: number;
  slow?: { ok: boolean; body: string; connection?: string }[];
  idleClosedByServer?: boolean;
}

let unavailable: string | undefined;
beforeAll(async () => {
  unavailable = await namespaceUnavailable();
  if (unavailable) console.warn(`load tests skipped: ${unavailable}`);
});

function show(name: string, report: Report): void {
  const { load } = report;
  console.log(
    `${name} (tcp_migrate_req=${report.migrate}): ${load.failed} of ${load.sent} failed ${JSON.stringify(load.errors)}, ` +
      `p99 ${load.p99} ms, ${load.over500ms} over 500 ms${report.reloadMs ? `, reloads ${report.reloadMs.join('/')} ms` : ''}` +
      `${report.replacedInMs !== undefined ? `, replaced in ${report.replacedInMs} ms` : ''}` +
      `${report.victimOpenAtKill !== undefined ? `, the dead worker held ${report.victimOpenAtKill}` : ''}`,
  );
}

describe('through the supervisor (reuseport, tcp_migrate_req=0)', () => {
  it('5 rolling reloads of 3 workers lose no connection', async (context) => {
    if (unavailable) return context.skip();
    const report = await runScenario<Report>({ scenario: 'reload', way: 'supervised', workers: 3, reloads: 5 }, 0);
    show('supervised reload', report);
    expect(report.load.sent).toBeGreaterThan(1000);
    expect(report.load.failed).toBe(0);
    expect(report.reloadMs).toHaveLength(5);
  });

  it('a kill -9 at 2000 new connections/s loses at most what the dead worker had accepted, and it is replaced', async (context) => {
    if (unavailable) return context.skip();
    const report = await runScenario<Report>({ scenario: 'crash', way: 'supervised', workers: 3, rate: 2000, durationMs: 4000 }, 0);
    show('supervised kill -9', report);
    // The open loop kept its rate (8000 connections in 4 s), or the run measured an overloaded machine.
    expect(report.load.sent).toBeGreaterThan(7200);
    // Only what the dead worker held can be lost: 0-2 connections on a quiet machine; more when the
    // machine is slow and every connection takes longer (in flight = rate x latency). Nothing queued.
    expect(report.victimOpenAtKill).toBeTypeOf('number');
    expect(report.load.failed).toBeLessThanOrEqual(report.victimOpenAtKill ?? 0);
    expect(report.replacedInMs).toBeGreaterThan(0);
  });

  it('a reload under keep-alive load answers requests in flight, closes idle connections, and does not wait for them', async (context) => {
    if (unavailable) return context.skip();
    const report = await runScenario<Report>({ scenario: 'keepalive', way: 'supervised', workers: 3, reloads: 1 }, 0);
    show('supervised keep-alive reload', report);
    expect(report.load.failed).toBe(0);
    expect(report.slow?.map((r) => r.ok)).toEqual(Array.from({ length: 18 }, () => true));
    expect(report.slow?.some((r) => r.connection === 'close')).toBe(true);
    expect(report.idleClosedByServer).toBe(true);
    // Drains are bounded by 10 s; idle keep-alive clients must not hold the reload that long.
    expect(report.reloadMs?.[0]).toBeLessThan(6_000);
  });

  it('3 reloads under HTTPS keep-alive (undici Pool 8 + https.Agent 8) lose nothing, each well under drainTimeoutMs', async (context) => {
    if (unavailable) return context.skip();
    const report = await runScenario<Report>({ scenario: 'pooled', tls: true, way: 'supervised', workers: 2, reloads: 3, drainTimeoutMs: 5_000 }, 0);
    show('supervised https keep-alive reload', report);
    expect(report.load.sent).toBeGreaterThan(1000);
    expect(report.load.failed).toBe(0);
    expect(report.reloadMs).toHaveLength(3);
    // A drain that waited for idle TLS connections would take drainTimeoutMs per worker.
    for (const ms of report.reloadMs ?? []) expect(ms).toBeLessThan(3_000);
  });
});

describe('for comparison', () => {
  it('round-robin through the supervisor: reloads and a kill -9 complete, and the worker is replaced', async (context) => {
    if (unavailable) return context.skip();
    const reload = await runScenario<Report>({ scenario: 'reload', way: 'supervised', mode: 'round-robin', workers: 3, reloads: 5 }, 0);
    show('round-robin reload', reload);
    const crash = await runScenario<Report>({ scenario: 'crash', way: 'supervised', mode: 'round-robin', workers: 3, rate: 2000, durationMs: 4000 }, 0);
    show('round-robin kill -9', crash);
    expect(reload.reloadMs).toHaveLength(5);
    expect(reload.load.ok).toBeGreaterThan(1000);
    expect(crash.replacedInMs).toBeGreaterThan(0);
    expect(crash.load.ok).toBeGreaterThan(1000);
  });

  it('without the supervisor, closeListener loses nothing where the kernel migrates, and little where it does not', async (context) => {
    if (unavailable) return context.skip();
    const runs: Record<string, Report> = {};
    for (const way of ['plain', 'plain-helper'] as const) {
      for (const migrate of [0, 1] as const) {
        runs[`${way}/${migrate}`] = await runScenario<Report>({ scenario: 'reload', way, workers: 3, reloads: 2 }, migrate);
        show(`${way === 'plain' ? 'server.close()' : 'closeListener()'} reload`, runs[`${way}/${migrate}`] as Report);
      }
    }
    expect(runs['plain-helper/1']?.load.failed).toBe(0);
    expect(runs['plain/1']?.load.failed).toBe(0);
    // Without migration some loss remains (connections mid-handshake when the socket closes): at
    // most 2 per close here, 6 closes. Over many runs it is about a quarter of server.close()'s
    // (docs/reloads.md), but a run of 6 closes is too small to compare the two reliably.
    expect(runs['plain-helper/0']?.load.failed).toBeLessThanOrEqual(12);
  });
});
