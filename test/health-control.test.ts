// A health server on a non-loopback address (Kubernetes probes, Prometheus) serves /ready, /live and
// /metrics there, never /status (pids, plan, ports) or /exit (a held request); those are served on a
// loopback control listener of its own, where `reuseport status|upgrade|stop` find them.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Plan } from '../lib/plan/plan';
import { type HealthSource, HealthServer, isLoopback } from '../lib/supervisor/fleet/health';
import { fetchPath } from './helpers/http';
import { namespaceCommand } from './helpers/netns';

const servers: HealthServer[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

const source: HealthSource = {
  ready: () => true,
  shuttingDown: () => false,
  stats: () => [],
  counts: () => ({ restarts: 0, reloads: 0, upgrades: 0, cut: 0 }),
  plan: () => ({ mode: 'reuseport', reasons: [] }) as unknown as Plan,
  ports: () => [8000],
  outcomes: () => ({}),
  serviceStartedAt: () => 1,
};

// GET on a fresh connection: status and body.
function get(port: number, pathname: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    import('node:http').then(({ default: http }) => {
      const request = http.get({ host: '127.0.0.1', port, path: pathname, agent: false, timeout: 5_000 }, (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      });
      request.on('timeout', () => request.destroy(new Error('timed out')));
      request.on('error', reject);
    }, reject);
  });
}

describe('isLoopback (pure)', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.0.0.2', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['0.0.0.0', false],
    ['::', false],
    ['10.1.2.3', false],
    ['::ffff:10.1.2.3', false],
    ['fe80::1', false],
  ])('%s: %s', (host, loopback) => {
    expect(isLoopback(host)).toBe(loopback);
  });
});

describe('HealthServer on a non-loopback address', () => {
  it('0.0.0.0: /ready, /live, /metrics there; /status and /exit 404 there, and served on a loopback control port', async () => {
    const health = new HealthServer(source);
    servers.push(health);
    const port = await health.listen(0, '0.0.0.0');
    const control = health.controlPort as number;
    expect(control).toBeGreaterThan(0);
    expect(control).not.toBe(port);
    for (const pathname of ['/ready', '/live', '/metrics']) expect((await get(port, pathname)).status).toBe(200);
    for (const pathname of ['/status', '/exit', '/status?x=1']) {
      const { status, body } = await get(port, pathname);
      expect(status).toBe(404);
      expect(body).not.toMatch(/"pid"/);
    }
    expect(JSON.parse(await fetchPath(control, '/status'))).toMatchObject({ pid: process.pid, ports: [8000] });
    expect((await get(control, '/live')).status).toBe(200);
  });

  it('127.0.0.1: one listener serving everything, as before', async () => {
    const health = new HealthServer(source);
    servers.push(health);
    const port = await health.listen(0, '127.0.0.1');
    expect(health.controlPort).toBeUndefined();
    expect(JSON.parse(await fetchPath(port, '/status'))).toMatchObject({ pid: process.pid });
  });

  it('close() closes the control listener too', async () => {
    const health = new HealthServer(source);
    const port = await health.listen(0, '0.0.0.0');
    const control = health.controlPort as number;
    health.close();
    await expect(get(control, '/status')).rejects.toThrow(/ECONNREFUSED/);
    await expect(get(port, '/live')).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('reuseport start --health-host 0.0.0.0, asked from a non-loopback address (192.0.2.1, in a network namespace of its own)', () => {
  it('the network gets /live, /ready and /metrics only; the CLI gets status, upgrade and stop through the control listener', async () => {
    // A documentation address (TEST-NET-1), local to the namespace: no traffic leaves it.
    const address = '192.0.2.1';
    const [command, ...prefix] = namespaceCommand() as [string, ...string[]];
    const setup = `ip link set lo up && ip addr add ${address}/32 dev lo && exec "$0" "$@"`;
    const child = spawn(
      command,
      [...prefix, '--', 'sh', '-c', setup, process.execPath, path.join(__dirname, 'scenarios', 'health-split.js'), JSON.stringify({ address })],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGKILL'), 90_000);
      child.once('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}');
    expect(report.network).toEqual({
      '/live': { status: 200, pid: false },
      '/ready': { status: 200, pid: true },
      '/metrics': { status: 200, pid: false },
      '/status': { status: 404, pid: false },
      '/exit': { status: 404, pid: false },
    });
    // The public listener is the same on loopback: what it serves depends on the listener, not the peer.
    expect(report.loopbackPublic).toMatchObject({ '/status': 404, '/exit': 404, '/live': 200 });
    expect(report.statusByPid).toEqual({ code: 0, pid: report.runner });
    expect(report.statusByPort).toEqual({ code: 0, pid: report.runner });
    expect(report.upgrade, JSON.stringify(report.upgrade)).toMatchObject({ code: 0, from: report.runner });
    expect(report.afterUpgrade).toEqual({ status: 404, live: 200 });
    expect(report.stop).toEqual({ code: 0, stopped: report.upgrade.to });
  }, 120_000);
});
