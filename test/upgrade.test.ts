// supervisor.upgrade(): the whole service (supervisor and workers) replaced by a successor that adopts
// the same slot sockets; broken, late and missing successors leave the old one serving; bad input.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadBinding } from '../lib/binding';
import { startCluster } from '../lib/index';
import { HANDOVER_ENV } from '../lib/supervisor/deploy/handover';
import { STICKY_SOURCES, stickySlotOf } from './helpers/bpf';
import { countResponses, fetchFrom, fetchOnce } from './helpers/http';
import { fixtures } from './helpers/processes';
import { alive, parentOf, SeenProcesses } from './helpers/pids';
import { listeningInodes, socketInodesOf } from './helpers/proc-net';

interface Line {
  pid: number;
  gen: 'ready' | 'upgrade' | 'upgrade-failed' | 'upgrade-rejected' | 'failed';
  pids?: number[];
  ports?: number[];
  healthPort?: number;
  plan?: { reasons: string[] };
  steering?: { enabled: boolean; sticky?: boolean; reason: string }[];
  inodes?: string[];
  successor?: number;
  error?: { code: string; message: string };
}

/** Every process a test started or saw (supervisors of each generation, their workers), killed by pid after it. */
const seen = new SeenProcesses();
afterEach(() => seen.killAll());

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Starts test/fixtures/upgradable.js; its generations' JSON lines arrive on the shared stdout. */
function service(options: object, env: Record<string, string> = {}) {
  const args = [path.join(fixtures, 'upgradable.js'), JSON.stringify({ exec: 'supervised-worker.js', ...options })];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  if (child.pid) seen.add(child.pid);
  const lines: Line[] = [];
  const waiting: { match: (line: Line) => boolean; resolve: (line: Line) => void }[] = [];
  let buffer = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buffer += chunk;
    for (let end = buffer.indexOf('\n'); end >= 0; end = buffer.indexOf('\n')) {
      const line = JSON.parse(buffer.slice(0, end)) as Line;
      buffer = buffer.slice(end + 1);
      seen.add(line.pid);
      for (const pid of line.pids ?? []) seen.add(pid);
      if (line.successor) seen.add(line.successor);
      lines.push(line);
      for (const waiter of waiting.splice(0)) {
        if (waiter.match(line)) waiter.resolve(line);
        else waiting.push(waiter);
      }
    }
  });
  const next = (match: (line: Line) => boolean, timeoutMs = 20_000) =>
    new Promise<Line>((resolve, reject) => {
      const found = lines.find(match);
      if (found) return resolve(found);
      const timer = setTimeout(() => reject(new Error(`no such line within ${timeoutMs} ms; saw ${JSON.stringify(lines).slice(0, 2000)}`)), timeoutMs);
      waiting.push({ match, resolve: (line) => (clearTimeout(timer), resolve(line)) });
    });
  return { child, lines, next };
}

const slotInodes = (line: Line, port: number) => {
  // The listening sockets of the port held by this supervisor (its slot sockets).
  const listening = new Set(
    fs
      .readFileSync('/proc/net/tcp', 'utf8')
      .split('\n')
      .filter(
        (row) =>
          row.trim().split(/\s+/)[3] === '0A' &&
          row
            .trim()
            .split(/\s+/)[1]
            ?.endsWith(`:${port.toString(16).toUpperCase().padStart(4, '0')}`),
      )
      .map((row) => row.trim().split(/\s+/)[9]),
  );
  return (line.inodes ?? []).filter((inode) => listening.has(inode)).sort();
};

