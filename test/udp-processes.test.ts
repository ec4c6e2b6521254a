// Many real processes on one UDP port with bindReusePort: standalone, cluster workers (own sockets, and
// the primary's shared one), and startCluster workers. 300 datagrams from 300 source ports each time.
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { findPortHolders } from '../lib/ports/port-holders';
import { freePort } from './helpers/ports';
import { type Fixture, startFixture, stopAll } from './helpers/processes';
import { socketInodesOf } from './helpers/proc-net';
import { countDatagramAnswers } from './helpers/udp';

interface Ready {
  pid: number;
  info: { mode: string; backend: string; address: { port: number }; reasons: string[] };
}

afterEach(() => stopAll());

// The fixture's 'ready', or its 'failed' error thrown as it came.
async function readyOf<T = Ready>(fixture: Fixture): Promise<T> {
  const failed = fixture.next<{ error: Error }>('failed', 30_000).then(
    ({ error }) => {
      throw Object.assign(new Error(`fixture failed: ${error.message}`), error);
    },
    () => new Promise<never>(() => undefined),
  );
  return Promise.race([fixture.next<T>('ready'), failed]);
}

// Every answer came from one of `pids`, all 300 were answered, and each process took at least 10%.
async function expectSpread(port: number, pids: number[]): Promise<void> {
  const counts = await countDatagramAnswers(port, 300);
  expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(300);
  expect([...counts.keys()].sort()).toEqual(pids.map(String).sort());
  for (const count of counts.values()) expect(count).toBeGreaterThanOrEqual(30);
}

// Which of `pids` hold each UDP socket bound to the port.
function holders(port: number, pids: number[]): number[][] {
  return findPortHolders(port, '/proc', 'udp').map((socket) => pids.filter((pid) => socketInodesOf(pid).has(socket.inode)));
}

describe('standalone processes on one UDP port', () => {
  it('three processes bind their own SO_REUSEPORT sockets and each answers at least 10% of 300 datagrams', async () => {
    const first = startFixture('udp-server.js', ['standalone', '0']);
    const ready = [await readyOf(first)];
    const port = ready[0]!.info.address.port;
    // Both wait for their message from the start: one may be ready while the other is awaited.
    ready.push(...(await Promise.all([1, 2].map(() => readyOf(startFixture('udp-server.js', ['standalone', String(port)]))))));
    expect(ready.map((r) => [r.info.mode, r.info.backend, r.info.address.port])).toEqual(Array(3).fill(['reuseport', 'addon', port]));
    expect(
      holders(
        port,
        ready.map((r) => r.pid),
      ).map((owners) => owners.length),
    ).toEqual([1, 1, 1]);
    await expectSpread(
      port,
      ready.map((r) => r.pid),
    );
  });
});

describe('cluster workers on one UDP port', () => {
  it("each worker binds its own socket; the primary holds none, yet gets node:cluster's 'listening' for each", async () => {
    const primary = startFixture('udp-server.js', ['cluster', '3'], { FIXTURE_PORT: String(await freePort()) });
    const ready = await readyOf<{ pid: number; port: number; workers: Ready[] }>(primary);
    const pids = ready.workers.map((w) => w.pid);
    expect(ready.workers.map((w) => [w.info.mode, w.info.backend])).toEqual(Array(3).fill(['reuseport', 'addon']));
    const owners = holders(ready.port, [...pids, ready.pid]);
    expect(owners.map((o) => o.length)).toEqual([1, 1, 1]);
    expect(owners.flat()).not.toContain(ready.pid);
    expect(new Set(owners.flat())).toEqual(new Set(pids));
    await expectSpread(ready.port, pids);
    primary.child.send({ type: 'report' });
    expect((await primary.next<{ listeningEvents: number }>('report')).listeningEvents).toBe(3);

    // worker.disconnect() closes each worker's own socket, as Node closes the ones it shares, so each exits by itself.
    primary.child.send({ type: 'disconnect' });
    const { exits } = await primary.next<{ exits: { pid: number; code: number; signal: string | null; exitedAfterDisconnect: boolean }[] }>('disconnected');
    expect(exits.map((e) => [e.code, e.signal, e.exitedAfterDisconnect])).toEqual(Array(3).fill([0, null, true]));
    expect(findPortHolders(ready.port, '/proc', 'udp')).toEqual([]);
  });

  it("in 'shared' mode every worker receives on the primary's one socket, and says so", async () => {
    const primary = startFixture('udp-server.js', ['cluster', '2', 'shared'], { FIXTURE_PORT: String(await freePort()) });
    const ready = await readyOf<{ pid: number; port: number; workers: Ready[] }>(primary);
    expect(ready.workers.map((w) => [w.info.mode, w.info.backend])).toEqual(Array(2).fill(['shared', 'cluster']));
    expect(ready.workers[0]!.info.reasons.join(' ')).toContain('node:cluster shares a UDP port only as one socket');
    const owners = holders(ready.port, [ready.pid, ...ready.workers.map((w) => w.pid)]);
    expect(owners).toHaveLength(1);
    expect(owners[0]).toContain(ready.pid);
    const counts = await countDatagramAnswers(ready.port, 40);
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(40);
  });
});

describe('startCluster workers on one UDP port', () => {
  it('each worker binds its own socket, the supervisor holds none, and a reload replaces them all', async () => {
    // A port no port-0 bind is given (a port probed and closed could be taken by another file's socket).
    const port = await freePort();
    // drainTimeoutMs: a worker that never answered its drain would hold the reload for 62 s, far
    // past the bound below (with the default 10 s it took 12 s, close to what a slow machine takes).
    const options = { exec: 'udp-server.js', workers: 3, drainTimeoutMs: 60_000 };
    const supervisor = startFixture('supervisor.js', [JSON.stringify(options)], { FIXTURE_PORT: String(port) });
    const ready = await supervisor.next<{ pid: number; pids: number[]; ports: number[] }>('ready');
    expect(ready.pids).toHaveLength(3);
    expect(ready.ports).toEqual([port]);
    const owners = holders(port, [ready.pid, ...ready.pids]);
    expect(owners.map((o) => o.length)).toEqual([1, 1, 1]);
    expect(owners.flat()).not.toContain(ready.pid);
    await expectSpread(port, ready.pids);

    // A reload replaces every worker: the UDP-only workers answer the drain themselves.
    supervisor.child.send({ type: 'reload' });
    // A reload waits, wave by wave, for new workers to start and stay up minUptimeMs (1 s) and for
    // the old ones' drains: a few seconds, up to 10 s on a machine 5-10 times slower. A generous
    // bound, which a drain never answered (62 s with these options) is still far past.
    const reloaded = await supervisor.next<{ pids: number[]; ms: number }>('reloaded', 40_000);
    expect(reloaded.pids.filter((pid) => ready.pids.includes(pid))).toEqual([]);
    expect(reloaded.ms).toBeLessThan(30_000);
    expect(holders(port, reloaded.pids).map((o) => o.length)).toEqual([1, 1, 1]);
  }, 120_000);
});

export const fixture = path.join(__dirname, 'fixtures', 'udp-server.js');
