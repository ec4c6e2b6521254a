// The systemd harness itself (test/fixtures/systemd-harness.py: a harness following systemd's documented
// protocol, because systemd cannot run as PID 1 here) against test/fixtures/fdstore-service.py.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAllHarnesses, type EventOf, type Harness, type HarnessOptions, isRunning, startHarness } from './helpers/systemd';

const service = path.join(__dirname, 'fixtures', 'fdstore-service.py');
const seen: number[] = []; // every pid a test learned of, SIGKILLed in afterEach if still running

afterEach(async () => {
  await closeAllHarnesses();
  for (const pid of seen.splice(0)) {
    if (!isRunning(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

function serve(args: string[] = [], options: HarnessOptions = {}): Harness {
  return startHarness(['python3', service, ...args], options);
}

/** `--step` (or `--on-usr1`) with one datagram for the service to send. */
function step(message: string, fds: string[] = [], flag = '--step'): string[] {
  return [flag, JSON.stringify({ message, fds })];
}

/** The service's READY=1 datagram from `pid`: it carries what the service saw as X_* fields. */
function readyOf(harness: Harness, pid: number, after: number): Promise<EventOf<'notify'>> {
  return harness.next((event) => event.event === 'notify' && event.pid === pid && event.fields.READY === '1', 10_000, after) as Promise<EventOf<'notify'>>;
}

async function start(harness: Harness, command = 'start') {
  const after = harness.send(command);
  const started = await harness.next('started', 10_000, after);
  const ready = await readyOf(harness, started.pid, after);
  seen.push(started.pid, ...childrenOf(ready));
  return { started, ready, after };
}

function childrenOf(ready: EventOf<'notify'>): number[] {
  return (ready.fields.X_CHILDREN ?? '').split(',').filter(Boolean).map(Number);
}

async function status(harness: Harness): Promise<EventOf<'status'>> {
  const after = harness.send('status');
  return harness.next('status', 10_000, after);
}

function storeIs(names: string[]) {
  return (event: { event: string; names?: string[] }) => event.event === 'store' && JSON.stringify(event.names) === JSON.stringify(names);
}

describe('systemd harness', () => {
  it('start: NOTIFY_SOCKET in a 0700 directory, FDSTORE=, no LISTEN_*; READY=1 and the stored listener', async () => {
    const harness = serve();
    const { notifySocket } = await harness.ready;
    expect(path.isAbsolute(notifySocket)).toBe(true);
    expect(fs.statSync(path.dirname(notifySocket)).mode & 0o777).toBe(0o700);

    const { started, ready, after } = await start(harness);
    expect(started).toMatchObject({ listenFds: 0, names: [], inodes: [] });
    expect(ready.fields).toMatchObject({ MAINPID: String(started.pid), X_NOTIFY_SOCKET: notifySocket, X_FDSTORE: '16', X_ADOPTED: '0' });
    expect(ready.fields).not.toHaveProperty('X_LISTEN_PID');
    expect(ready.fields).not.toHaveProperty('X_LISTEN_FDS');
    expect(ready.fields).not.toHaveProperty('X_LISTEN_FDNAMES');

    const store = await harness.next('store', 10_000, after);
    expect(store.names).toEqual(['listener']);
    expect(fs.readlinkSync(`/proc/${started.pid}/fd/${ready.fields.X_FD}`)).toBe(`socket:[${store.inodes[0]}]`);
    expect(await status(harness)).toMatchObject({ state: 'active', mainPid: started.pid, names: ['listener'] });
  });

  it('restart: the new process gets the same socket as fd 3, with LISTEN_FDS, LISTEN_FDNAMES and its own LISTEN_PID', async () => {
    const harness = serve();
    const first = await start(harness);
    const { inodes } = await harness.next('store', 10_000, first.after);

    const { started, ready, after } = await start(harness, 'restart');
    expect(await harness.next('exited', 10_000, after)).toMatchObject({ pid: first.started.pid, code: 0, signal: null });
    expect(started.pid).not.toBe(first.started.pid);
    expect(started).toMatchObject({ listenFds: 1, names: ['listener'], inodes });
    expect(ready.fields).toMatchObject({
      X_LISTEN_PID: String(started.pid),
      X_LISTEN_FDS: '1',
      X_LISTEN_FDNAMES: 'listener',
      X_ADOPTED: '1',
      X_FD: '3',
      X_PORT: first.ready.fields.X_PORT,
    });
    expect(fs.readlinkSync(`/proc/${started.pid}/fd/3`)).toBe(`socket:[${inodes[0]}]`);
    // The new process stored the same socket again: kept once.
    expect(await status(harness)).toMatchObject({ names: ['listener'], inodes });
  });

  it('restart resets no queued connection: one the old process never accepted is answered by the new one', async () => {
    const harness = serve(['--accept-adopted']);
    const first = await start(harness);
    const client = net.connect(Number(first.ready.fields.X_PORT), '127.0.0.1');
    client.setTimeout(10_000, () => client.destroy(new Error('no answer within 10 s')));
    const answer = new Promise<string>((resolve, reject) => {
      let text = '';
      client.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk;
      });
      client.on('end', () => resolve(text)).on('error', reject);
    });
    await new Promise((resolve, reject) => client.once('connect', resolve).once('error', reject));

    const { started } = await start(harness, 'restart');
    expect(await answer).toBe(`${started.pid}\n`);
  });

  it.each([
    ['a colon', 'a:b'],
    ['a control character', 'tab\there'],
    ['256 characters', 'x'.repeat(256)],
    ['a byte outside ASCII', 'café'],
  ])('FDNAME= with %s is ignored: rejected, and the fd is stored as "stored" (as systemd does)', async (_, name) => {
    const harness = serve(step(`FDSTORE=1\nFDNAME=${name}`, ['socket']));
    const { after } = await start(harness);
    expect((await harness.next('rejected', 10_000, after)).reason).toMatch(/FDNAME=.* is not a valid name/);
    expect((await status(harness)).names).toEqual(['listener', 'stored']);
  });

  it.each([
    ['255 characters', 'x'.repeat(255)],
    ['spaces and punctuation', 'a name, with #!'],
    ['nothing (the empty name is valid)', ''],
  ])('FDNAME= of %s is a valid name', async (_, name) => {
    const harness = serve(step(`FDSTORE=1\nFDNAME=${name}`, ['socket']));
    await start(harness);
    expect((await status(harness)).names).toEqual(['listener', name]);
    const { started } = await start(harness, 'restart');
    expect(started.names).toEqual(['listener', name]);
    expect(harness.events.filter((event) => event.event === 'rejected')).toEqual([]);
  });

  it('FDSTOREREMOVE=1 drops every fd of its name (and needs a name); the next start gets no LISTEN_*', async () => {
    const harness = serve([
      ...step('FDSTORE=1\nFDNAME=extra', ['socket', 'socket']),
      ...step('FDSTOREREMOVE=1', [], '--on-usr1'),
      ...step('FDSTOREREMOVE=1\nFDNAME=extra', [], '--on-usr1'),
      ...step('FDSTOREREMOVE=1\nFDNAME=listener', [], '--on-usr1'),
    ]);
    await start(harness);
    expect((await status(harness)).names).toEqual(['listener', 'extra', 'extra']);

    const after = harness.send('signal SIGUSR1');
    expect((await harness.next('rejected', 10_000, after)).reason).toMatch(/FDSTOREREMOVE=1 without a valid FDNAME=/);
    await harness.next(storeIs(['listener']), 10_000, after);
    await harness.next(storeIs([]), 10_000, after);

    const { started, ready } = await start(harness, 'restart');
    expect(started).toMatchObject({ listenFds: 0, names: [] });
    expect(ready.fields).toMatchObject({ X_ADOPTED: '0' });
    expect(ready.fields).not.toHaveProperty('X_LISTEN_FDS');
  });

  it('FileDescriptorStoreMax= is enforced: fds beyond it are closed', async () => {
    const harness = serve(step('FDSTORE=1\nFDNAME=extra', ['socket', 'socket', 'socket']), { fdstoreMax: 2 });
    const { ready, after } = await start(harness);
    expect(ready.fields.X_FDSTORE).toBe('2');
    expect(await harness.next('rejected', 10_000, after)).toMatchObject({ fds: 2 });
    expect((await status(harness)).names).toEqual(['listener', 'extra']);
  });

  it('FileDescriptorStoreMax=0 refuses every fd, and the service sees no FDSTORE=', async () => {
    const harness = serve([], { fdstoreMax: 0 });
    const { ready, after } = await start(harness);
    expect(ready.fields).not.toHaveProperty('X_FDSTORE');
    expect(await harness.next('rejected', 10_000, after)).toMatchObject({ fds: 1 });
    expect((await status(harness)).names).toEqual([]);
  });

  it('a file stored twice is kept once, under its first name; the same file opened again is another file', async () => {
    const harness = serve([
      ...step('FDSTORE=1\nFDNAME=again', ['listener', 'dup']),
      ...step('FDSTORE=1\nFDNAME=file', ['file', 'file-dup']),
      ...step('FDSTORE=1\nFDNAME=reopened', ['file-reopen']),
    ]);
    await start(harness);
    const { names, inodes } = await status(harness);
    expect(names).toEqual(['listener', 'file', 'reopened']);
    expect(inodes[2]).toBe(inodes[1]);
    expect(harness.events.filter((event) => event.event === 'rejected')).toEqual([]);
  });

  it('a stored fd that hangs up (a TCP socket that never listened) leaves the store, unless FDPOLL=0', async () => {
    const harness = serve([...step('FDSTORE=1\nFDNAME=hup', ['unlistened']), ...step('FDSTORE=1\nFDNAME=kept\nFDPOLL=0', ['unlistened'])]);
    const { after } = await start(harness);
    await harness.next(storeIs(['listener', 'kept']), 10_000, after);
    expect((await status(harness)).names).toEqual(['listener', 'kept']);
  });

  it('fds come back in store order, or newest first as systemd passes them', async () => {
    for (const [newestFirst, names] of [
      [false, ['listener', 'extra']],
      [true, ['extra', 'listener']],
    ] as const) {
      const harness = serve(step('FDSTORE=1\nFDNAME=extra', ['socket']), { newestFirst });
      await start(harness);
      const { started, ready } = await start(harness, 'restart');
      expect(started.names).toEqual(names);
      expect(ready.fields.X_LISTEN_FDNAMES).toBe(names.join(':'));
      await harness.close();
    }
  });

  it('stop (KillMode=mixed): SIGTERM to the main process only, SIGKILL to the rest once it exits; the store is released', async () => {
    const harness = serve(['--child', 'plain', '--child', 'setsid']);
    const { started, ready } = await start(harness);
    const children = childrenOf(ready);
    expect(children).toHaveLength(2);
    expect(children.every(isRunning)).toBe(true);

    const after = harness.send('stop');
    expect(await harness.next('exited', 10_000, after)).toMatchObject({ pid: started.pid, code: 0, signal: null });
    await harness.next(storeIs([]), 10_000, after);
    await harness.next('done', 10_000, after);
    expect(children.filter(isRunning)).toEqual([]);
    // The children report a SIGTERM and survive it: none came, so SIGKILL was all they got.
    expect(harness.events.filter((event) => event.event === 'notify' && 'X_CHILD_SIGTERM' in event.fields)).toEqual([]);
    expect(await status(harness)).toMatchObject({ state: 'inactive', mainPid: null, names: [] });
  });

  it('stop sends SIGKILL once the stop timeout passes', async () => {
    const harness = serve(['--ignore-term'], { stopTimeoutMs: 300 });
    const { started } = await start(harness);
    const since = Date.now();
    const after = harness.send('stop');
    expect(await harness.next('exited', 10_000, after)).toMatchObject({ pid: started.pid, code: null, signal: 'SIGKILL' });
    expect(Date.now() - since).toBeGreaterThanOrEqual(250);
  });

  it('Restart=always starts a killed service again with its store; Restart=no releases the store', async () => {
    const always = serve([], { restart: 'always', restartMs: 50 });
    const first = await start(always);
    const { inodes } = await always.next('store', 10_000, first.after);
    const after = always.events.length;
    process.kill(first.started.pid, 'SIGKILL');
    expect(await always.next('exited', 10_000, after)).toMatchObject({ pid: first.started.pid, signal: 'SIGKILL' });
    const again = await always.next('started', 10_000, after);
    seen.push(again.pid);
    expect(again).toMatchObject({ listenFds: 1, names: ['listener'], inodes });

    const no = serve();
    const once = await start(no);
    const since = no.events.length;
    process.kill(once.started.pid, 'SIGKILL');
    await no.next('exited', 10_000, since);
    await no.next(storeIs([]), 10_000, since);
    expect(no.events.slice(since).some((event) => event.event === 'started')).toBe(false);
  });

  it('a datagram from a process outside the service is ignored', async () => {
    const harness = serve();
    const { notifySocket } = await harness.ready;
    const { after } = await start(harness);
    const outsider = spawn(
      'python3',
      [
        '-c',
        [
          'import array, socket, sys, time',
          'listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen()',
          'sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
          'rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [listener.fileno()]))]',
          'sender.sendmsg([b"FDSTORE=1\\nFDNAME=outsider"], rights, 0, sys.argv[1])',
          'time.sleep(20)',
        ].join('\n'),
        notifySocket,
      ],
      { stdio: 'ignore' },
    );
    if (outsider.pid) seen.push(outsider.pid);
    const rejected = await harness.next('rejected', 10_000, after);
    expect(rejected).toMatchObject({ pid: outsider.pid, fds: 1 });
    expect(rejected.reason).toMatch(/not a process of the service/);
    expect((await status(harness)).names).toEqual(['listener']);
    outsider.kill('SIGKILL');
  });

  it('commands it cannot carry out answer with an error event', async () => {
    const harness = serve();
    await expect(harness.run('signal SIGUSR1')).rejects.toThrow(/not running/);
    await start(harness);
    await expect(harness.run('start')).rejects.toThrow(/already running/);
    await expect(harness.run('signal SIGNOPE')).rejects.toThrow(/unknown signal/);
    await expect(harness.run('reload')).rejects.toThrow(/unknown command/);
  });

  it('quit stops the service, kills every process it left, closes the store and removes the socket directory', async () => {
    const harness = serve(['--child', 'plain', '--child', 'setsid']);
    const { notifySocket } = await harness.ready;
    const first = await start(harness);
    const second = await start(harness, 'restart');
    const pids = [first.started.pid, ...childrenOf(first.ready), second.started.pid, ...childrenOf(second.ready)];
    expect(pids).toHaveLength(6);

    const after = harness.send('quit');
    expect(await harness.exited).toBe(0);
    expect(harness.events.slice(after).map((event) => event.event)).toEqual(['exited', 'store', 'done']);
    expect(pids.filter(isRunning)).toEqual([]);
    expect(fs.existsSync(path.dirname(notifySocket))).toBe(false);
  });

  it.each(['stdin EOF', 'SIGTERM'])('%s ends the harness like quit', async (how) => {
    const harness = serve(['--child', 'setsid']);
    const { started, ready } = await start(harness);
    if (how === 'SIGTERM') harness.child.kill('SIGTERM');
    else harness.child.stdin?.end();
    expect(await harness.exited).toBe(0);
    expect([started.pid, ...childrenOf(ready)].filter(isRunning)).toEqual([]);
  });
});