describe('supervisor.upgrade()', () => {
  it('three upgrades in a row: each successor adopts the same sockets, serves, and the old supervisor exits 0', async () => {
    const svc = service({ workers: 2, upgradeOnSigusr2: true });
    let current = await svc.next((line) => line.gen === 'ready');
    const port = current.ports?.[0] as number;
    const sockets = slotInodes(current, port);
    expect(sockets).toHaveLength(2);
    for (let round = 1; round <= 3; round++) {
      const old = current;
      const exited = round === 1 ? new Promise<number | null>((resolve) => svc.child.once('exit', (code) => resolve(code))) : undefined;
      process.kill(old.pid, 'SIGUSR2');
      const upgrade = await svc.next((line) => line.gen === 'upgrade' && line.pid === old.pid);
      current = await svc.next((line) => line.gen === 'ready' && line.pid === upgrade.successor);
      expect(current.plan?.reasons.at(-1)).toMatch(new RegExp(`adopted 2 slot socket\\(s\\) on 127\\.0\\.0\\.1:${port} handed over by pid ${old.pid}`));
      expect(current.ports).toEqual([port]);
      // The very same sockets (no new one was opened), and only those listen on the port.
      expect(slotInodes(current, port)).toEqual(sockets);
      expect(current.steering?.[0]?.enabled).toBe(true);
      if (exited) expect(await exited).toBe(0);
      await until(() => !alive(old.pid) && (old.pids ?? []).every((pid) => !alive(pid)), 15_000);
      const served = await countResponses(port, 40);
      expect([...served.keys()].map(Number).sort()).toEqual([...(current.pids ?? [])].sort());
    }
  });

  it('the successor takes over the health socket too: the same health port answers before, during and after', async () => {
    const svc = service({ workers: 1, upgradeOnSigusr2: true, health: { port: 0 } });
    const old = await svc.next((line) => line.gen === 'ready');
    const health = old.healthPort as number;
    expect(health).toBeGreaterThan(0);
    expect(await fetchOnce(health)).toBe('{"error":"not found: GET /ready, /live, /metrics, /status or /exit"}\n');
    process.kill(old.pid, 'SIGUSR2');
    const upgrade = await svc.next((line) => line.gen === 'upgrade' && line.pid === old.pid);
    const successor = await svc.next((line) => line.gen === 'ready' && line.pid === upgrade.successor);
    expect(successor.healthPort).toBe(health);
    await until(() => !alive(old.pid), 15_000);
    expect(await fetchOnce(health)).toMatch(/not found/);
  });

  it('a successor that exits at once, one that never gets ready, and a command that does not exist leave the old one serving', async () => {
    // readyTimeoutMs left at its default: the successor's exit, not a timeout, must end the upgrade, and the
    // first workers may take long to start on a busy machine.
    const svc = service({ workers: 2 }, { FIXTURE_BROKEN_SUCCESSOR: 'exit' });
    const ready = await svc.next((line) => line.gen === 'ready');
    const port = ready.ports?.[0] as number;
    process.kill(ready.pid, 'SIGHUP');
    const failed = await svc.next((line) => line.gen === 'upgrade-rejected');
    expect(failed.error).toMatchObject({ code: 'ERR_REUSEPORT_UPGRADE_FAILED' });
    expect(failed.error?.message).toMatch(/exited \(3\) before it served every slot/);
    expect(svc.lines.filter((line) => line.gen === 'upgrade-failed')).toHaveLength(1);
    expect(await fetchOnce(port)).toMatch(/^\d+$/);

    // The short timeout for the successor only (upgrade()'s own option); the first worker has the default.
    const hanging = service({ workers: 1 }, { FIXTURE_BROKEN_SUCCESSOR: 'hang', UPGRADE_OPTIONS: JSON.stringify({ readyTimeoutMs: 1_500 }) });
    const first = await hanging.next((line) => line.gen === 'ready');
    // The successor is the old supervisor's child: found by its parent pid while it is there.
    const children = () =>
      fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name) && parentOf(Number(name)) === first.pid && !first.pids?.includes(Number(name)));
    process.kill(first.pid, 'SIGHUP');
    await until(() => children().length > 0, 10_000);
    const [successor] = children().map(Number);
    seen.add(successor);
    const late = await hanging.next((line) => line.gen === 'upgrade-rejected');
    expect(late.error?.message).toMatch(new RegExp(`the successor \\(pid ${successor}\\) did not serve every slot within 1500 ms`));
    // The late successor was stopped (and reaped: no child of the old supervisor but its workers).
    expect(children()).toEqual([]);
    expect(await fetchOnce(first.ports?.[0] as number)).toBe(String(first.pids?.[0]));

    const missing = service({ workers: 1 }, { UPGRADE_OPTIONS: JSON.stringify({ command: ['/nonexistent/node'] }) });
    const third = await missing.next((line) => line.gen === 'ready');
    process.kill(third.pid, 'SIGHUP');
    const notFound = await missing.next((line) => line.gen === 'upgrade-rejected');
    expect(notFound.error?.code).toBe('ERR_REUSEPORT_UPGRADE_FAILED');
    expect(notFound.error?.message).toMatch(/could not be started \(spawn \/nonexistent\/node ENOENT\)/);
    expect(await fetchOnce(third.ports?.[0] as number)).toBe(String(third.pids?.[0]));
  });

  it("a successor with more workers adopts the sockets it is given and opens a new slot's when its worker listens, still steered", async () => {
    const command = [process.execPath, path.join(fixtures, 'upgradable.js'), JSON.stringify({ exec: 'supervised-worker.js', workers: 3 })];
    const svc2 = service({ workers: 2 }, { UPGRADE_OPTIONS: JSON.stringify({ command }) });
    const old = await svc2.next((line) => line.gen === 'ready');
    const port = old.ports?.[0] as number;
    process.kill(old.pid, 'SIGHUP');
    const upgrade = await svc2.next((line) => line.gen === 'upgrade');
    const successor = await svc2.next((line) => line.gen === 'ready' && line.pid === upgrade.successor);
    expect(successor.pids).toHaveLength(3);
    expect(successor.ports).toEqual([port]);
    expect(successor.plan?.reasons.at(-1)).toMatch(/adopted 2 slot socket\(s\).*; slot 2 gets its socket when its worker listens there$/);
    expect(successor.steering?.[0]?.enabled).toBe(true);
    const served = await countResponses(port, 90);
    for (const pid of successor.pids ?? []) expect(served.get(String(pid)) ?? 0).toBeGreaterThan(0);
  });

  it('a successor with fewer workers serves the surplus sockets until their queues are empty, then closes them, highest slot first', async () => {
    const command = [process.execPath, path.join(fixtures, 'upgradable.js'), JSON.stringify({ exec: 'supervised-worker.js', workers: 1 })];
    const svc = service({ workers: 3 }, { UPGRADE_OPTIONS: JSON.stringify({ command }) });
    const old = await svc.next((line) => line.gen === 'ready');
    const port = old.ports?.[0] as number;
    const sockets = slotInodes(old, port);
    expect(sockets).toHaveLength(3);
    process.kill(old.pid, 'SIGHUP');
    const upgrade = await svc.next((line) => line.gen === 'upgrade');
    const successor = await svc.next((line) => line.gen === 'ready' && line.pid === upgrade.successor);
    expect(successor.plan?.reasons.at(-1)).toMatch(
      /adopted 3 slot socket\(s\).*; 2 beyond this supervisor's 1 slots are lent to its workers and get no new connection$/,
    );
    await until(() => !alive(old.pid), 15_000);
    // One of the handed-over sockets (slot 0's) is left, once slots 2 and 1 drained (steered away from, queues empty).
    await until(() => listeningInodes(port).length === 1, 15_000);
    expect(sockets).toContain(listeningInodes(port)[0]);
    const served = await countResponses(port, 30);
    expect([...served.keys()]).toEqual([String(successor.pids?.[0])]);
  });
});

