// startCluster({ sticky: 'ip' }): real supervisors and workers (test/fixtures/supervisor.js with
// supervised-worker.js, which answers its pid) and real HTTP clients from 16 source addresses
// (127.0.0.10-25: Linux routes all of 127/8 to lo). Every client address is served by the worker of
// the slot the program picks (the interpreter says which), through a reload and a crash; the slot
// keeps its socket while it has no worker, where without sticky the socket closes and the steering
// ends; and where stickiness cannot be had, startCluster fails. Plus the options' checks.
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { loadBinding } from '../lib/binding';
import { SlotSockets } from '../lib/supervisor/slots/slot-sockets';
import { listeningInodes } from './helpers/proc-net';
import { resolveSettings } from '../lib/supervisor/core/settings';
import { MAX_STICKY_SLOTS } from '../lib/supervisor/slots/steering';
import { STICKY_SOURCES, stickySlotOf } from './helpers/bpf';
import { fetchFrom } from './helpers/http';
import { SeenProcesses } from './helpers/pids';
import { type Fixture, startFixture, stopAll } from './helpers/processes';

interface State {
  pid: number;
  pids: number[];
  ports: number[];
  events: { name: string; slot?: number; pid?: number }[];
  steering: { enabled: boolean; sticky: boolean; reason: string }[];
  stats: { slot: number; pid?: number; lentTo?: number }[];
}

// Workers seen, killed afterwards only while each pid is still that process.
const seenWorkers = new SeenProcesses();
afterEach(async () => {
  seenWorkers.killAll();
  await stopAll();
});

const SOURCES = STICKY_SOURCES;

async function start(options: object): Promise<{ fixture: Fixture; state: State }> {
  // Stall protection at 5 s, not 80 ms, unless a test sets it: on a busy machine a worker starved of
  // CPU for 80 ms would have its slot lent, and its clients answered by another worker.
  const fixture = startFixture('supervisor.js', [JSON.stringify({ exec: 'supervised-worker.js', stallThresholdMs: 5_000, ...options })]);
  const state = await fixture.next<State>('ready', 20_000);
  for (const pid of state.pids) seenWorkers.add(pid);
  return { fixture, state };
}

async function ask(fixture: Fixture, type: string, reply: string): Promise<State> {
  fixture.child.send({ type });
  const state = await fixture.next<State>(reply, 30_000);
  for (const pid of state.pids) seenWorkers.add(pid);
  return state;
}

/** Which pid answered each source, `rounds` times each (new connections, so new source ports). */
async function answers(port: number, rounds = 3): Promise<Map<string, Set<string>>> {
  const seen = new Map<string, Set<string>>();
  for (let round = 0; round < rounds; round++) {
    await Promise.all(
      SOURCES.map(async (source) => {
        const pid = await fetchFrom(port, source);
        seen.set(source, (seen.get(source) ?? new Set()).add(pid));
      }),
    );
  }
  return seen;
}

function expectSticky(seen: Map<string, Set<string>>, pidOfSlot: (slot: number) => number | undefined, slots: number): void {
  for (const source of SOURCES)
    expect({ source, pids: [...(seen.get(source) ?? [])] }).toEqual({ source, pids: [String(pidOfSlot(stickySlotOf(source, slots)))] });
}

