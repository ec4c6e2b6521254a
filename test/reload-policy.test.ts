// How startCluster replaces workers: old workers drain side by side (maxDraining caps how many at
// once), a reload reports what its drains cut, a reload to a broken release stops at its first slot
// and keeps the old workers serving (minUptimeMs), and a slot whose workers keep dying young stops
// restarting after maxRestarts ('crash-loop'), its socket lent to the live workers, /ready 200 and
// "degraded". Real processes: a primary (fixtures/policy-supervisor.js) and its workers, whose
// release is a JSON file the test rewrites. Orders are asserted from the supervisor's own event
// times, not from durations, so a busy machine cannot break them.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchOnce, fetchPath } from './helpers/http';
import { SeenProcesses } from './helpers/pids';
import { type Fixture, startFixture, stopAll } from './helpers/processes';
import { freePort } from './helpers/ports';

interface PolicyEvent {
  name: string;
  slots?: number[];
  at: number;
  slot?: number;
  pid?: number;
  code?: number | string | null;
  expected?: boolean;
  serving?: number;
  stopped?: number[];
  restarts?: number;
  cut?: number;
  pids?: number[];
  message?: string;
}

interface State {
  pid: number;
  pids: number[];
  ready: boolean;
  stopped: number[];
  healthPort?: number;
  events: PolicyEvent[];
}

// The primaries and workers seen, killed afterwards only while each pid is still that process.
const pids = new SeenProcesses();
afterEach(async () => {
  pids.killAll();
  await stopAll();
});

// A release file the workers read at start; `ship` rewrites it.
function release(policy: object) {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-policy-')), 'release.json');
  fs.writeFileSync(file, JSON.stringify(policy));
  return { file, ship: (next: object) => fs.writeFileSync(file, JSON.stringify(next)) };
}

async function start(options: object, policyFile: string, port: number): Promise<{ primary: Fixture; state: State }> {
  const primary = startFixture('policy-supervisor.js', [JSON.stringify({ workers: 2, ...options })], { POLICY_FILE: policyFile, POLICY_PORT: String(port) });
  const state = await primary.next<State>('ready', 20_000);
  for (const pid of [state.pid, ...state.pids]) pids.add(pid);
  return { primary, state };
}

async function ask<T extends State>(primary: Fixture, type: string, reply: string, timeoutMs = 40_000): Promise<T> {
  primary.child.send({ type });
  const answer = await primary.next<T>(reply, timeoutMs);
  for (const pid of answer.pids) pids.add(pid);
  return answer;
}

// One long response on each worker (the kernel picks the worker: bounded tries), left open.
async function streamOnEveryWorker(port: number, workers: number[]): Promise<http.ClientRequest[]> {
  const requests: http.ClientRequest[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < 60 && seen.size < workers.length; i++) {
    const request = http.get({ host: '127.0.0.1', port, path: '/stream', agent: false });
    request.on('error', () => undefined);
    const pid = await new Promise<string>((resolve) => request.once('response', (response) => resolve(String(response.headers['x-pid']))));
    if (seen.has(pid)) request.destroy();
    else {
      seen.add(pid);
      requests.push(request);
    }
  }
  expect([...seen].sort()).toEqual(workers.map(String).sort());
  return requests;
}

// minUptimeMs counts from the fork: a broken worker that listens and dies some ms later must do all that
// within it on a slow machine (a plain build here starts and listens in about 0.25 s, a sanitizer build
// under load took over 1.2 s): 6 s leaves room for a start 20 times slower. Not more, since every reload
// that succeeds lives it out twice (the canary, then the wave). One that exits before it listens fails
// whatever the time: 3 s.
const minUptimeFor = (broken: { crash: string }) => (broken.crash === 'listened' ? 6_000 : 3_000);

const eventOf = (state: State, name: string, match: Partial<PolicyEvent>) =>
  state.events.find((event) => event.name === name && Object.entries(match).every(([key, value]) => event[key as keyof PolicyEvent] === value));

