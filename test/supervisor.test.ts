// startCluster: slots that outlive their workers, reloads one slot at a time, crash replacement, close.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { threadsOf } from '../lib/supervisor/slots/affinity';
import { loadBinding } from '../lib/binding';
import { startCluster } from '../lib/index';
import { countResponses, fetchOnce, fetchPath } from './helpers/http';
import { type Fixture, startFixture, stopAll } from './helpers/processes';
import { listeningInodes, socketInodesOf } from './helpers/proc-net';

interface State {
  pid: number;
  pids: number[];
  ports: number[];
  plan: { mode: string; backend: string };
  events: { name: string; slot?: number; pid?: number; expected?: boolean }[];
  steering: { reason: string; enabled: boolean }[];
  stats: { slot: number; pid: number; cpu?: number }[];
}

const workerPids: number[] = [];
afterEach(async () => {
  for (const pid of workerPids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await stopAll();
});

async function start(options: object): Promise<{ fixture: Fixture; state: State }> {
  const fixture = startFixture('supervisor.js', [JSON.stringify({ exec: 'supervised-worker.js', ...options })]);
  const state = await fixture.next<State>('ready', 20_000);
  workerPids.push(...state.pids);
  return { fixture, state };
}

async function ask<T = State>(fixture: Fixture, type: string, reply: string, extra: object = {}): Promise<T> {
  fixture.child.send({ type, ...extra });
  const state = await fixture.next<T & State>(reply, 30_000);
  workerPids.push(...state.pids);
  return state;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('startCluster', () => {
  it('starts every worker on one port; each slot socket is held by the primary and its worker', async () => {
    const { state } = await start({ workers: 3 });
    expect(state.plan).toMatchObject({ mode: 'reuseport', backend: 'addon' });
    expect(state.pids).toHaveLength(3);
    expect(state.ports).toHaveLength(1);
    const [port] = state.ports as [number];
    const inodes = listeningInodes(port);
    expect(inodes).toHaveLength(3);
    const primary = socketInodesOf(state.pid);
    for (const inode of inodes) expect(primary.has(inode)).toBe(true);
    const owners = inodes.map((inode) => state.pids.filter((pid) => socketInodesOf(pid).has(inode)));
    expect(owners.map((o) => o.length)).toEqual([1, 1, 1]);
    const counts = await countResponses(port, 150);
    expect([...counts.keys()].sort()).toEqual(state.pids.map(String).sort());
  });

  it('reload replaces every worker, one slot at a time, on the same sockets', async () => {
    const { fixture, state } = await start({ workers: 2 });
    const [port] = state.ports as [number];
    const before = listeningInodes(port).sort();
    const after = await ask(fixture, 'reload', 'reloaded');
    expect(after.pids).toHaveLength(2);
    for (const pid of after.pids) expect(state.pids).not.toContain(pid);
    for (const pid of state.pids) expect(alive(pid)).toBe(false);
    expect(listeningInodes(port).sort()).toEqual(before);
    const exits = after.events.filter((e) => e.name === 'exit');
    expect(exits.map((e) => e.expected)).toEqual([true, true]);
    const counts = await countResponses(port, 60);
    expect([...counts.keys()].sort()).toEqual(after.pids.map(String).sort());
  });

  it('replaces a worker killed with SIGKILL, and its slot socket never closes', async () => {
    const { fixture, state } = await start({ workers: 2 });
    const [port] = state.ports as [number];
    const before = listeningInodes(port).sort();
    const victim = state.pids[0] as number;
    fixture.child.send({ type: 'kill', slot: 0 });
    let now = state;
    for (let i = 0; i < 100; i++) {
      now = await ask(fixture, 'state', 'state');
      if (now.pids.length === 2 && !now.pids.includes(victim)) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(now.pids).toHaveLength(2);
    expect(now.pids).not.toContain(victim);
    expect(now.events.find((e) => e.name === 'exit')).toMatchObject({ slot: 0, pid: victim, expected: false });
    expect(listeningInodes(port).sort()).toEqual(before);
    expect(await fetchOnce(port)).toMatch(/^\d+$/);
  });

  it('close drains and stops every worker and closes the slot sockets', async () => {
    const { fixture, state } = await start({ workers: 2 });
    const [port] = state.ports as [number];
    const closed = await ask(fixture, 'close', 'closed');
    expect(closed.pids).toEqual([]);
    for (const pid of state.pids) expect(alive(pid)).toBe(false);
    expect(listeningInodes(port)).toEqual([]);
  });

  it.each([
    ['round-robin', 'cluster'],
    ['shared', 'cluster'],
  ])('reloads in %s mode through the cluster module', async (mode, backend) => {
    const { fixture, state } = await start({ workers: 2, mode });
    expect(state.plan).toMatchObject({ mode, backend });
    const [port] = state.ports as [number];
    const after = await ask(fixture, 'reload', 'reloaded');
    for (const pid of after.pids) expect(state.pids).not.toContain(pid);
    expect(await fetchOnce(port)).toMatch(/^\d+$/);
  });

  it.each<[string, object, string]>([
    ['no options', undefined as unknown as object, 'ERR_INVALID_ARG_TYPE'],
    ['no exec', {}, 'ERR_INVALID_ARG_TYPE'],
    ['zero workers', { exec: 'x.js', workers: 0 }, 'ERR_OUT_OF_RANGE'],
    ['fractional workers', { exec: 'x.js', workers: 1.5 }, 'ERR_OUT_OF_RANGE'],
    ['string workers', { exec: 'x.js', workers: '2' }, 'ERR_INVALID_ARG_TYPE'],
    ['args not an array', { exec: 'x.js', args: 'a' }, 'ERR_INVALID_ARG_TYPE'],
    ['an unknown mode', { exec: 'x.js', mode: 'fast' }, 'ERR_INVALID_ARG_VALUE'],
    ['cpuLocal not a boolean', { exec: 'x.js', cpuLocal: 'yes' }, 'ERR_INVALID_ARG_TYPE'],
  ])('rejects %s', async (_name, options, code) => {
    await expect(startCluster(options as never)).rejects.toMatchObject({ code });
  });
});

describe('connections a worker accepts from a lent slot', () => {
  // Slot 0's worker blocks; once connections wait for it and it does not answer, slot 1's worker is lent its socket.
  // Then 12 connections: each, whichever slot it hashed to, ends up on slot 1's worker.
  async function duringStall(env: Record<string, string>): Promise<{ fixture: Fixture; clients: net.Socket[]; closedByServer: () => number }> {
    const { fixture, state } = await start({ workers: 2, env });
    const [port] = state.ports as [number];
    // Answered as the block begins, so no connection below reaches slot 0's worker before it blocks; the block
    // (10 s) outlasts connectionsOfSlot1's wait (8 s), so slot 0's worker accepts none of them itself while the
    // test looks, however slow the machine (the afterEach kills it).
    await ask(fixture, 'block', 'block', { slot: 0, ms: 10_000 });
    const clients: net.Socket[] = [];
    let closed = 0;
    for (let i = 0; i < 12; i++) {
      const client = net.connect(port, '127.0.0.1');
      client.on('error', () => undefined);
      client.on('close', () => {
        closed += 1;
      });
      clients.push(client);
      await new Promise((resolve) => client.once('connect', resolve));
    }
    return { fixture, clients, closedByServer: () => closed };
  }

  // Slot 1's worker's getConnections(), once `done` holds of it (bounded: 8 s, within slot 0's block).
  async function connectionsOfSlot1(fixture: Fixture, done: (count: number) => boolean): Promise<number> {
    const deadline = Date.now() + 8_000;
    let reply = await ask<{ count: number }>(fixture, 'connections', 'connections', { slot: 1 });
    while (!done(reply.count) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      reply = await ask<{ count: number }>(fixture, 'connections', 'connections', { slot: 1 });
    }
    return reply.count;
  }

  it("count as its server's own: getConnections() sees them, and they leave the count when they close", async () => {
    const { fixture, clients } = await duringStall({});
    try {
      expect(await connectionsOfSlot1(fixture, (n) => n >= 12)).toBe(12);
      const now = await ask<State>(fixture, 'state', 'state');
      expect(now.events.some((e) => e.name === 'stall' && e.slot === 0)).toBe(true);
    } finally {
      for (const client of clients) client.destroy();
    }
    expect(await connectionsOfSlot1(fixture, (n) => n === 0)).toBe(0);
  });

  it("obey the server's maxConnections, as its own connections do", async () => {
    const { fixture, clients, closedByServer } = await duringStall({ FIXTURE_MAX_CONNECTIONS: '3' });
    try {
      expect(await connectionsOfSlot1(fixture, () => closedByServer() >= 9)).toBe(3);
      expect(closedByServer()).toBe(9);
    } finally {
      for (const client of clients) client.destroy();
    }
  });
});

describe('progress cells', () => {
  // New connections from `clients` loops, each asking for 10 ms of blocked event loop, for at least `ms`
  // and until `least` were answered (bounded: 1_000 each, 10 s): the workers accept all the time, and
  // their queues are seldom empty. A slow machine makes the load last longer, not answer less.
  async function busy(port: number, ms: number, least: number, clients = 8): Promise<{ answered: number; ms: number }> {
    const started = Date.now();
    const deadline = started + 10_000;
    let answered = 0;
    const enough = () => Date.now() - started >= ms && answered >= least;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        for (let i = 0; i < 1_000 && !enough() && Date.now() < deadline; i++) {
          await fetchPath(port, '/block?ms=10');
          answered += 1;
        }
      }),
    );
    return { answered, ms: Date.now() - started };
  }

  // The pings both workers were sent while under load, per second of it (the two runs may last differently long).
  async function pingsUnderLoad(env: Record<string, string>): Promise<{ pings: number; perSecond: number; answered: number }> {
    const { fixture, state } = await start({ workers: 2, env });
    const load = await busy(state.ports[0] as number, 1_500, 60);
    let pings = 0;
    for (const slot of [0, 1]) pings += (await ask<{ count: number }>(fixture, 'pings', 'pings', { slot })).count;
    return { pings, perSecond: (pings * 1_000) / load.ms, answered: load.answered };
  }

  it('a worker that keeps accepting is not asked whether it answers; without its cell it is, again and again', async () => {
    const without = await pingsUnderLoad({ FIXTURE_NO_CELL: '1' });
    await stopAll();
    const withCells = await pingsUnderLoad({});
    expect(without.answered).toBeGreaterThanOrEqual(60);
    expect(withCells.answered).toBeGreaterThanOrEqual(60);
    expect(without.pings).toBeGreaterThan(10);
    expect(withCells.perSecond).toBeLessThan(without.perSecond / 4);
  });

  it('a worker whose cell stands still while connections wait has its slot lent: every connection is answered by the other', async () => {
    const { fixture, state } = await start({ workers: 2 });
    const [port] = state.ports as [number];
    const [blocked, other] = state.pids as [number, number];
    // Answered as the block begins; the block (10 s) outlasts every fetch's wait for an answer (8 s), so a
    // fetch that was not lent fails rather than being answered late by the blocked worker.
    await ask(fixture, 'block', 'block', { slot: 0, ms: 10_000 });
    const answers = await Promise.all(Array.from({ length: 30 }, () => fetchOnce(port, '127.0.0.1', 8_000)));
    expect(new Set(answers)).toEqual(new Set([String(other)]));
    const now = await ask(fixture, 'state', 'state');
    expect(now.events).toContainEqual(expect.objectContaining({ name: 'stall', slot: 0, pid: blocked }));
  });
});