describe("upgrade() with sticky: 'ip' and a different worker count", () => {
  // Which pid answered each of the 16 client addresses, three new connections each.
  async function answers(port: number): Promise<Map<string, Set<string>>> {
    const seen = new Map<string, Set<string>>();
    for (let round = 0; round < 3; round++) {
      for (const source of STICKY_SOURCES) seen.set(source, (seen.get(source) ?? new Set()).add(await fetchFrom(port, source)));
    }
    return seen;
  }

  it.each<[number, number]>([
    [2, 3],
    [3, 2],
  ])(
    '%i -> %i workers: the successor keeps the sticky program, each address served by the worker of its slot under the new count, surplus closed after it',
    async (from, to) => {
      // Stall protection at 5 s, not 80 ms: on a busy machine a worker starved of CPU for 80 ms would
      // have its slot lent, and its clients answered by another worker.
      const command = [
        process.execPath,
        path.join(fixtures, 'upgradable.js'),
        JSON.stringify({ exec: 'supervised-worker.js', workers: to, sticky: 'ip', stallThresholdMs: 5_000 }),
      ];
      const svc = service({ workers: from, sticky: 'ip', stallThresholdMs: 5_000 }, { UPGRADE_OPTIONS: JSON.stringify({ command }) });
      const old = await svc.next((line) => line.gen === 'ready');
      const port = old.ports?.[0] as number;
      const before = await answers(port);
      for (const source of STICKY_SOURCES) expect([...(before.get(source) ?? [])]).toEqual([String(old.pids?.[stickySlotOf(source, from)])]);
      process.kill(old.pid, 'SIGHUP');
      const upgrade = await svc.next((line) => line.gen === 'upgrade');
      const successor = await svc.next((line) => line.gen === 'ready' && line.pid === upgrade.successor);
      expect(successor.steering).toMatchObject([{ enabled: true, sticky: true }]);
      await until(() => !alive(old.pid), 15_000);
      await until(() => listeningInodes(port).length === to, 15_000);
      const after = await answers(port);
      for (const source of STICKY_SOURCES) expect([...(after.get(source) ?? [])]).toEqual([String(successor.pids?.[stickySlotOf(source, to)])]);
      // Only the addresses whose slot changed under the new count changed slot (rendezvous); for these 16, so many:
      const moved = STICKY_SOURCES.filter((source) => stickySlotOf(source, from) !== stickySlotOf(source, to));
      expect(moved.length).toBeGreaterThan(0);
      for (const source of moved) expect(stickySlotOf(source, Math.max(from, to))).toBe(Math.max(from, to) - 1);
    },
  );
});

