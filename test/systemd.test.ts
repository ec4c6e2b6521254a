// systemd: fd-store names, LISTEN_FDS read as sd_listen_fds does, the passed fds sorted (ours, a socket
// unit's, the app's), and Debian's real systemd-socket-activate passing sockets to a supervisor.
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadBinding } from '../lib/binding';
import { fdName, parseFdName, planListenFds, takeListenFds } from '../lib/supervisor/deploy/systemd';
import { fetchOnce } from './helpers/http';
import { SeenProcesses } from './helpers/pids';
import { fixtures } from './helpers/processes';
import { listeningInodes } from './helpers/proc-net';
import { type EventOf, type Harness, closeAllHarnesses, startHarness } from './helpers/systemd';

const { binding } = loadBinding();
const seen = new SeenProcesses();
const opened: number[] = [];
afterEach(() => {
  seen.killAll();
  for (const fd of opened.splice(0)) {
    try {
      fs.closeSync(fd);
    } catch {
      // closed by the code under test
    }
  }
});

const isOpen = (fd: number) => {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
};

describe('fd-store names', () => {
  it.each([
    [{ slot: 0, port: 8000, requestedPort: 8000, ipv6Only: false, address: '127.0.0.1', requestedAddress: '127.0.0.1' }],
    [{ slot: 3, port: 41234, requestedPort: 0, ipv6Only: true, address: '::', requestedAddress: '::' }],
    [{ slot: 1, port: 443, requestedPort: 443, ipv6Only: false, address: 'fe80::1%lo', requestedAddress: 'fe80::1%lo' }],
  ])('%o round-trips, with no ":" (the LISTEN_FDNAMES separator) and printable ASCII only', (place) => {
    const name = fdName(place);
    expect(name).not.toContain(':');
    expect(name).toMatch(/^[\x21-\x7e]{1,255}$/);
    expect(parseFdName(name)).toEqual(place);
  });

  it.each([
    'unknown',
    'web',
    'reuseport',
    'reuseport,0,8000,8000,0,127.0.0.1',
    'reuseport,x,8000,8000,0,a,a',
    'reuseport,0,0,0,0,a,a',
    'reuseport,0,8000,8000,2,a,a',
    'reuseport,0,8000,8000,0,%E0%A4%A,a',
    'reuseport,0,70000,0,0,a,a',
  ])('%s is not one of ours', (name) => {
    expect(parseFdName(name)).toBeUndefined();
  });
});

describe('takeListenFds (sd_listen_fds_with_names)', () => {
  it.each([
    [
      'for this pid, with names',
      { LISTEN_PID: '100', LISTEN_FDS: '2', LISTEN_FDNAMES: 'a:b' },
      {
        fds: [
          { fd: 3, name: 'a' },
          { fd: 4, name: 'b' },
        ],
      },
    ],
    ['without names: "unknown"', { LISTEN_PID: '100', LISTEN_FDS: '1' }, { fds: [{ fd: 3, name: 'unknown' }] }],
    ['for another pid', { LISTEN_PID: '101', LISTEN_FDS: '1' }, undefined],
    ['no LISTEN_PID', { LISTEN_FDS: '1' }, undefined],
    ['nothing', {}, undefined],
  ])('%s', (_name, env, expected) => {
    const copy: NodeJS.ProcessEnv = { ...env, OTHER: 'kept' };
    expect(takeListenFds(copy, 100)).toEqual(expected);
    // Read once: the workers do not inherit them.
    expect(copy).toEqual({ OTHER: 'kept' });
  });

  it.each([
    ['a count that is not one', { LISTEN_PID: '100', LISTEN_FDS: 'two' }, /LISTEN_FDS must be a count/],
    ['0 fds', { LISTEN_PID: '100', LISTEN_FDS: '0' }, /LISTEN_FDS must be a count/],
    ['more names than fds', { LISTEN_PID: '100', LISTEN_FDS: '1', LISTEN_FDNAMES: 'a:b' }, /names 2 fd\(s\) and LISTEN_FDS says 1/],
    ['fewer names than fds', { LISTEN_PID: '100', LISTEN_FDS: '3', LISTEN_FDNAMES: 'a' }, /names 1 fd\(s\) and LISTEN_FDS says 3/],
  ])('malformed (%s): ERR_REUSEPORT_HANDOVER', (_name, env, message) => {
    expect(() => takeListenFds({ ...env }, 100)).toThrow(expect.objectContaining({ code: 'ERR_REUSEPORT_HANDOVER', message: expect.stringMatching(message) }));
  });
});

