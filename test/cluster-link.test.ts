// A cluster worker that listens on its own socket still behaves towards node:cluster as one that listens
// through the primary: the primary gets 'listening' with the address (PM2's reload waits for it), and
// worker.disconnect() (or cluster.worker.disconnect() in the worker) closes the server, letting the
// requests in flight finish, after which the worker exits by itself. Real primary, workers, sockets.
import http from 'node:http';
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { pm2KillSignal } from '../lib/listen/cluster-worker';
import { fetchOnce } from './helpers/http';
import { listeningInodes } from './helpers/proc-net';
import { type Fixture, startFixture, stopAll } from './helpers/processes';
import { freePort } from './helpers/ports';

interface Ready {
  listening: { pid: number; address: { address: string; port: number; addressType: number }; state: string }[];
  workers: number[];
}
interface Exit {
  pid: number;
  code: number | null;
  signal: string | null;
  exitedAfterDisconnect: boolean;
}

afterEach(() => stopAll());

// A GET /slow request: resolves with the worker's pid once the headers arrive, and with the body later.
function slowRequest(port: number): Promise<{ pid: number; body: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/slow', agent: false, timeout: 10_000 }, (response) => {
      const body = new Promise<string>((done, fail) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => done(text));
        response.on('error', fail);
      });
      resolve({ pid: Number(response.headers['x-pid']), body });
    });
    request.on('timeout', () => request.destroy(new Error('GET /slow timed out')));
    request.on('error', reject);
  });
}

async function start(config: {
  workers: number;
  port: number;
  setup: boolean;
  pm2?: boolean;
  hook?: boolean;
  appSigint?: boolean;
  killTimeout?: number;
}): Promise<{ primary: Fixture; ready: Ready }> {
  const primary = startFixture('cluster-link.js', [JSON.stringify(config)]);
  const ready = await primary.next<Ready>('ready', 20_000);
  return { primary, ready };
}

describe('a worker on its own socket, seen by node:cluster', () => {
  it("the primary gets 'listening' for each worker with its address, as for a shared server", async () => {
    const port = await freePort();
    const { ready } = await start({ workers: 2, port, setup: false });
    expect(ready.listening.map((event) => event.pid).sort()).toEqual([...ready.workers].sort());
    for (const event of ready.listening) {
      expect(event.address).toEqual({ address: '127.0.0.1', port, addressType: 4 });
      expect(event.state).toBe('listening');
    }
    // Both sockets are the workers' own: the primary holds none.
    expect(listeningInodes(port)).toHaveLength(2);
  });

  it('with setupPrimary and port 0 the event carries the port the primary reserved', async () => {
    const { ready } = await start({ workers: 2, port: 0, setup: true });
    const ports = new Set(ready.listening.map((event) => event.address.port));
    expect(ports.size).toBe(1);
    expect([...ports][0]).toBeGreaterThan(0);
  });

  it('worker.disconnect() closes its listener, lets the request in flight finish, and the worker exits 0 by itself', async () => {
    const port = await freePort();
    const { primary, ready } = await start({ workers: 2, port, setup: false });
    const slow = await slowRequest(port);
    expect(ready.workers).toContain(slow.pid);
    const exited = primary.next<Exit>('exit', 10_000);
    primary.child.send({ cmd: 'disconnect', pid: slow.pid });
    await expect(slow.body).resolves.toBe('slow done');
    await expect(exited).resolves.toMatchObject({ pid: slow.pid, code: 0, signal: null, exitedAfterDisconnect: true });
    // One listening socket is left, the other worker's, and it answers.
    expect(listeningInodes(port)).toHaveLength(1);
    const other = ready.workers.find((pid) => pid !== slow.pid);
    await expect(fetchOnce(port)).resolves.toBe(String(other));
  });

  it('cluster.worker.disconnect() in the worker closes its listener too', async () => {
    const port = await freePort();
    const { primary, ready } = await start({ workers: 2, port, setup: false });
    const [first] = ready.workers as [number];
    const exited = primary.next<Exit>('exit', 10_000);
    primary.child.send({ cmd: 'self-disconnect', pid: first });
    await expect(exited).resolves.toMatchObject({ pid: first, code: 0, exitedAfterDisconnect: true });
    expect(listeningInodes(port)).toHaveLength(1);
  });
});

