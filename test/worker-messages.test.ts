// What a worker's app sends on the supervisor's channel cannot take the primary down (issue 36, rows
// 1 and 6): a real startCluster primary (fixtures/supervisor.js), workers (fixtures/junk-worker.js)
// that send malformed messages through process.send, and the primary's health server read over HTTP.
import fs from 'node:fs';
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchOnce } from './helpers/http';
import { type Fixture, startFixture, stopAll } from './helpers/processes';

afterEach(() => stopAll());

interface State {
  pid: number;
  pids: number[];
  ports: unknown[];
  healthPort: number;
  stats: { slot: number; accepted: unknown }[];
  warnings: { code?: string; message: string }[];
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 5_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${path} timed out`)));
    request.on('error', reject);
  });
}

async function start(options: object = {}): Promise<{ fixture: Fixture; ready: State }> {
  const fixture = startFixture(
    'supervisor.js',
    [JSON.stringify({ exec: 'junk-worker.js', workers: 2, health: { port: 0 }, ...options })],
    {},
    { execArgv: ['--no-warnings'] },
  );
  const ready = await fixture.next<State>('ready');
  return { fixture, ready };
}

// The worker waits for the primary's replies to the messages with a seq (up to 10 s, and no longer than
// they take: a busy machine may answer late), then answers; without a seq it answers at once.
const junk = (fixture: Fixture, messages: object[], slot = 0) => {
  fixture.child.send({ type: 'junk', messages, slot, waitMs: 10_000 });
  return fixture.next<State & { replies: unknown[] }>('junk');
};

// The primary is alive, serves, and its health server tells only sound figures (`exact`: the ports
// are the ones the workers listen on; a well-formed 'listening' of any port is not told from a UDP
// socket's own, so the fuzz, which sends such, checks only that they are ports). Resolves with its state.
async function expectServing(fixture: Fixture, ready: State, exact = true): Promise<State> {
  fixture.child.send({ type: 'state' });
  const state = await fixture.next<State>('state');
  expect(state.pids).toHaveLength(2);
  expect(await fetchOnce(Number(ready.ports[0]))).toMatch(/^\d+$/);
  const metrics = await get(ready.healthPort, '/metrics');
  expect(metrics.body).not.toMatch(/NaN|not possible/);
  expect(metrics.status).toBe(200);
  expect(metrics.body).toMatch(/reuseport_slot_accepted_total\{slot="0"\} \d+/);
  const status = await get(ready.healthPort, '/status');
  expect(status.status).toBe(200);
  const { ports } = JSON.parse(status.body) as { ports: unknown[] };
  if (exact) expect(ports).toEqual(ready.ports);
  for (const port of ports) expect(Number.isInteger(port) && (port as number) > 0 && (port as number) < 65_536, String(port)).toBe(true);
  for (const slot of state.stats) expect(Number.isSafeInteger(slot.accepted) && (slot.accepted as number) >= 0, JSON.stringify(slot)).toBe(true);
  return state;
}

const M = (fields: object) => ({ cmd: 'NODE_REUSEPORT', ...fields });

describe('malformed messages from a worker', () => {
  it.each([
    ['failed without error', [M({ act: 'failed', slot: 0 })]],
    ['failed with error null', [M({ act: 'failed', slot: 0, error: null })]],
    ['beat without accepted', [M({ act: 'beat', slot: 0 })]],
    ['beat with a negative count', [M({ act: 'beat', slot: 0, accepted: { 0: -5 } })]],
    ['beat with a string count', [M({ act: 'beat', slot: 0, accepted: { 0: 'x' } })]],
    ['listening with a string port', [M({ act: 'listening', slot: 0, port: '99999' })]],
    ['listening with a port past 65535', [M({ act: 'listening', slot: 0, port: 99999 })]],
    ['drained with a string count', [M({ act: 'drained', destroyed: 'x' })]],
    ['a release of nothing', [M({ act: 'release' })]],
    ['an unknown act', [M({ act: 'explode' })]],
  ])('%s: the primary keeps serving, with sound figures, and warns naming the worker', async (_, messages) => {
    const { fixture, ready } = await start();
    const answered = await junk(fixture, messages);
    // The state after the junk's answer, so that the warnings it raised (on a later tick) are in.
    const { warnings } = await expectServing(fixture, ready);
    const warning = warnings.find((each) => each.code === 'REUSEPORT_BAD_MESSAGE');
    expect(warning?.message).toContain(`pid ${answered.pid}, slot 0`);
  });

  it('a counter a worker sets back cannot go down: the next smaller count adds nothing', async () => {
    const { fixture, ready } = await start();
    await junk(fixture, [M({ act: 'beat', slot: 0, accepted: { 0: 50 } }), M({ act: 'beat', slot: 0, accepted: { 0: 10 } })]);
    await expectServing(fixture, ready);
    fixture.child.send({ type: 'state' });
    const state = await fixture.next<State>('state');
    expect(state.stats[0]?.accepted).toBeGreaterThanOrEqual(50);
  });

  it('a malformed request with a seq gets a coded error reply, an unknown one too; the worker is told, not the primary harmed', async () => {
    const { fixture, ready } = await start();
    const answered = await junk(fixture, [
      M({ act: 'slot', seq: 1_000_001, address: 5, port: 0, ipv6Only: false, group: false }),
      M({ act: 'keys-request', seq: 1_000_002, pad: 'x'.repeat(70_000) }),
      M({ act: 'teleport', seq: 1_000_003 }),
      M({ act: 'reserve', seq: 1_000_004, address: '127.0.0.1' }),
    ]);
    expect(answered.replies).toEqual([
      expect.objectContaining({
        act: 'error',
        seq: 1_000_001,
        error: expect.objectContaining({ code: 'ERR_REUSEPORT_BAD_MESSAGE', message: expect.stringMatching(/address must be/) }),
      }),
      expect.objectContaining({
        act: 'error',
        seq: 1_000_002,
        error: expect.objectContaining({ code: 'ERR_REUSEPORT_BAD_MESSAGE', message: expect.stringMatching(/at most 65536/) }),
      }),
      expect.objectContaining({
        act: 'error',
        seq: 1_000_003,
        error: expect.objectContaining({ code: 'ERR_REUSEPORT_BAD_MESSAGE', message: expect.stringMatching(/unknown act "teleport"/) }),
      }),
      expect.objectContaining({
        act: 'error',
        seq: 1_000_004,
        error: expect.objectContaining({ code: 'ERR_REUSEPORT_BAD_MESSAGE', message: expect.stringMatching(/ipv6Only must be a boolean/) }),
      }),
    ]);
    await expectServing(fixture, ready);
  });

  it('a flood of bad messages prints a bounded number of warnings', async () => {
    const { fixture, ready } = await start();
    await junk(
      fixture,
      Array.from({ length: 500 }, (_, i) => M({ act: 'beat', slot: 0, accepted: { 0: -i } })),
    );
    const state = await expectServing(fixture, ready);
    const warnings = state.warnings.filter((each) => each.code === 'REUSEPORT_BAD_MESSAGE');
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings.length).toBeLessThanOrEqual(5);
  });
});

describe('fuzz: random and malformed messages from a worker', () => {
  it('for a few seconds: the primary keeps serving throughout, with a stable fd count', async () => {
    const { fixture, ready } = await start();
    const fds = () => fs.readdirSync(`/proc/${ready.pid}/fd`).length;
    // The count once the health server's connections of the checks have closed: the same on two reads 200 ms apart (bounded).
    const settled = async (target?: number) => {
      let last = -1;
      for (let i = 0; i < 50; i++) {
        const now = fds();
        if (now === (target ?? last)) return now;
        last = now;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      return fds();
    };
    // Settled first: what the primary holds once both workers serve.
    await expectServing(fixture, ready);
    const before = await settled();
    const seed = Math.floor(Math.random() * 2 ** 31);
    fixture.child.send({ type: 'fuzz', ms: 3_000, seed, avoid: ready.ports[0], slot: 0 });
    const done = fixture.next<State & { sent: number }>('fuzz', 30_000);
    // Served while the fuzz runs: every answer within its 5 s bound (bounded in count and time).
    const served: string[] = [];
    let finished = false;
    void done.then(() => {
      finished = true;
    });
    for (let i = 0; i < 200 && !finished; i++) {
      served.push(await fetchOnce(Number(ready.ports[0])));
      const live = await get(ready.healthPort, '/live');
      expect(live.status, `seed ${seed}`).toBe(200);
    }
    const result = await done;
    expect(result.sent, `seed ${seed}`).toBeGreaterThan(1_000);
    expect(served.length).toBeGreaterThan(0);
    const after = await expectServing(fixture, ready, false);
    expect(await settled(before), `seed ${seed}`).toBe(before);
    expect(after.warnings.filter((each) => each.code === 'REUSEPORT_BAD_MESSAGE').length, `seed ${seed}`).toBeLessThanOrEqual(10);
  }, 40_000);
});