async function until<T>(fixture: Fixture, check: (state: State) => T | undefined, timeoutMs = 20_000): Promise<State> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await ask(fixture, 'state', 'state');
    if (check(state)) return state;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms: ${JSON.stringify(state).slice(0, 1500)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("startCluster({ sticky: 'ip' })", () => {
  it('serves every client address from the worker of its slot, through a reload', async () => {
    const { fixture, state } = await start({ workers: 3, sticky: 'ip' });
    const [port] = state.ports as [number];
    expect(state.steering).toMatchObject([{ enabled: true, sticky: true, reason: expect.stringMatching(/^sticky: /) }]);
    const pidOf = (s: State) => (slot: number) => s.stats.find((stat) => stat.slot === slot)?.pid;
    const before = await answers(port);
    expectSticky(before, pidOf(state), 3);
    // 16 addresses over 3 slots: more than one worker serves (the interpreter picked these, so this is the hash).
    expect(new Set([...before.values()].flatMap((pids) => [...pids])).size).toBeGreaterThan(1);
    const reloaded = await ask(fixture, 'reload', 'reloaded');
    for (const pid of reloaded.pids) expect(state.pids).not.toContain(pid);
    expectSticky(await answers(port), pidOf(reloaded), 3);
  });

  it.each<[string, object, boolean]>([
    ['with sticky, a dead slot keeps its socket past slotTimeoutMs (lent meanwhile) and its clients come back to its new worker', { sticky: 'ip' }, true],
    ['without sticky (the check that the setup can fail): the socket closes and the steering ends', {}, false],
  ])('%s', async (_name, options, sticky) => {
    // The replacement comes 2 s after the crash; the slot's socket would be closed after 200 ms.
    const { fixture, state } = await start({ workers: 3, slotTimeoutMs: 200, restartDelayMs: 2_000, ...options });
    const [port] = state.ports as [number];
    const victim = 1;
    const victimPid = state.stats.find((stat) => stat.slot === victim)?.pid as number;
    fixture.child.send({ type: 'kill', slot: victim });
    // With sticky: until the replacement listens (2 s on) and its slot is lent no more; without: until the socket is closed (0.2 s on).
    const replaced = await until(fixture, (s) =>
      sticky
        ? s.events.some((e) => e.name === 'listening' && e.slot === victim && e.pid !== victimPid) &&
          s.stats.find((stat) => stat.slot === victim)?.lentTo === undefined
        : s.events.some((e) => e.name === 'slot-closed'),
    );
    const closed = replaced.events.filter((e) => e.name === 'slot-closed');
    if (!sticky) {
      expect(closed).toEqual([{ name: 'slot-closed', slot: victim }]);
      expect(replaced.steering).toMatchObject([{ enabled: false, reason: expect.stringMatching(/slot 1's socket was closed/) }]);
      return;
    }
    expect(closed).toEqual([]);
    expect(replaced.steering).toMatchObject([{ enabled: true, sticky: true }]);
    // The supervisor sent the borrower its recall before it said the slot is lent no more, but the borrower
    // may not have read it yet, and would accept the slot's clients meanwhile. An order sent to every worker
    // after it, on the same channel, and answered, says each has handled it.
    for (let slot = 0; slot < replaced.pids.length; slot++) {
      fixture.child.send({ type: 'pings', slot });
      await fixture.next('pings', 30_000);
    }
    expectSticky(await answers(port), (slot) => replaced.stats.find((stat) => stat.slot === slot)?.pid, 3);
  });

  it("serves a dead slot's clients from a live worker (its socket lent) while it has none", async () => {
    const { fixture, state } = await start({ workers: 2, sticky: 'ip', restartDelayMs: 60_000 });
    const [port] = state.ports as [number];
    const victim = stickySlotOf(SOURCES[0] as string, 2);
    const helper = state.stats.find((stat) => stat.slot !== victim)?.pid as number;
    fixture.child.send({ type: 'kill', slot: victim });
    await until(fixture, (s) => s.stats.find((stat) => stat.slot === victim)?.lentTo === helper);
    const seen = await answers(port);
    for (const source of SOURCES) expect([...(seen.get(source) ?? [])]).toEqual([String(helper)]);
  });

  it("with stall protection off, a dead slot's clients wait for its replacement (nobody else serves them)", async () => {
    const { fixture, state } = await start({ workers: 2, sticky: 'ip', stallThresholdMs: 0, restartDelayMs: 1_000 });
    const [port] = state.ports as [number];
    const source = SOURCES[0] as string;
    const victim = stickySlotOf(source, 2);
    const victimPid = state.stats.find((stat) => stat.slot === victim)?.pid as number;
    fixture.child.send({ type: 'kill', slot: victim });
    await until(fixture, (s) => s.events.some((e) => e.name === 'exit' && e.pid === victimPid));
    // Asked while the slot has no worker: it waits in the slot's queue, and the replacement answers.
    const answer = await fetchFrom(port, source, { timeoutMs: 20_000 });
    const after = await until(fixture, (s) => s.stats.find((stat) => stat.slot === victim)?.pid !== undefined);
    expect(answer).toBe(String(after.stats.find((stat) => stat.slot === victim)?.pid));
    expect(answer).not.toBe(String(victimPid));
  });

  it.each<[string, object, RegExp]>([
    [
      'round-robin: no SO_REUSEPORT group',
      { mode: 'round-robin' },
      /sticky: 'ip' cannot be used: it needs the reuseport mode through the addon \(the supervisor's slot sockets\), and the plan is round-robin/,
    ],
    ['more workers than the program can hold', { workers: MAX_STICKY_SLOTS + 1 }, /at most 289 with sticky/],
  ])('fails at start where it cannot be had: %s', async (_name, options, message) => {
    const fixture = startFixture('supervisor.js', [JSON.stringify({ exec: 'supervised-worker.js', workers: 2, sticky: 'ip', ...options })]);
    const failed = await fixture.next<{ error: { code: string; message: string } }>('failed', 20_000);
    expect(failed.error.message).toMatch(message);
    expect(failed.error.code).toMatch(/^ERR_(REUSEPORT_MODE_UNSUPPORTED|OUT_OF_RANGE)$/);
  });

  it('fails at start when another listener of the app was on the port first; without sticky it starts unsteered', async () => {
    // The same worker script run on its own: a listener of the same sharing group, there first.
    const first = startFixture('supervised-worker.js', [], { FIXTURE_REPORT: '1' });
    const { info } = await first.next<{ info: { address: { port: number } } }>('info', 20_000);
    const port = String(info.address.port);
    const sticky = startFixture('supervisor.js', [JSON.stringify({ exec: 'supervised-worker.js', workers: 2, sticky: 'ip', env: { FIXTURE_PORT: port } })]);
    const failed = await sticky.next<{ error: { code: string; message: string; port: number } }>('failed', 20_000);
    expect(failed.error).toMatchObject({ code: 'ERR_REUSEPORT_MODE_UNSUPPORTED', port: Number(port) });
    expect(failed.error.message).toMatch(/sticky: 'ip' cannot be kept on 127\.0\.0\.1:\d+: 1 other listener\(s\) were on the port first/);
    const { state } = await start({ workers: 2, env: { FIXTURE_PORT: port } });
    expect(state.steering).toMatchObject([{ enabled: false, sticky: false, reason: expect.stringMatching(/other listener\(s\) were on the port first/) }]);
  });
});

describe('SlotSockets with sticky: an attach that fails', () => {
  it("is the error of the worker's first request (the setsockopt error, named), and leaves no socket open", () => {
    const loaded = loadBinding();
    if (!loaded.binding) throw loaded.error;
    const real = loaded.binding;
    // The kernel's own refusal, borrowed: the program attached to a file that is no socket (ENOTSOCK).
    const refusing = {
      ...real,
      attachReusePortProgram: (_fd: number, program: number[]) => {
        const file = fs.openSync('/dev/null', 'r');
        try {
          real.attachReusePortProgram(file, program);
        } finally {
          fs.closeSync(file);
        }
      },
    };
    const sockets = new SlotSockets(refusing, 2, undefined, { ipv6Prefix: 128 });
    let port = 0;
    const request = { address: '127.0.0.1', port: 0, ipv6Only: false, group: false as const };
    try {
      sockets.get(0, request);
    } catch (error) {
      expect(error).toMatchObject({ code: 'ENOTSOCK', syscall: 'setsockopt' });
      expect((error as Error).message).toMatch(/^reuseport: sticky: 'ip' cannot be kept on 127\.0\.0\.1:(\d+): attaching the program failed: /);
      port = Number(/127\.0\.0\.1:(\d+)/.exec((error as Error).message)?.[1]);
    }
    expect(port).toBeGreaterThan(0);
    expect(listeningInodes(port)).toEqual([]);
    // The same with the real binding: sticky, both slots' sockets in the group.
    const working = new SlotSockets(real, 2, undefined, { ipv6Prefix: 128 });
    try {
      const socket = working.get(0, request);
      expect(working.steering()).toMatchObject([{ port: socket.port, enabled: true, sticky: true }]);
      expect(listeningInodes(socket.port)).toHaveLength(2);
    } finally {
      working.closeAll();
    }
  });
});

describe("sticky's options", () => {
  const exec = __filename;
  it.each<[string, object, string]>([
    ['a sticky that is not ip', { sticky: 'port' }, 'ERR_INVALID_ARG_VALUE'],
    ['sticky: true', { sticky: true }, 'ERR_INVALID_ARG_VALUE'],
    ['sticky with cpuLocal', { sticky: 'ip', cpuLocal: true }, 'ERR_INVALID_ARG_VALUE'],
    ['a prefix without sticky', { stickyIpv6Prefix: 64 }, 'ERR_INVALID_ARG_VALUE'],
    ['a prefix of 0', { sticky: 'ip', stickyIpv6Prefix: 0 }, 'ERR_OUT_OF_RANGE'],
    ['a prefix of 129', { sticky: 'ip', stickyIpv6Prefix: 129 }, 'ERR_OUT_OF_RANGE'],
    ['a prefix that is a string', { sticky: 'ip', stickyIpv6Prefix: '64' }, 'ERR_INVALID_ARG_TYPE'],
  ])('refuses %s', (_name, options, code) => {
    expect(() => resolveSettings({ exec, ...options } as never)).toThrow(expect.objectContaining({ code }));
  });

  it('says why sticky and cpuLocal cannot go together', () => {
    expect(() => resolveSettings({ exec, sticky: 'ip', cpuLocal: true })).toThrow(/cannot be used with cpuLocal: true/);
  });

  it.each<[object, { sticky: 'ip' | false; stickyIpv6Prefix: number }]>([
    [{}, { sticky: false, stickyIpv6Prefix: 128 }],
    [{ sticky: false }, { sticky: false, stickyIpv6Prefix: 128 }],
    [{ sticky: 'ip' }, { sticky: 'ip', stickyIpv6Prefix: 128 }],
    [
      { sticky: 'ip', stickyIpv6Prefix: 64 },
      { sticky: 'ip', stickyIpv6Prefix: 64 },
    ],
  ])('resolves %j', (options, expected) => {
    expect(resolveSettings({ exec, ...options })).toMatchObject(expected);
  });
});