describe('reload: old workers drain side by side', () => {
  it.each([
    // No cap: slot 1's new worker is forked as slot 0's old one begins to drain, and must listen before that
    // drain is cut (drainTimeoutMs): 8 s leaves room for a start 30 times slower than here (see minUptimeFor).
    // With the cap the order does not depend on it: 5 s.
    ['no cap (the default): the next slot is replaced while the last old worker still drains', { drainTimeoutMs: 8_000 }, true],
    ['maxDraining: 1: the next slot waits until the old worker is gone', { maxDraining: 1, drainTimeoutMs: 5_000 }, false],
  ])(
    '%s; the result and the reload event count what the drains cut',
    async (_name, cap, sideBySide) => {
      const port = await freePort();
      const { file } = release({});
      const { primary, state } = await start({ ...cap, minUptimeMs: 0 }, file, port);
      const streams = await streamOnEveryWorker(port, state.pids);
      const done = await ask<State & { result: { pids: number[]; cut: number; killed: number[] } }>(primary, 'reload', 'reloaded');
      for (const stream of streams) stream.destroy();
      // Each old worker held one response it could not finish: both are cut at the drain's timeout.
      expect(done.result).toEqual({ pids: done.pids, cut: 2, killed: [] });
      expect(eventOf(done, 'reload', {})).toMatchObject({ pids: done.pids, cut: 2, killed: [] });
      const [old0, old1] = state.pids;
      const oldExit = eventOf(done, 'exit', { pid: old0 })?.at as number;
      const newListen = eventOf(done, 'listening', { slot: 1, pid: done.pids[1] })?.at as number;
      expect(eventOf(done, 'exit', { pid: old1 })).toBeDefined();
      // Side by side: slot 1's new worker listened while slot 0's old one was still draining.
      expect(newListen < oldExit).toBe(sideBySide);
    },
    90_000,
  );
});

describe('reload to a broken release', () => {
  it.each([
    ['exits before it listens', { crash: 'boot' }],
    ['listens, then dies within minUptimeMs', { crash: 'listened', afterMs: 100 }],
    ['listens, then dies 300 ms later', { crash: 'listened', afterMs: 300 }],
  ])(
    'whose worker %s: the reload stops at slot 0 and rejects, and the old workers keep serving',
    async (_name, broken) => {
      const port = await freePort();
      const { file, ship } = release({});
      const { primary, state } = await start({ minUptimeMs: minUptimeFor(broken) }, file, port);
      ship(broken);
      const failed = await ask<State & { error: { code: string; slot: number; slots: number[]; message: string } }>(primary, 'reload', 'reload-error');
      expect(failed.error).toMatchObject({ code: 'ERR_REUSEPORT_RELOAD_FAILED', slot: 0, slots: [0] });
      expect(failed.error.message).toMatch(/the reload stopped at slot 0: .*slot 0 and the slots after it keep their old workers/);
      expect(eventOf(failed, 'reload-failed', { code: 'ERR_REUSEPORT_RELOAD_FAILED' })).toBeDefined();
      expect(failed.pids).toEqual(state.pids);
      const answers = new Set<string>();
      for (let i = 0; i < 40; i++) answers.add(await fetchOnce(port));
      expect([...answers].sort()).toEqual(state.pids.map(String).sort());
      // The fixed release reloads as usual (two minUptimeMs: the canary's, then the wave's).
      ship({});
      const fixed = await ask<State & { result: { pids: number[] } }>(primary, 'reload', 'reloaded', 90_000);
      expect(fixed.result.pids).toHaveLength(2);
      expect(fixed.result.pids.filter((pid) => state.pids.includes(pid))).toEqual([]);
    },
    150_000,
  );
});