describe('upgrade(): bad input', () => {
  it.each([
    ['options not an object', 'nope', 'ERR_INVALID_ARG_TYPE'],
    ['an empty command', { command: [] }, 'ERR_INVALID_ARG_TYPE'],
    ['a command with a non-string', { command: ['node', 3] }, 'ERR_INVALID_ARG_TYPE'],
    ['a readyTimeoutMs of 0', { readyTimeoutMs: 0 }, 'ERR_OUT_OF_RANGE'],
    ['exit not a boolean', { exit: 'yes' }, 'ERR_INVALID_ARG_TYPE'],
  ])('%s: %s', async (_name, options, code) => {
    // A supervisor in this process with no worker started: upgrade() checks its input before anything else.
    const supervisor = await startCluster({ exec: path.join(fixtures, 'supervised-worker.js'), workers: 1 });
    try {
      await expect(supervisor.upgrade(options as never)).rejects.toMatchObject({ code });
      expect(await fetchOnce(supervisor.ports[0] as number)).toBe(String(supervisor.pids[0]));
    } finally {
      await supervisor.close();
    }
  });

  it('one upgrade at a time, none after close(), none without slot sockets', async () => {
    const supervisor = await startCluster({ exec: path.join(fixtures, 'supervised-worker.js'), workers: 1 });
    const command = [process.execPath, '-e', 'setTimeout(() => {}, 60_000)'];
    const first = supervisor.upgrade({ command, readyTimeoutMs: 1_000, exit: false });
    await expect(supervisor.upgrade({ command, exit: false })).rejects.toMatchObject({ code: 'ERR_REUSEPORT_UPGRADE_IN_PROGRESS' });
    await expect(first).rejects.toMatchObject({ code: 'ERR_REUSEPORT_UPGRADE_FAILED' });
    await supervisor.close();
    await expect(supervisor.upgrade({ command, exit: false })).rejects.toMatchObject({ code: 'ERR_REUSEPORT_CLOSED' });

    const roundRobin = await startCluster({ exec: path.join(fixtures, 'supervised-worker.js'), workers: 1, mode: 'round-robin' });
    try {
      await expect(roundRobin.upgrade({ exit: false })).rejects.toMatchObject({ code: 'ERR_REUSEPORT_MODE_UNSUPPORTED' });
    } finally {
      await roundRobin.close();
    }
  });
});