describe('planListenFds: what to do with each passed fd', () => {
  const need = () => {
    if (!binding) throw new Error('the addon is needed');
    return binding;
  };
  const listener = (options: { port?: number; listen?: boolean } = {}) => {
    const socket = need().openListener({ address: '127.0.0.1', port: options.port ?? 0, listen: options.listen ?? true });
    opened.push(socket.fd);
    return socket;
  };
  const place = (port: number, slot = 0) => ({ slot, port, requestedPort: 0, ipv6Only: false, address: '127.0.0.1', requestedAddress: '127.0.0.1' });

  it("adopts sockets named ours in their slots, and a socket unit's SO_REUSEPORT listener in the next free slot", () => {
    const a = listener();
    const b = listener({ port: a.port });
    const unit = listener({ port: a.port });
    const plan = planListenFds(
      need(),
      {
        fds: [
          { fd: a.fd, name: fdName(place(a.port, 0)) },
          { fd: b.fd, name: fdName(place(a.port, 1)) },
          { fd: unit.fd, name: 'app.socket' },
        ],
      },
      fs.closeSync,
    );
    expect(plan.sockets.map((socket) => [socket.fd, socket.slot, socket.port])).toEqual([
      [a.fd, 0, a.port],
      [b.fd, 1, a.port],
      [unit.fd, 2, a.port],
    ]);
    expect(plan.refused).toEqual([]);
    expect(plan.ignored).toEqual([]);
  });

  it('refuses and closes sockets named ours that are not what their names say; leaves the app its other fds', () => {
    // A UDP socket: a socket, so named ours it is refused and closed (it was passed), not a TCP one.
    const file = need().openDatagram({ address: '127.0.0.1', port: 0 }).fd;
    opened.push(file);
    const other = listener();
    const bound = listener({ listen: false });
    const appFile = fs.openSync(__filename, 'r');
    opened.push(appFile);
    const udp = dgram.createSocket('udp4');
    const plan = planListenFds(
      need(),
      {
        fds: [
          { fd: file, name: fdName(place(8000)) },
          { fd: other.fd, name: fdName(place(other.port === 1 ? 2 : 1)) },
          { fd: bound.fd, name: fdName(place(bound.port)) },
          { fd: appFile, name: 'app-state' },
        ],
      },
      fs.closeSync,
    );
    udp.close();
    expect(plan.sockets).toEqual([]);
    expect(plan.refused.map((refusal) => [refusal.fd, refusal.why])).toEqual([
      [file, expect.stringMatching(/^not a TCP socket .*EPROTOTYPE/)],
      [other.fd, expect.stringMatching(/^is bound to 127\.0\.0\.1:\d+, not 127\.0\.0\.1:\d+$/)],
      [bound.fd, 'is not listening'],
    ]);
    for (const fd of [file, other.fd, bound.fd]) expect(isOpen(fd)).toBe(false);
    expect(plan.ignored).toEqual([{ fd: appFile, name: 'app-state' }]);
    expect(isOpen(appFile)).toBe(true);
  });

  it.each([
    ['a regular file', () => fs.openSync(__filename, 'r'), /is a file, not a socket/],
    [
      'a pipe',
      () => {
        const fifo = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-fifo-')), 'fifo');
        expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
        const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
        fs.rmSync(path.dirname(fifo), { recursive: true });
        return fd;
      },
      /is a pipe, not a socket \(.*fifo \(deleted\)\)/,
    ],
    ['an fd that is not open', () => 1_000, /is not open/],
  ])('an fd named ours that is no socket (%s): ERR_REUSEPORT_HANDOVER naming LISTEN_FDS, and no fd closed', (_name, make, message) => {
    const fd = make();
    if (fd !== 1_000) opened.push(fd);
    const good = listener();
    const name = fdName(place(8000));
    const passed = {
      fds: [
        { fd: good.fd, name: fdName(place(good.port)) },
        { fd, name },
      ],
    };
    expect(() => planListenFds(need(), passed, fs.closeSync)).toThrow(
      expect.objectContaining({
        code: 'ERR_REUSEPORT_HANDOVER',
        message: expect.stringMatching(new RegExp(`LISTEN_FDS and LISTEN_FDNAMES name fd ${fd} \\("${name}"\\) ${message.source}.*neither used nor closed`)),
      }),
    );
    expect(isOpen(good.fd)).toBe(true);
    if (fd !== 1_000) expect(isOpen(fd)).toBe(true);
  });

  it('a socket unit listener without SO_REUSEPORT: ERR_REUSEPORT_HANDOVER saying to set ReusePort=yes', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
      expect(() => planListenFds(need(), { fds: [{ fd, name: 'app.socket' }] }, fs.closeSync)).toThrow(
        expect.objectContaining({
          code: 'ERR_REUSEPORT_HANDOVER',
          message: expect.stringMatching(/without SO_REUSEPORT.*set ReusePort=yes in the socket unit/),
        }),
      );
    } finally {
      server.close();
    }
  });
});

