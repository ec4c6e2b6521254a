// One worker cannot make the primary hold sockets without limit (issue 36, row 3): a real startCluster
// primary (fixtures/supervisor.js) whose worker (fixtures/junk-worker.js) listens on address after
// address, or asks for port reservations, and the primary's fds read from /proc.
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveSettings } from '../lib/supervisor/core/settings';
import { type Fixture, startFixture, stopAll } from './helpers/processes';

afterEach(() => stopAll());

interface State {
  pid: number;
  pids: number[];
  ports: number[];
}

async function start(options: object): Promise<{ fixture: Fixture; ready: State }> {
  const fixture = startFixture('supervisor.js', [JSON.stringify({ exec: 'junk-worker.js', workers: 2, ...options })], {}, { execArgv: ['--no-warnings'] });
  return { fixture, ready: await fixture.next<State>('ready') };
}

const fds = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;

// The sockets the process holds, by their /proc link ("socket:[inode]").
function sockets(pid: number): Set<string> {
  const links = fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '';
    }
  });
  return new Set(links.filter((link) => link.startsWith('socket:')));
}

// How many of `these` sockets the process still holds once that is `target`; bounded (tries x 200 ms).
async function settledHeld(pid: number, these: Set<string>, target: number, tries = 100): Promise<number> {
  const held = () => [...sockets(pid)].filter((socket) => these.has(socket)).length;
  for (let i = 0; i < tries && held() !== target; i++) await new Promise((resolve) => setTimeout(resolve, 200));
  return held();
}

// The primary's fd count once it equals `target` (or, without one, reads the same twice 200 ms apart); bounded.
async function settledFds(pid: number, target?: number, tries = 50): Promise<number> {
  let last = -1;
  for (let i = 0; i < tries; i++) {
    const now = fds(pid);
    if (now === (target ?? last)) return now;
    last = now;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return fds(pid);
}

const hosts = (from: number, count: number) => Array.from({ length: count }, (_, i) => `127.0.${Math.floor((from + i) / 250)}.${((from + i) % 250) + 2}`);

describe('maxSocketsPerWorker', () => {
  it.each([
    ['the default', undefined, 64],
    ['1', 1, 1],
    ['1000', 1_000, 1_000],
    ['0', 0, 'ERR_OUT_OF_RANGE'],
    ['-1', -1, 'ERR_OUT_OF_RANGE'],
    ['1.5', 1.5, 'ERR_OUT_OF_RANGE'],
    ['a string', '64', 'ERR_INVALID_ARG_TYPE'],
    ['NaN', Number.NaN, 'ERR_OUT_OF_RANGE'],
  ])('option %s', (_, value, expected) => {
    const resolve = () => resolveSettings({ exec: 'app.js', maxSocketsPerWorker: value as number }).maxSocketsPerWorker;
    if (typeof expected === 'number') expect(resolve()).toBe(expected);
    else expect(resolve).toThrow(expect.objectContaining({ code: expected, message: expect.stringContaining('options.maxSocketsPerWorker') }));
  });

  it('a worker listening on 150 addresses: the primary lends it 64 (its first listen included), refuses the rest with a code, and keeps serving', async () => {
    const { fixture, ready } = await start({});
    const before = await settledFds(ready.pid);
    fixture.child.send({ type: 'listen', hosts: hosts(0, 150), slot: 0 });
    const { results } = await fixture.next<{ results: { host: string; port?: number; code?: string; message?: string }[] }>('listen', 60_000);
    const lent = results.filter((result) => result.port !== undefined);
    const refused = results.filter((result) => result.port === undefined);
    expect(lent).toHaveLength(63);
    expect(new Set(refused.map((result) => result.code))).toEqual(new Set(['ERR_REUSEPORT_TOO_MANY_SOCKETS']));
    expect(refused[0]?.message).toMatch(/already holds 64 slot sockets.*maxSocketsPerWorker: 64/);
    // Each address lent costs the primary one socket per slot (2 here), and nothing more.
    expect(await settledFds(ready.pid)).toBeLessThanOrEqual(before + 63 * 2);

    // A server closed gives its sockets back: the next address is lent.
    const [first] = lent;
    fixture.child.send({ type: 'unlisten', host: first?.host, slot: 0 });
    await fixture.next('unlisten');
    fixture.child.send({ type: 'listen', hosts: hosts(200, 1), slot: 0 });
    const again = await fixture.next<{ results: { port?: number; code?: string }[] }>('listen');
    expect(again.results[0]?.port).toBeGreaterThan(0);

    // The other worker has a budget of its own.
    fixture.child.send({ type: 'listen', hosts: hosts(1, 2), slot: 1 });
    const other = await fixture.next<{ results: { port?: number }[] }>('listen');
    expect(other.results.map((result) => result.port)).toEqual([lent[1]?.port, lent[2]?.port]);
  }, 90_000);

  it('port reservations: at most maxSocketsPerWorker for one worker, and closed once their worker is gone and none asked within slotTimeoutMs', async () => {
    const { fixture, ready } = await start({ maxSocketsPerWorker: 3, slotTimeoutMs: 1_000 });
    const before = await settledFds(ready.pid);
    const socketsBefore = sockets(ready.pid);
    const requests = hosts(0, 5).map((address, i) => ({ cmd: 'NODE_REUSEPORT', act: 'reserve', seq: 2_000_000 + i, address, ipv6Only: false }));
    // The worker waits for every reply (up to 10 s, no longer than they take) before it answers.
    fixture.child.send({ type: 'junk', messages: requests, slot: 0, waitMs: 10_000 });
    const { replies } = await fixture.next<{ replies: { act: string; port?: number; error?: { code?: string; message: string } }[] }>('junk');
    expect(replies.slice(0, 3).map((reply) => reply.port)).toEqual([expect.any(Number), expect.any(Number), expect.any(Number)]);
    expect(replies.slice(3).map((reply) => reply.error?.code)).toEqual(['ERR_REUSEPORT_TOO_MANY_SOCKETS', 'ERR_REUSEPORT_TOO_MANY_SOCKETS']);
    expect(replies[3]?.error?.message).toMatch(/already holds 3 port reservations/);
    expect(await settledFds(ready.pid, before + 3)).toBe(before + 3);
    // The three reservations' sockets: counted by themselves from here, since a killed worker's
    // replacement (its IPC channel, its slot socket after slotTimeoutMs) may come late on a busy machine.
    const reserved = new Set([...sockets(ready.pid)].filter((socket) => !socketsBefore.has(socket)));
    expect(reserved.size).toBe(3);

    // The same address again costs nothing more, and the other worker may join it.
    fixture.child.send({ type: 'junk', messages: [{ ...requests[0], seq: 2_000_010 }], slot: 1, waitMs: 10_000 });
    const joined = await fixture.next<{ replies: { port?: number }[] }>('junk');
    expect(joined.replies[0]?.port).toBe(replies[0]?.port);

    // Worker 0 gone: its two reservations of its own close after slotTimeoutMs; the shared one stays.
    fixture.child.send({ type: 'kill', slot: 0 });
    expect(await settledHeld(ready.pid, reserved, 1)).toBe(1);
    // Worker 1 gone too: the last one closes.
    fixture.child.send({ type: 'state' });
    await fixture.next('state');
    fixture.child.send({ type: 'kill', slot: 1 });
    expect(await settledHeld(ready.pid, reserved, 0)).toBe(0);
  }, 60_000);
});