describe('reload in waves: a canary, then every other slot at once', () => {
  it('slot 0 first; then the new workers of slots 1-3 start together, and their old workers drain only once all of them lived minUptimeMs', async () => {
    const port = await freePort();
    const { file } = release({});
    const { primary, state } = await start({ workers: 4, minUptimeMs: 1_000 }, file, port);
    const done = await ask<State & { result: { pids: number[] } }>(primary, 'reload', 'reloaded');
    expect(done.result.pids).toHaveLength(4);
    expect(done.result.pids.filter((pid) => state.pids.includes(pid))).toEqual([]);
    const fresh = (name: string, slot: number) => eventOf(done, name, { slot, pid: done.pids[slot] })?.at as number;
    // The canary: slot 1's new worker is forked only after slot 0's new one listened (and lived minUptimeMs).
    expect(fresh('fork', 1)).toBeGreaterThan(fresh('listening', 0));
    const waveForks = [1, 2, 3].map((slot) => fresh('fork', slot));
    const waveListens = [1, 2, 3].map((slot) => fresh('listening', slot));
    // One wave: every new worker of slots 1-3 was forked before any of them listened.
    expect(Math.max(...waveForks)).toBeLessThan(Math.min(...waveListens));
    // Their old workers left after every new worker of the wave listened.
    const oldExits = [1, 2, 3].map((slot) => eventOf(done, 'exit', { pid: state.pids[slot] })?.at as number);
    expect(Math.min(...oldExits)).toBeGreaterThan(Math.max(...waveListens));
    const answers = new Set<string>();
    for (let i = 0; i < 80 && answers.size < 4; i++) answers.add(await fetchOnce(port));
    expect([...answers].sort()).toEqual(done.result.pids.map(String).sort());
  }, 60_000);

  it.each([
    ['exits before it listens', { crash: 'boot', slots: [2] }],
    ['listens, then dies 300 ms later', { crash: 'listened', afterMs: 300, slots: [2] }],
  ])(
    "a wave whose slot-2 worker %s: the reload rejects naming slot 2, which keeps its old worker; the wave's other slot keeps its new one",
    async (_name, broken) => {
      const port = await freePort();
      const { file, ship } = release({});
      const { primary, state } = await start({ workers: 3, minUptimeMs: minUptimeFor(broken) }, file, port);
      ship(broken);
      const failed = await ask<State & { error: { code: string; slot: number; slots: number[]; message: string } }>(primary, 'reload', 'reload-error', 90_000);
      expect(failed.error).toMatchObject({ code: 'ERR_REUSEPORT_RELOAD_FAILED', slot: 2, slots: [2] });
      expect(failed.error.message).toMatch(
        /the wave of slots 1-2: the new workers of slot 2 .*that slot keeps its old worker, the wave's other 1 slot kept its new worker/,
      );
      expect(eventOf(failed, 'reload-failed', { code: 'ERR_REUSEPORT_RELOAD_FAILED' })?.slots).toEqual([2]);
      expect(failed.pids[2]).toBe(state.pids[2]);
      expect(state.pids).not.toContain(failed.pids[0]);
      expect(state.pids).not.toContain(failed.pids[1]);
      // Slot 1's old worker was only just told to drain, and may still accept: asked once it is gone (bounded,
      // past the default drainTimeoutMs of 10 s).
      const oldExit = (now: State) => eventOf(now, 'exit', { pid: state.pids[1] });
      const deadline = Date.now() + 20_000;
      let now: State = failed;
      for (let i = 0; i < 400 && !oldExit(now) && Date.now() < deadline; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        now = await ask(primary, 'state', 'state');
      }
      expect(oldExit(now)).toBeDefined();
      const answers = new Set<string>();
      for (let i = 0; i < 80 && answers.size < 3; i++) answers.add(await fetchOnce(port));
      expect([...answers].sort()).toEqual(failed.pids.map(String).sort());
    },
    150_000,
  );
});

describe('crash loops', () => {
  it('a slot whose workers keep dying young stops restarting; the other keeps serving the whole port, /ready is 200 and says degraded', async () => {
    const port = await freePort();
    const { file, ship } = release({});
    // minUptimeMs as for a broken release (see minUptimeFor): each restart must listen and die within it.
    const minUptimeMs = minUptimeFor({ crash: 'listened' });
    const { primary, state } = await start({ maxRestarts: 3, restartDelayMs: 10, minUptimeMs, health: { port: 0 } }, file, port);
    // Past minUptimeMs, so the kill below is no crash of a young worker: the count starts with the next death.
    await new Promise((resolve) => setTimeout(resolve, minUptimeMs + 100));
    ship({ crash: 'listened', afterMs: 50 });
    primary.child.send({ type: 'kill', slot: 1 });
    let now = state;
    for (let i = 0; i < 200 && !eventOf(now, 'crash-loop', {}); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      now = await ask(primary, 'state', 'state');
    }
    const loop = eventOf(now, 'crash-loop', { slot: 1 });
    expect(loop).toMatchObject({ slot: 1, code: 1, restarts: 3, stopped: [1], serving: 1 });
    // Four deaths in a row after the kill: the first replacement and three restarts.
    expect(now.events.filter((event) => event.name === 'exit' && event.slot === 1 && event.code === 1)).toHaveLength(4);
    expect(now.ready).toBe(true);
    expect(now.stopped).toEqual([1]);
    // Slot 1's socket is lent to slot 0's worker: every connection is answered, by it.
    for (let i = 0; i < 40; i++) expect(await fetchOnce(port)).toBe(String(state.pids[0]));
    const ready = JSON.parse(await fetchPath(now.healthPort as number, '/ready')) as { ready: boolean; degraded: boolean; stopped: number[] };
    expect(ready).toMatchObject({ ready: true, degraded: true, stopped: [1] });
    const metrics = await fetchPath(now.healthPort as number, '/metrics');
    expect(metrics).toMatch(/reuseport_slot_stopped\{slot="1"\} 1/);
    expect(metrics).toMatch(/reuseport_slot_stopped\{slot="0"\} 0/);
    // No more restarts once stopped.
    const exits = now.events.filter((event) => event.name === 'exit').length;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await ask(primary, 'state', 'state')).events.filter((event) => event.name === 'exit')).toHaveLength(exits);
  }, 90_000);
});
