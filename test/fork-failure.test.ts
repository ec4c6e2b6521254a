// A fork that fails (issue 36: `spawn EMFILE` under a low fd limit): node:cluster's Worker gets no pid,
// an 'error' follows on the next tick and no 'exit' ever does. A real startCluster primary
// (fixtures/supervisor.js) takes every free fd of its own, a worker is killed, and its replacement's
// fork fails: the primary lives, says so ('fork-failed'), and restarts the slot once fds are free.
import { afterEach, describe, expect, it } from 'vitest';
import { fetchOnce } from './helpers/http';
import { startFixture, stopAll } from './helpers/processes';

afterEach(() => stopAll());

interface State {
  pid: number;
  pids: number[];
  ports: number[];
  events: { name: string; slot?: number; code?: string; message?: string; pid?: number }[];
}

describe('a fork that fails', () => {
  it('spawn EMFILE: a failed start of the slot, a fork-failed event, and the slot restarted with the back-off once fds are free', async () => {
    // Nothing else that needs a new fd runs on a timer meanwhile (the foreign check, stall sampling).
    const options = { exec: 'supervised-worker.js', workers: 2, foreignCheckMs: 600_000, stallThresholdMs: 0, restartDelayMs: 200 };
    const fixture = startFixture('supervisor.js', [JSON.stringify(options)]);
    const ready = await fixture.next<State>('ready');
    const [port] = ready.ports;
    const killed = ready.pids[0] as number;

    fixture.child.send({ type: 'exhaust-fds' });
    expect((await fixture.next<{ held: number }>('exhaust-fds')).held).toBeGreaterThan(0);
    fixture.child.send({ type: 'kill', slot: 0 });
    // Bounded: the first failed fork comes within the first restart delay.
    let state: State | undefined;
    const failing = Date.now() + 20_000;
    for (let i = 0; i < 400 && Date.now() < failing; i++) {
      fixture.child.send({ type: 'state' });
      state = await fixture.next<State>('state');
      if (state.events.some((event) => event.name === 'fork-failed')) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    fixture.child.send({ type: 'release-fds' });
    await fixture.next('release-fds');
    const failed = state?.events.find((event) => event.name === 'fork-failed');
    expect(failed).toMatchObject({ slot: 0, code: 'EMFILE', message: expect.stringMatching(/spawn .*EMFILE/) });

    // The slot comes back (the back-off's next try), and the other slot served throughout. Its new
    // worker listening, not only forked: with stallThresholdMs 0 nothing lends slot 0's socket, so a
    // request hashed to it waits for that worker's boot (longer than a fetch's 5 s on a slow machine).
    const relisted = (events: State['events']) => events.some((event) => event.name === 'listening' && event.slot === 0 && event.pid !== killed);
    let back: State | undefined;
    const returning = Date.now() + 30_000;
    for (let i = 0; i < 300 && Date.now() < returning; i++) {
      fixture.child.send({ type: 'state' });
      back = await fixture.next<State>('state');
      if (back.pids.length === 2 && !back.pids.includes(killed) && relisted(back.events)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(back?.pids).toHaveLength(2);
    expect(back?.pids).not.toContain(killed);
    expect(relisted(back?.events ?? [])).toBe(true);
    const answers = new Set<string>();
    for (let i = 0; i < 40 && answers.size < 2; i++) answers.add(await fetchOnce(port as number));
    expect(answers.size).toBe(2);
    // A failed fork is no 'exit' of a process that never was.
    expect(back?.events.filter((event) => event.name === 'exit' && event.pid === 0)).toEqual([]);
  }, 60_000);
});
