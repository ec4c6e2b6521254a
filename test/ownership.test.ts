// Port ownership: only processes of one sharing group share a port; an unrelated SO_REUSEPORT
// listener is refused by name, and { group: false } shares with a warning.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { listenReusePort } from '../lib/index';
import { defaultGroup, normalizeGroup } from '../lib/ports/ownership';
import { fetchOnce } from './helpers/http';
import { startFixture, stopAll } from './helpers/processes';
import { openFdCount } from './helpers/proc-net';

const servers: net.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => (s.listening ? s.close(resolve) : resolve(null)))));
  await stopAll();
});
const track = (server: net.Server) => {
  servers.push(server);
  return server;
};

// Connects, reads until the server closes, and returns what it wrote.
function readOnce(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let text = '';
    socket.setEncoding('utf8');
    socket.setTimeout(5_000, () => socket.destroy(new Error('timeout')));
    socket.on('data', (chunk) => {
      text += chunk;
    });
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

async function foreignListener(): Promise<{ pid: number; port: number }> {
  return startFixture('foreign-reuseport.js').next<{ pid: number; port: number }>('ready');
}

describe('sharing groups', () => {
  it('refuses a port an unrelated SO_REUSEPORT app holds, naming it, and leaks nothing', async () => {
    const foreign = await foreignListener();
    const before = openFdCount();
    const failure = listenReusePort(track(net.createServer()), foreign.port, { host: '127.0.0.1' });
    await expect(failure).rejects.toMatchObject({
      code: 'EADDRINUSE',
      errno: -os.constants.errno.EADDRINUSE,
      syscall: 'bind',
      address: '127.0.0.1',
      port: foreign.port,
    });
    await expect(failure).rejects.toThrow(new RegExp(`pid ${foreign.pid} \\(.*foreign-reuseport\\.js\\).*sharing group`));
    expect(openFdCount()).toBe(before);
  });

  it('lets two processes of one named group share, and refuses another group', async () => {
    const first = startFixture('standalone-server.js', ['0', '127.0.0.1', 'api']);
    const ready = await first.next<{ pid: number; info: { address: { port: number } } }>('ready');
    const { port } = ready.info.address;
    const joined = await listenReusePort(track(net.createServer((s) => s.end('joined'))), port, { host: '127.0.0.1', group: 'api' });
    expect(joined.address.port).toBe(port);
    expect(joined.reasons.join(' ')).toMatch(/sharing group "name:api"/);
    await expect(listenReusePort(track(net.createServer()), port, { host: '127.0.0.1', group: 'billing' })).rejects.toMatchObject({
      code: 'EADDRINUSE',
      message: expect.stringContaining(`pid ${ready.pid}`),
    });
    await expect(listenReusePort(track(net.createServer()), port, { host: '127.0.0.1' })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it('with { group: false } shares anyway, with a warning', async () => {
    const foreign = await foreignListener();
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const info = await listenReusePort(track(net.createServer((s) => s.end('ours'))), foreign.port, { host: '127.0.0.1', group: false });
      expect(info.reasons.join(' ')).toMatch(/check is off/);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.map((w) => (w as Error & { code?: string }).code)).toContain('REUSEPORT_GROUP_DISABLED');
      const bodies = new Set<string>();
      for (let i = 0; i < 40 && bodies.size < 2; i++) bodies.add(await readOnce(foreign.port));
      expect(bodies).toEqual(new Set(['ours', 'foreign']));
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('unregisters a socket when its server closes, so the port can be taken by another group', async () => {
    const server = net.createServer();
    const { address } = await listenReusePort(server, 0, { host: '127.0.0.1', group: 'first' });
    await new Promise((resolve) => server.close(resolve));
    const next = await listenReusePort(track(net.createServer()), address.port, { host: '127.0.0.1', group: 'second' });
    expect(next.address.port).toBe(address.port);
  });
});

describe('group option', () => {
  it.each<[unknown, string | false | undefined]>([
    [undefined, undefined],
    [false, false],
    ['api', 'name:api'],
  ])('normalizes %s', (value, expected) => {
    expect(normalizeGroup(value)).toBe(expected);
  });

  it.each<[string, unknown]>([
    ['an empty name', ''],
    ['true', true],
    ['a number', 7],
    ['a name over 200 characters', 'g'.repeat(201)],
  ])('refuses %s', (_name, value) => {
    expect(() => normalizeGroup(value)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it("derives the default group from the app's main script, or pm2's pm_exec_path", () => {
    const script = fs.realpathSync(__filename);
    expect(defaultGroup(__filename)).toBe(`app:${script}`);
    expect(defaultGroup('/no/such/app.js')).toBe('app:/no/such/app.js');
  });
});

describe('through the supervisor', () => {
  it('startCluster rejects with the EADDRINUSE that names the foreign holder', async () => {
    const foreign = await foreignListener();
    const supervisor = startFixture('supervisor.js', [
      JSON.stringify({ exec: 'supervised-worker.js', workers: 2, env: { FIXTURE_PORT: String(foreign.port) } }),
    ]);
    const failed = await supervisor.next<{ error: { code: string; message: string; port: number } }>('failed', 20_000);
    expect(failed.error).toMatchObject({ code: 'EADDRINUSE', port: foreign.port });
    expect(failed.error.message).toMatch(new RegExp(`pid ${foreign.pid} .*foreign-reuseport\\.js`));
  });
});

describe('a foreign socket that joins after the supervisor started', () => {
  it('is reported, and steering gives it none of 300 connections', async () => {
    const supervisor = startFixture('supervisor.js', [JSON.stringify({ exec: 'supervised-worker.js', workers: 3, foreignCheckMs: 200 })]);
    const ready = await supervisor.next<{ pids: number[]; ports: number[]; steering: { enabled: boolean }[] }>('ready', 20_000);
    const [port] = ready.ports as [number];
    expect(ready.steering).toMatchObject([{ port, enabled: true }]);
    const joiner = startFixture('foreign-reuseport.js', [String(port)]);
    const foreign = await joiner.next<{ pid: number }>('ready');
    let events: { name: string; port?: number; processes?: { pid: number }[]; steeredAway?: boolean }[] = [];
    // The check runs every 200 ms and scans /proc: on a loaded machine one can take seconds.
    const deadline = Date.now() + 15_000;
    for (let i = 0; i < 300 && Date.now() < deadline && !events.some((e) => e.name === 'foreign'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      supervisor.child.send({ type: 'state' });
      events = (await supervisor.next<{ events: typeof events }>('state')).events;
    }
    expect(events.find((e) => e.name === 'foreign')).toMatchObject({ port, processes: [{ pid: foreign.pid }], steeredAway: true });
    // The foreign socket answers 'foreign', which is no HTTP (a parse error, HPE_*); any other error
    // (a timeout, a reset) is something else, and kept apart so a failure says which it was.
    const bodies = new Map<string, number>();
    const errors = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const body = await fetchOnce(port).catch((error: NodeJS.ErrnoException) => {
        if (String(error.code).startsWith('HPE_')) return 'not http: the foreign socket answered';
        const key = error.code ?? error.message;
        errors.set(key, (errors.get(key) ?? 0) + 1);
        return undefined;
      });
      if (body !== undefined) bodies.set(body, (bodies.get(body) ?? 0) + 1);
    }
    expect(Object.fromEntries(errors)).toEqual({});
    expect([...bodies.keys()].sort()).toEqual(ready.pids.map(String).sort());
    for (const pid of ready.pids) process.kill(pid, 'SIGKILL');
  });
});