// Debian's systemd-socket-activate: listens (or passes through the sockets it was given with
// LISTEN_FDS), waits for the first connection, then execs the service with LISTEN_FDS, as a socket
// unit does.
describe('under systemd-socket-activate', () => {
  interface Line {
    pid: number;
    gen: string;
    pids?: number[];
    ports?: number[];
    plan?: { reasons: string[] };
    inodes?: string[];
    error?: { code: string; message: string };
  }

  function activate(listen: string[], options: object, extra: { fd?: number; names?: string } = {}) {
    const args = [path.join(fixtures, 'upgradable.js'), JSON.stringify({ exec: 'supervised-worker.js', ...options })];
    // LISTEN_PID must be systemd-socket-activate's own pid for it to pass our fd through: set by the
    // shell that then execs it.
    const passThrough = extra.fd === undefined ? '' : `LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=${extra.names ?? 'app'} `;
    const script = `${passThrough}exec systemd-socket-activate ${listen.join(' ')} -- "$@"`;
    const stdio: ('ignore' | 'pipe' | 'inherit' | number)[] = ['ignore', 'pipe', 'inherit'];
    if (extra.fd !== undefined) stdio.push(extra.fd);
    const child = spawn('sh', ['-c', script, 'sh', process.execPath, ...args], { stdio });
    seen.add(child.pid);
    let text = '';
    child.stdout?.setEncoding('utf8');
    const line = new Promise<Line>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line within 20 s: ${text}`)), 20_000);
      child.stdout?.on('data', (chunk: string) => {
        text += chunk;
        const end = text.indexOf('\n');
        if (end < 0) return;
        clearTimeout(timer);
        const parsed = JSON.parse(text.slice(0, end)) as Line;
        for (const pid of parsed.pids ?? []) seen.add(pid);
        resolve(parsed);
      });
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { child, line, exited };
  }

  // The first connection makes systemd-socket-activate start the service; it waits in the queue.
  function firstRequest(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.0\r\n\r\n'));
      let body = '';
      socket.setEncoding('utf8');
      socket.setTimeout(20_000, () => socket.destroy(new Error('no answer within 20 s')));
      socket.on('data', (chunk) => {
        body += chunk;
      });
      socket.on('end', () => resolve(body.split('\r\n\r\n')[1] ?? ''));
      socket.on('error', reject);
    });
  }

  it("passes a socket it was given (SO_REUSEPORT, as ReusePort=yes makes): adopted as slot 0, the other slot's socket opened when its worker listens, and the connection that woke it is served", async () => {
    const socket = binding?.openListener({ address: '127.0.0.1', port: 0 });
    if (!socket) throw new Error('the addon is needed');
    opened.push(socket.fd);
    const inode = String(fs.fstatSync(socket.fd).ino);
    const run = activate([], { workers: 2, env: { FIXTURE_PORT: String(socket.port) } }, { fd: socket.fd, names: 'app.socket' });
    const answer = firstRequest(socket.port);
    const ready = await run.line;
    expect(ready.gen).toBe('ready');
    expect(ready.plan?.reasons.at(-1)).toBe(
      `adopted 1 slot socket(s) on 127.0.0.1:${socket.port} handed over by systemd (LISTEN_FDS) (the same sockets, so nothing queued was reset); slot 1 gets its socket when its worker listens there`,
    );
    expect(ready.inodes).toContain(inode);
    expect(ready.pids).toContain(Number(await answer));
  });

  it('its own listener has no SO_REUSEPORT: startCluster rejects with ERR_REUSEPORT_HANDOVER saying to set ReusePort=yes', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const run = activate([`--listen=127.0.0.1:${port}`], { workers: 1, env: { FIXTURE_PORT: String(port) } });
    // Wake it once it listens (this connection is reset when the service gives up).
    let waker: net.Socket | undefined;
    for (let attempt = 0; attempt < 100 && !waker; attempt++) {
      waker = await new Promise<net.Socket | undefined>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
        socket.on('error', () => resolve(undefined));
      });
      if (!waker) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    waker?.on('error', () => undefined);
    const failed = await run.line;
    waker?.destroy();
    expect(failed).toMatchObject({ gen: 'failed', error: { code: 'ERR_REUSEPORT_HANDOVER' } });
    expect(failed.error?.message).toMatch(/without SO_REUSEPORT.*set ReusePort=yes/);
    expect(await run.exited).toBe(1);
  });
});

// The fd store and sd_notify against test/fixtures/systemd-harness.py: a harness that follows systemd's
// documented protocol (sd_notify(3), sd_listen_fds(3), systemd.io/FILE_DESCRIPTOR_STORE), because
// systemd cannot run as PID 1 here. Unit: Type=notify, NotifyAccess=all, KillMode=mixed,
// FileDescriptorStoreMax=16.
describe('under systemd (the fd-store harness)', () => {
  afterEach(() => closeAllHarnesses());
  const service = (options: object) => [
    process.execPath,
    path.join(fixtures, 'upgradable.js'),
    JSON.stringify({ exec: 'supervised-worker.js', workers: 2, ...options }),
  ];
  const ready = (harness: Harness, after: number) =>
    harness.next((event) => event.event === 'notify' && event.fields.READY === '1', 20_000, after) as Promise<EventOf<'notify'>>;
  const storeOf = async (harness: Harness) => {
    const at = harness.send('status');
    return (await harness.next('status', 10_000, at)) as EventOf<'status'>;
  };

  it('READY=1 with MAINPID once every slot serves; each slot socket stored under a name that says where it goes', async () => {
    const harness = startHarness(service({}));
    const at = harness.send('start');
    const started = await harness.next('started', 10_000, at);
    const notice = await ready(harness, at);
    expect(notice.fields.MAINPID).toBe(String(started.pid));
    const status = await storeOf(harness);
    expect(status.names).toHaveLength(2);
    const places = status.names.map((name) => parseFdName(name));
    expect(places.map((place) => place?.slot).sort()).toEqual([0, 1]);
    const port = places[0]?.port as number;
    expect([...status.inodes].sort()).toEqual([...listeningInodes(port)].sort());
    expect(Number(await fetchOnce(port))).toBeGreaterThan(0);
  });

  it('stop and start: the new process serves the stored sockets (same inodes, none new), and a connection made while nothing ran is answered', async () => {
    const harness = startHarness(service({}), { fdstorePreserve: 'yes' });
    let at = harness.send('start');
    await ready(harness, at);
    const before = await storeOf(harness);
    const port = parseFdName(before.names[0] as string)?.port as number;
    await harness.run('stop');
    // Nothing runs: the connection waits in a stored socket's queue.
    const waiting = fetchOnce(port, '127.0.0.1', 20_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    at = harness.send('start');
    const started = await harness.next('started', 10_000, at);
    expect(started.listenFds).toBe(2);
    expect([...started.names].sort()).toEqual([...before.names].sort());
    await ready(harness, at);
    expect(Number(await waiting)).toBeGreaterThan(0);
    const after = await storeOf(harness);
    expect([...after.inodes].sort()).toEqual([...before.inodes].sort());
    expect([...listeningInodes(port)].sort()).toEqual([...before.inodes].sort());
  });

  it('SIGTERM (systemctl stop, KillMode=mixed): STOPPING=1, the workers drained, exit 0', async () => {
    const harness = startHarness(service({}));
    const at = harness.send('start');
    const started = await harness.next('started', 10_000, at);
    await ready(harness, at);
    const stopAt = harness.send('stop');
    await harness.next((event) => event.event === 'notify' && event.fields.STOPPING === '1', 10_000, stopAt);
    const exited = (await harness.next('exited', 15_000, stopAt)) as EventOf<'exited'>;
    expect(exited).toMatchObject({ pid: started.pid, code: 0 });
  });

  it('an upgrade (ExecReload=kill -USR2 $MAINPID): the successor takes over as MAINPID, the store keeps the same sockets', async () => {
    const harness = startHarness(service({ upgradeOnSigusr2: true }));
    let at = harness.send('start');
    const started = await harness.next('started', 10_000, at);
    await ready(harness, at);
    const before = await storeOf(harness);
    at = harness.send('signal SIGUSR2');
    const successor = await ready(harness, at);
    expect(Number(successor.fields.MAINPID)).not.toBe(started.pid);
    expect(successor.pid).toBe(Number(successor.fields.MAINPID));
    const status = await storeOf(harness);
    expect(status.mainPid).toBe(Number(successor.fields.MAINPID));
    expect([...status.inodes].sort()).toEqual([...before.inodes].sort());
    at = harness.send('restart');
    const next = await harness.next('started', 15_000, at);
    expect(next.listenFds).toBe(2);
    await ready(harness, at);
  });

  it('sockets stored for a port no worker listens on any more are closed and dropped from the store (REUSEPORT_LISTEN_FDS_UNUSED)', async () => {
    const portFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-port-')), 'port');
    fs.writeFileSync(portFile, '0');
    const harness = startHarness(service({ env: { FIXTURE_PORT_FILE: portFile } }), { fdstorePreserve: 'yes' });
    try {
      let at = harness.send('start');
      await ready(harness, at);
      const old = await storeOf(harness);
      const oldPort = parseFdName(old.names[0] as string)?.port as number;
      await harness.run('stop');
      // The app now listens on another port.
      const probe = net.createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      const newPort = (probe.address() as net.AddressInfo).port;
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      fs.writeFileSync(portFile, String(newPort));
      at = harness.send('start');
      const started = await harness.next('started', 10_000, at);
      expect(started.listenFds).toBe(2);
      await ready(harness, at);
      const status = await storeOf(harness);
      expect(status.names.map((name) => parseFdName(name)?.port)).toEqual([newPort, newPort]);
      expect(listeningInodes(oldPort)).toEqual([]);
      // The warning is printed on the service's stderr, which the harness passes on (soon after READY=1).
      const warning = /REUSEPORT_LISTEN_FDS_UNUSED.*closed 2 socket\(s\) passed back for 127\.0\.0\.1:\d+, where no worker listens now/;
      for (let i = 0; i < 100 && !warning.test(harness.stderr()); i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(harness.stderr()).toMatch(warning);
    } finally {
      fs.rmSync(path.dirname(portFile), { recursive: true, force: true });
    }
  });
});
