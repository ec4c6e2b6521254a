// Deploys by a process manager under load (test/scenarios/managers.js), each in a network namespace the
// test makes, with tcp_migrate_req=0: `reuseport start` reloading (SIGHUP) and upgrading itself
// (SIGUSR2), and real PM2 (the devDependency, its own PM2_HOME, its daemon killed by pid) reloading an
// app that listens with listenReusePort.
import { beforeAll, describe, expect, it } from 'vitest';
import { namespaceUnavailable, runScenario } from '../helpers/netns';

interface Report {
  deployMs: number[];
  load: { sent: number; failed: number; errors: Record<string, number>; p99: number; over500ms: number };
  finalPid?: number;
  pidFileNamed?: number | null;
  pidFileAfterExit?: boolean;
}

let unavailable: string | undefined;
beforeAll(async () => {
  unavailable = await namespaceUnavailable();
  if (unavailable) console.warn(`load tests skipped: ${unavailable}`);
});

function show(name: string, { load, deployMs }: Report): void {
  console.log(`${name}: ${load.failed} of ${load.sent} failed ${JSON.stringify(load.errors)}, ${load.over500ms} over 500 ms, p99 ${load.p99} ms, deploys ${deployMs.join('/')} ms`);
}

describe('reuseport start at 1000 new connections/s (tcp_migrate_req=0)', () => {
  it('3 reloads (SIGHUP): none fails, at most 5 over 500 ms; SIGTERM ends it and removes the pid file', async (context) => {
    if (unavailable) return context.skip();
    const report = await runScenario<Report>({ manager: 'runner', action: 'reload', deploys: 3, rate: 1000 }, 0, 120_000, 'managers.js');
    show('reuseport start, SIGHUP x3', report);
    expect(report.load.sent).toBeGreaterThan(9000);
    expect(report.load.failed).toBe(0);
    expect(report.load.over500ms).toBeLessThanOrEqual(5);
    expect(report.pidFileNamed).toBe(report.finalPid);
    expect(report.pidFileAfterExit).toBe(false);
  });

  it('3 upgrades (SIGUSR2): none fails, at most 5 over 500 ms; the pid file names the last runner', async (context) => {
    if (unavailable) return context.skip();
    const report = await runScenario<Report>({ manager: 'runner', action: 'upgrade', deploys: 3, rate: 1000 }, 0, 120_000, 'managers.js');
    show('reuseport start, SIGUSR2 x3', report);
    expect(report.load.sent).toBeGreaterThan(9000);
    expect(report.load.failed).toBe(0);
    expect(report.load.over500ms).toBeLessThanOrEqual(5);
    expect(report.pidFileNamed).toBe(report.finalPid);
    expect(report.pidFileAfterExit).toBe(false);
  });
});

describe('PM2 cluster mode with listenReusePort, 2 instances at 800 new connections/s (tcp_migrate_req=0)', () => {
  it("3 `pm2 reload`s: each under 2.5 s (PM2 sees the workers' 'listening'), at most 3 failed", async (context) => {
    if (unavailable) return context.skip();
    const report = await runScenario<Report>({ manager: 'pm2', listen: 'reuseport', deploys: 3, rate: 800 }, 0, 120_000, 'managers.js');
    show('PM2 + listenReusePort, pm2 reload x3', report);
    expect(report.load.sent).toBeGreaterThan(7000);
    expect(report.deployMs).toHaveLength(3);
    for (const ms of report.deployMs) expect(ms).toBeLessThan(2500);
    expect(report.load.failed).toBeLessThanOrEqual(3);
  });
});