describe('startCluster in a successor: a hand-over that cannot be used', () => {
  const { binding } = loadBinding();
  afterEach(() => {
    delete process.env[HANDOVER_ENV];
  });
  const base = { from: process.pid, ready: 0 };
  const entry = (fd: number, port: number) => ({
    fd,
    slot: 0,
    address: '127.0.0.1',
    port,
    requestedPort: 0,
    requestedAddress: '127.0.0.1',
    ipv6Only: false,
    steerable: true,
    group: false,
  });
  const exec = path.join(fixtures, 'supervised-worker.js');

  it.each([
    ['not JSON', '{', /is not JSON/],
    ['no sockets', JSON.stringify({ from: 1, ready: 3, sockets: [] }), /"sockets" must be a non-empty list/],
    ['a bad pid', JSON.stringify({ from: -1, ready: 3, sockets: [entry(4, 80)] }), /"from" must be a pid/],
    ['fd 1', JSON.stringify({ from: 1, ready: 3, sockets: [entry(1, 80)] }), /"fd" must be an unused fd >= 3/],
    ['one fd twice', JSON.stringify({ from: 1, ready: 3, sockets: [entry(4, 80), { ...entry(4, 80), slot: 1 }] }), /"fd" must be an unused fd/],
    ['port 0', JSON.stringify({ from: 1, ready: 3, sockets: [entry(4, 0)] }), /"port" must be 1\.\.65535/],
    [
      'counts that are not counts',
      JSON.stringify({ from: 1, ready: 3, sockets: [entry(4, 80)], counts: { restarts: 0, reloads: -1, upgrades: 0 } }),
      /"counts" must hold/,
    ],
    [
      'a service start that is no time',
      JSON.stringify({ from: 1, ready: 3, sockets: [entry(4, 80)], serviceStartedAt: 'yesterday' }),
      /"serviceStartedAt" must be a time/,
    ],
    [
      'a command syntax that is no string',
      JSON.stringify({ from: 1, ready: 3, sockets: [entry(4, 80)], commandSyntax: 2 }),
      /"commandSyntax" must be a string/,
    ],
  ])('malformed (%s): ERR_REUSEPORT_HANDOVER before anything starts', async (_name, text, message) => {
    process.env[HANDOVER_ENV] = text;
    await expect(startCluster({ exec, workers: 1 })).rejects.toMatchObject({ code: 'ERR_REUSEPORT_HANDOVER', message });
    // Read once: a later startCluster in this process (or a worker) does not see it.
    expect(process.env[HANDOVER_ENV]).toBeUndefined();
  });

  // The readiness channel: a socket, as an upgrade's is (a socket pair); a UDP one here, not connected,
  // so the report to it fails (ignored) and it is closed.
  const readyChannel = () => binding?.openDatagram({ address: '127.0.0.1', port: 0 }).fd as number;

  it.each([
    ['a socket that is not TCP (UDP)', () => binding?.openDatagram({ address: '127.0.0.1', port: 0 }).fd as number, 80, /is not a TCP socket: .*EPROTOTYPE/],
    [
      'a socket bound but not listening',
      () => binding?.openListener({ address: '127.0.0.1', port: 0, listen: false }).fd as number,
      'PORT',
      /is not listening/,
    ],
    ['a listener of another port', () => binding?.openListener({ address: '127.0.0.1', port: 0 }).fd as number, 1, /is bound to 127\.0\.0\.1:\d+/],
  ])('an fd that is %s: ERR_REUSEPORT_HANDOVER, the fd closed, nothing started', async (_name, open, port, message) => {
    const fd = open();
    const bound = port === 'PORT' ? (binding?.socketInfo(fd).port as number) : (port as number);
    const readyPipe = readyChannel();
    process.env[HANDOVER_ENV] = JSON.stringify({ ...base, ready: readyPipe, sockets: [entry(fd, bound)] });
    await expect(startCluster({ exec, workers: 1 })).rejects.toMatchObject({ code: 'ERR_REUSEPORT_HANDOVER', message });
    expect(() => fs.fstatSync(fd)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => fs.fstatSync(readyPipe)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  it.each([
    ['a slot socket that is a file', (file: number, ready: number) => ({ ready, sockets: [entry(file, 80)] }), /slot 0's socket\) is a file, not a socket/],
    [
      'a readiness channel that is a file',
      (file: number, ready: number) => ({ ready: file, sockets: [entry(ready, 80)] }),
      /the readiness channel\) is a file, not a socket/,
    ],
    [
      'a health socket that is a file',
      (file: number, ready: number, slot: number) => ({ ready, sockets: [entry(slot, 80)], health: file }),
      /the health socket\) is a file, not a socket/,
    ],
    ['a slot socket that is not open', (_file: number, ready: number) => ({ ready, sockets: [entry(1_000, 80)] }), /slot 0's socket\) is not open/],
  ])('%s (not handed over): ERR_REUSEPORT_HANDOVER naming REUSEPORT_HANDOVER, that fd neither closed nor written to', async (_name, shape, message) => {
    const file = fs.openSync(__filename, 'r');
    const ready = readyChannel();
    const slot = binding?.openListener({ address: '127.0.0.1', port: 0 }).fd as number;
    process.env[HANDOVER_ENV] = JSON.stringify({ ...base, ...shape(file, ready, slot) });
    await expect(startCluster({ exec, workers: 1 })).rejects.toMatchObject({
      code: 'ERR_REUSEPORT_HANDOVER',
      message: expect.stringMatching(new RegExp(`REUSEPORT_HANDOVER names fd \\d+ \\(${message.source}.*neither used nor closed`)),
    });
    expect(fs.fstatSync(file).isFile()).toBe(true);
    fs.closeSync(file);
    // The sockets among them are given back (the listener too, where it was named).
    expect(() => fs.fstatSync(ready)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    try {
      fs.closeSync(slot);
    } catch {
      // closed as one of the hand-over's sockets
    }
  });

  it('adopts a listening SO_REUSEPORT socket it is handed: no new socket, the plan says from which pid', async () => {
    const socket = binding?.openListener({ address: '127.0.0.1', port: 0 });
    if (!socket) throw new Error('the addon is needed');
    const inode = String(fs.fstatSync(socket.fd).ino);
    const readyPipe = readyChannel();
    process.env[HANDOVER_ENV] = JSON.stringify({ ...base, from: 4242, ready: readyPipe, sockets: [{ ...entry(socket.fd, socket.port), steerable: false }] });
    const supervisor = await startCluster({ exec, workers: 1 });
    // Told and closed (checked before this process opens any other fd, which could reuse the number).
    expect(() => fs.fstatSync(readyPipe)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    try {
      expect(supervisor.ports).toEqual([socket.port]);
      expect(supervisor.plan.reasons.at(-1)).toMatch(`adopted 1 slot socket(s) on 127.0.0.1:${socket.port} handed over by pid 4242`);
      expect(socketInodesOf(supervisor.pids[0] as number).has(inode)).toBe(true);
      expect(await fetchOnce(socket.port)).toBe(String(supervisor.pids[0]));
    } finally {
      await supervisor.close();
    }
    expect(() => fs.fstatSync(socket.fd)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });
});