describe('under PM2 (cluster mode), whose reload stops an instance with a signal', () => {
  it.each<[string, NodeJS.ProcessEnv, string | undefined]>([
    ['PM2 cluster mode', { pm_id: '3', exec_mode: 'cluster_mode' }, 'SIGINT'],
    ['PM2 cluster mode with PM2_KILL_SIGNAL', { pm_id: '0', exec_mode: 'cluster_mode', PM2_KILL_SIGNAL: 'SIGTERM' }, 'SIGTERM'],
    ['a PM2_KILL_SIGNAL that is no signal name', { pm_id: '0', exec_mode: 'cluster_mode', PM2_KILL_SIGNAL: 'rm -rf' }, undefined],
    ['PM2 fork mode (no cluster worker)', { pm_id: '0', exec_mode: 'fork_mode' }, undefined],
    ['not under PM2', {}, undefined],
  ])('%s: %s', (_name, env, signal) => {
    expect(pm2KillSignal(env)).toBe(signal);
  });

  it.each([
    ['listenReusePort', false],
    ['a plain server.listen() under the hook', true],
  ])(
    '%s: SIGINT drains as the supervisor does (an idle keep-alive connection closed cleanly within kill_timeout), aborts drainSignal(), then kills the worker as SIGINT does',
    async (_name, hook) => {
      const port = await freePort();
      // Long, so that the close after the idle grace (250 ms) stays far under it on a slow machine too:
      // a drain that left the idle connection to its bound (kill_timeout less 300 ms) still fails.
      const killTimeout = 10_000;
      const { primary, ready } = await start({ workers: 2, port, setup: false, pm2: true, hook, killTimeout });
      const [target] = ready.workers as [number];
      // A keep-alive connection to that worker, idle after its first answer.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      let socket: net.Socket | undefined;
      for (let i = 0; i < 50 && !socket; i++) {
        const { pid, socket: used } = await new Promise<{ pid: string; socket: net.Socket }>((resolve, reject) => {
          const request = http.get({ host: '127.0.0.1', port, path: '/', agent }, (response) => {
            const { socket: on } = request;
            response.resume();
            response.on('end', () => resolve({ pid: String(response.headers['x-pid']), socket: on as net.Socket }));
          });
          request.on('error', reject);
        });
        if (Number(pid) === target) socket = used;
        else agent.destroy();
      }
      expect(socket).toBeDefined();
      const closed = new Promise<{ hadError: boolean; ms: number }>((resolve) => {
        const since = performance.now();
        socket!.once('close', (hadError) => resolve({ hadError, ms: performance.now() - since }));
      });
      const drain = primary.next<{ pid: number; reason: string; code: string }>('drain', 10_000);
      const exited = primary.next<Exit>('exit', killTimeout + 10_000);
      process.kill(target, 'SIGINT');
      await expect(drain).resolves.toMatchObject({
        pid: target,
        code: 'REUSEPORT_DRAINING',
        reason: expect.stringContaining('PM2 stops this instance (SIGINT)'),
      });
      const close = await closed;
      expect(close.hadError).toBe(false);
      // Closed after the idle grace, not at kill_timeout (PM2 would SIGKILL at 10000 ms).
      expect(close.ms).toBeLessThan(killTimeout - 1_000);
      await expect(exited).resolves.toMatchObject({ pid: target, code: null, signal: 'SIGINT' });
      agent.destroy();
    },
  );

  it("an app that listens for SIGINT itself decides when to exit: after the drain its worker is still there (the package's own listener is not counted)", async () => {
    const port = await freePort();
    const { primary, ready } = await start({ workers: 2, port, setup: false, pm2: true, hook: true, appSigint: true });
    const [target] = ready.workers as [number];
    const drain = primary.next<{ pid: number }>('drain', 10_000);
    process.kill(target, 'SIGINT');
    await expect(drain).resolves.toMatchObject({ pid: target });
    // Its listener is closed (the other worker's socket is the port's only one), and it lives on.
    // Bounded by count and time (10 s: a slow machine may take seconds to close it).
    const drained = Date.now();
    for (let i = 0; i < 500 && listeningInodes(port).length > 1 && Date.now() - drained < 10_000; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(listeningInodes(port)).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const exited = primary.next<Exit>('exit', 10_000);
    primary.child.send({ cmd: 'exit', pid: target });
    await expect(exited).resolves.toMatchObject({ pid: target, code: 7 });
  });

  it('SIGINT closes the listener, lets the request in flight finish, then kills the worker as SIGINT does', async () => {
    const port = await freePort();
    const { primary, ready } = await start({ workers: 2, port, setup: false, pm2: true });
    const slow = await slowRequest(port);
    const exited = primary.next<Exit>('exit', 10_000);
    process.kill(slow.pid, 'SIGINT');
    await expect(slow.body).resolves.toBe('slow done');
    await expect(exited).resolves.toMatchObject({ pid: slow.pid, code: null, signal: 'SIGINT' });
    expect(listeningInodes(port)).toHaveLength(1);
    const other = ready.workers.find((pid) => pid !== slow.pid);
    await expect(fetchOnce(port)).resolves.toBe(String(other));
  });
});