describe('startCluster({ cpuLocal: true })', () => {
  const binding = loadBinding().binding;
  if (!binding) throw new Error('the addon did not load');
  const own = binding.getCpuAffinity(0);

  // Which worker pids answer `count` new connections made from this thread while it runs on `cpu`.
  async function answeredFrom(cpu: number, port: number, count: number): Promise<string[]> {
    binding?.setCpuAffinity(0, [cpu]);
    try {
      return [...(await countResponses(port, count)).keys()];
    } finally {
      binding?.setCpuAffinity(0, own);
    }
  }

  function pinnedTo(pid: number): number[][] {
    return threadsOf(pid).map((tid) => binding?.getCpuAffinity(tid) ?? []);
  }

  it.runIf(own.length >= 2)('pins each worker to its CPU, and each connection stays with the worker of the CPU that received it', async () => {
    // Stall protection at 5 s, not 80 ms: a worker starved of CPU for 80 ms on a busy machine would
    // have its slot lent, and the connections its CPU received answered by the other worker.
    const { fixture, state } = await start({ workers: 2, cpuLocal: true, stallThresholdMs: 5_000 });
    const cpus = own.slice(0, 2);
    expect(state.stats.map((s) => s.cpu)).toEqual(cpus);
    expect(state.steering[0]?.reason).toMatch(/^CPU-local/);
    state.pids.forEach((pid, slot) => {
      for (const mask of pinnedTo(pid)) expect(mask).toEqual([cpus[slot]]);
    });
    const [port] = state.ports as [number];
    expect(await answeredFrom(cpus[0] as number, port, 30)).toEqual([String(state.pids[0])]);
    expect(await answeredFrom(cpus[1] as number, port, 30)).toEqual([String(state.pids[1])]);
    // A reload keeps each slot on its CPU.
    const after = await ask(fixture, 'reload', 'reloaded');
    after.pids.forEach((pid, slot) => {
      for (const mask of pinnedTo(pid)) expect(mask).toEqual([cpus[slot]]);
    });
    expect(await answeredFrom(cpus[1] as number, port, 30)).toEqual([String(after.pids[1])]);
  });

  it("with more workers than CPUs, wraps around and spreads a CPU's connections over its workers", async () => {
    const workers = own.length + 1;
    // Stall protection at 5 s, as above: a worker starved of CPU for 80 ms while connections wait would have
    // its slot lent to another CPU's worker, which would then answer some of this CPU's connections.
    const { state } = await start({ workers, cpuLocal: true, stallThresholdMs: 5_000 });
    const expected = Array.from({ length: workers }, (_, slot) => own[slot % own.length]);
    expect(state.stats.map((s) => s.cpu)).toEqual(expected);
    const [port] = state.ports as [number];
    const first = own[0] as number;
    const sharing = state.pids.filter((_pid, slot) => expected[slot] === first).map(String);
    expect(sharing.length).toBe(2);
    expect((await answeredFrom(first, port, 60)).sort()).toEqual(sharing.sort());
  });

  it('refuses where it cannot keep connections on a CPU: round-robin is no SO_REUSEPORT group', async () => {
    const fixture = startFixture('supervisor.js', [JSON.stringify({ exec: 'supervised-worker.js', workers: 2, mode: 'round-robin', cpuLocal: true })]);
    const failed = await fixture.next<{ error: { code: string; message: string } }>('failed', 20_000);
    expect(failed.error.code).toBe('ERR_REUSEPORT_MODE_UNSUPPORTED');
    expect(failed.error.message).toMatch(/cpuLocal cannot be used: it needs the reuseport mode through the addon, and the plan is round-robin/);
  });
});
