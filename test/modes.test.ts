// Every mode with real cluster workers: who accepts is proven from /proc, not assumed.
import http from 'node:http';
import net from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { listenReusePort } from '../lib/index';
import { listenWith } from '../lib/listen/listen-reuseport';
import { countResponses, fetchOnce } from './helpers/http';
import { freePort } from './helpers/ports';
import { startFixture, stopAll } from './helpers/processes';
import { listeningInodes, socketInodesOf } from './helpers/proc-net';
import { gatherFacts } from '../lib/plan/facts';

interface Outcome {
  pid: number;
  type: 'ready' | 'failed';
  info?: { mode: string; backend: string; address: { port: number }; reasons: string[] };
  error?: { code?: string; message: string };
}
interface Report {
  pid: number;
  plan: { mode: string; backend: string } | null;
  workers: Outcome[];
}

const stops: number[] = [];
afterEach(async () => {
  for (const pid of stops.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await stopAll();
});

async function startCluster(config: { workers: number; setup: object | null; port: number; workerOptions?: object }): Promise<Report> {
  const primary = startFixture('modes-cluster.js', [JSON.stringify(config)]);
  const report = await primary.next<Report>('ready', 20_000);
  stops.push(...report.workers.map((w) => w.pid));
  return report;
}

// Which of `pids` hold each listening socket of the port.
function holders(port: number, pids: number[]): number[][] {
  const tables = new Map(pids.map((pid) => [pid, socketInodesOf(pid)]));
  return listeningInodes(port).map((inode) => pids.filter((pid) => tables.get(pid)?.has(inode)));
}

describe('cluster modes', () => {
  it("reuseport: setupPrimary gives port 0 one port; each worker's own socket accepts", async () => {
    const report = await startCluster({ workers: 3, setup: {}, port: 0 });
    expect(report.plan).toMatchObject({ mode: 'reuseport', backend: 'addon' });
    const ports = new Set(report.workers.map((w) => w.info?.address.port));
    expect(ports.size).toBe(1);
    const [port] = [...ports] as [number];
    expect(port).toBeGreaterThan(0);
    const workerPids = report.workers.map((w) => w.pid);
    expect(report.workers.map((w) => w.info?.mode)).toEqual(['reuseport', 'reuseport', 'reuseport']);
    expect(holders(port, [report.pid, ...workerPids]).map((h) => h.length)).toEqual([1, 1, 1]);
    expect(holders(port, [report.pid]).flat()).toEqual([]);
    const counts = await countResponses(port, 300);
    expect([...counts.keys()].sort()).toEqual(workerPids.map(String).sort());
  });

  it('round-robin: the primary holds the only listening socket and passes connections to every worker', async () => {
    const report = await startCluster({ workers: 3, setup: { mode: 'round-robin' }, port: 0 });
    expect(report.plan).toMatchObject({ mode: 'round-robin', backend: 'cluster' });
    const port = report.workers[0]?.info?.address.port ?? 0;
    expect(report.workers.map((w) => [w.info?.mode, w.info?.address.port])).toEqual([
      ['round-robin', port],
      ['round-robin', port],
      ['round-robin', port],
    ]);
    const workerPids = report.workers.map((w) => w.pid);
    expect(holders(port, [report.pid, ...workerPids])).toEqual([[report.pid]]);
    const counts = await countResponses(port, 300);
    expect([...counts.keys()].sort()).toEqual(workerPids.map(String).sort());
  });

  it("shared: one listening socket, the primary's, open in every worker, which accept on it", async () => {
    const report = await startCluster({ workers: 3, setup: { mode: 'shared' }, port: 0 });
    expect(report.plan).toMatchObject({ mode: 'shared', backend: 'cluster' });
    const port = report.workers[0]?.info?.address.port ?? 0;
    expect(report.workers.map((w) => w.info?.mode)).toEqual(['shared', 'shared', 'shared']);
    const workerPids = report.workers.map((w) => w.pid);
    const [owners, ...more] = holders(port, [report.pid, ...workerPids]);
    expect(more).toEqual([]);
    expect(new Set(owners)).toEqual(new Set([report.pid, ...workerPids]));
    const counts = await countResponses(port, 300);
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(300);
    for (const pid of counts.keys()) expect(workerPids.map(String)).toContain(pid);
  });

  it('exclusive: the first worker listens alone, the second gets EADDRINUSE saying why', async () => {
    // A port no port-0 listen is given: one probed and closed could be taken by another file's
    // listener before the first worker's, which would then get EADDRINUSE too.
    const port = await freePort();
    const report = await startCluster({ workers: 2, setup: null, port, workerOptions: { mode: 'exclusive' } });
    const [first, second] = report.workers;
    expect(first?.info).toMatchObject({ mode: 'exclusive', backend: 'node' });
    expect(holders(port, [report.pid, first!.pid])).toEqual([[first!.pid]]);
    expect(second?.error?.code).toBe('EADDRINUSE');
    expect(second?.error?.message).toMatch(/'exclusive' mode/);
  });

  it('a worker forked without setupPrimary still works, through the primary, for port 0', async () => {
    const report = await startCluster({ workers: 2, setup: null, port: 0 });
    expect(report.workers.map((w) => w.info?.mode)).toEqual(['round-robin', 'round-robin']);
    expect(report.workers[0]?.info?.reasons.join(' ')).toMatch(/without setupPrimary\(\)/);
    const port = report.workers[0]?.info?.address.port ?? 0;
    expect(report.workers[1]?.info?.address.port).toBe(port);
    expect(await fetchOnce(port)).toMatch(/^\d+$/);
  });

  it('a worker that insists on a cluster mode the primary does not use is refused', async () => {
    const report = await startCluster({ workers: 1, setup: null, port: 0, workerOptions: { mode: 'shared' } });
    expect(report.workers[0]?.error?.code).toBe('ERR_REUSEPORT_MODE_UNSUPPORTED');
    expect(report.workers[0]?.error?.message).toMatch(/setupPrimary\(\{ mode: 'shared' \}\)/);
  });
});

describe('standalone modes', () => {
  const servers: net.Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => (s.listening ? s.close(resolve) : resolve(null)))));
  });

  it("on a system that cannot balance, listens 'exclusive' and explains a second listener's EADDRINUSE", async () => {
    const facts = { ...gatherFacts(), platform: 'darwin', release: '23.1.0' };
    const first = net.createServer();
    servers.push(first);
    const info = await listenWith({ facts }, first, 0, { host: '127.0.0.1' });
    expect(info).toMatchObject({ mode: 'exclusive', backend: 'node' });
    expect(info.reasons.join(' ')).toMatch(/Darwin 23\.1\.0/);
    const second = net.createServer();
    servers.push(second);
    await expect(listenWith({ facts }, second, info.address.port, { host: '127.0.0.1' })).rejects.toMatchObject({
      code: 'EADDRINUSE',
      syscall: 'listen',
      message: expect.stringMatching(/'exclusive' mode.*Darwin 23\.1\.0/),
    });
  });

  it("with no addon, uses Node's own reusePort exactly when this Node has it", async () => {
    const facts = { ...gatherFacts(), addon: false, addonError: 'deleted for the test' };
    const first = net.createServer();
    servers.push(first);
    const info = await listenWith({ facts, binding: undefined }, first, 0, { host: '127.0.0.1' });
    const second = net.createServer();
    servers.push(second);
    const joining = listenWith({ facts, binding: undefined }, second, info.address.port, { host: '127.0.0.1' });
    if (facts.nodeReusePort) {
      expect(info).toMatchObject({ mode: 'reuseport', backend: 'node' });
      expect((await joining).address.port).toBe(info.address.port);
    } else {
      expect(info).toMatchObject({ mode: 'exclusive', backend: 'node' });
      expect(info.reasons.join(' ')).toMatch(/deleted for the test/);
      await expect(joining).rejects.toMatchObject({ code: 'EADDRINUSE' });
    }
  });

  it('an explicit mode the system cannot do is refused, not quietly replaced', async () => {
    const facts = { ...gatherFacts(), platform: 'darwin', release: '23.1.0' };
    await expect(listenWith({ facts }, net.createServer(), 0, { mode: 'reuseport' })).rejects.toMatchObject({
      code: 'ERR_REUSEPORT_MODE_UNSUPPORTED',
    });
    await expect(listenReusePort(net.createServer(), 0, { mode: 'round-robin' })).rejects.toMatchObject({
      code: 'ERR_REUSEPORT_MODE_UNSUPPORTED',
    });
    await expect(listenReusePort(net.createServer(), 0, { mode: 'fast' as never })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE',
    });
  });
});

describe('frameworks', () => {
  it('fastify serves through listenReusePort', async () => {
    const app = Fastify();
    app.get('/', async () => 'fastify');
    await app.ready();
    const info = await listenReusePort(app.server, 0, { host: '127.0.0.1' });
    try {
      expect(info.mode).toBe('reuseport');
      expect(await fetchOnce(info.address.port)).toBe('fastify');
    } finally {
      await app.close();
    }
  });

  it('express serves through listenReusePort', async () => {
    const app = express();
    app.get('/', (_request, response) => {
      response.send('express');
    });
    const server = http.createServer(app);
    const info = await listenReusePort(server, 0, { host: '127.0.0.1' });
    try {
      expect(await fetchOnce(info.address.port)).toBe('express');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
