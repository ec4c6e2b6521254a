// EADDRINUSE from an unrelated program names the holder: its pid and command, with the real address
// (`:::P` as Node says, not node:cluster's `null:P`), in listenReusePort's error and in the runner's
// one line (which says `reuseport start:` once). A worker's error keeps node:cluster's words first
// (`bind EADDRINUSE null:P`), its advice naming the address. The words themselves as a table.
import { type ChildProcess, fork, spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listenReusePort } from '../lib';
import { startFailure } from '../lib/cli/start';
import { sayWhere } from '../lib/register/own-socket';
import { describeHolders, portHeldBy } from '../lib/ports/holder-advice';
import { SeenProcesses } from './helpers/pids';
import { fixtures } from './helpers/processes';
import { freePort, startRunner } from './helpers/runner';

const seen = new SeenProcesses();
const holders: ChildProcess[] = [];
afterEach(() => {
  for (const child of holders.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  seen.killAll();
});

// Waits (bounded) until something listens on 127.0.0.1:port.
async function listened(port: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(true));
      socket.on('error', () => resolve(false));
      socket.on('connect', () => socket.destroy());
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listened on ${port} within 15 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('an EADDRINUSE names the holder', () => {
  it.each([
    [
      [{ address: '::', port: 3803, family: 6 as const, uid: 0, inode: '1', processes: [{ pid: 12, command: 'python3 -m http.server 3803' }] }],
      'pid 12 (python3 -m http.server 3803) on :::3803',
    ],
    [
      [{ address: '0.0.0.0', port: 80, family: 4 as const, uid: 1000, inode: '2', processes: [] }],
      'a process of uid 1000 (not visible to this user) on 0.0.0.0:80',
    ],
    [
      [
        {
          address: '127.0.0.1',
          port: 9,
          family: 4 as const,
          uid: 0,
          inode: '3',
          processes: [
            { pid: 1, command: '' },
            { pid: 2, command: 'b' },
          ],
        },
      ],
      'pid 1 (?), pid 2 (b) on 127.0.0.1:9',
    ],
  ])('describeHolders %#', (given, words) => {
    expect(describeHolders(given)).toBe(words);
  });

  it.each([
    [
      Object.assign(new Error('reuseport: the worker for slot 0 (pid 5) exited (1) before it listened'), {}),
      'reuseport start: the worker for slot 0 (pid 5) exited (1) before it listened',
    ],
    [Object.assign(new Error('bind EADDRINUSE :::80 (held by x)'), { code: 'EADDRINUSE' }), 'reuseport start: bind EADDRINUSE :::80 (held by x)'],
    [Object.assign(new Error('something broke'), { code: 'ERR_X' }), 'reuseport start: something broke (ERR_X)'],
    [
      Object.assign(new Error('bind EADDRINUSE null:3803 (on :::3803: held by pid 7 (python3) on 0.0.0.0:3803) (worker pid 9, slot 0)'), {
        code: 'EADDRINUSE',
      }),
      'reuseport start: bind EADDRINUSE :::3803 (held by pid 7 (python3) on 0.0.0.0:3803) (worker pid 9, slot 0)',
    ],
    [
      Object.assign(new Error('bind EADDRINUSE null:80 (on 0.0.0.0:80) (worker pid 9, slot 0)'), { code: 'EADDRINUSE' }),
      'reuseport start: bind EADDRINUSE 0.0.0.0:80 (worker pid 9, slot 0)',
    ],
  ])("the runner's failure line %#", (error, line) => {
    expect(startFailure(error)).toBe(line);
  });

  it.each([
    ['bind EADDRINUSE null:3803 (held by pid 7)', 'bind EADDRINUSE null:3803 (on :::3803: held by pid 7)'],
    ['bind EADDRINUSE null:3803', 'bind EADDRINUSE null:3803 (on :::3803)'],
    ['bind EADDRINUSE 127.0.0.1:3803 (held by pid 7)', 'bind EADDRINUSE 127.0.0.1:3803 (held by pid 7)'],
  ])("a worker's error %j keeps Node's words first: %j", (message, said) => {
    expect(sayWhere(new Error(message), '::', 3803).message).toBe(said);
  });

  it('listenReusePort beside a plain net server of another process: the error names its pid and command', async () => {
    const holder = fork(path.join(fixtures, 'plain-listener.js'), [], { stdio: 'ignore' });
    holders.push(holder);
    const { port, pid } = await new Promise<{ port: number; pid: number }>((resolve) =>
      holder.once('message', (message) => resolve(message as { port: number; pid: number })),
    );
    const server = net.createServer();
    const error = (await listenReusePort(server, port, { host: '127.0.0.1' }).catch((caught: unknown) => caught)) as Error & { code?: string };
    server.close();
    expect(error.code).toBe('EADDRINUSE');
    expect(error.message).toContain(`127.0.0.1:${port}`);
    expect(error.message).toContain(`held by pid ${pid} (`);
    expect(error.message).toContain('plain-listener.js');
    // An error without an address (node:cluster's, for a listen without one) still finds it; another address does not.
    expect(portHeldBy(port, null)).toContain(`pid ${pid} (`);
    expect(portHeldBy(port, '127.0.0.2')).toBeUndefined();
  }, 30_000);

  it('the runner beside python3 -m http.server: exit 1, one line naming the pid, the command and :::port', async () => {
    const port = await freePort();
    const python = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1'], { stdio: 'ignore' });
    holders.push(python);
    await listened(port);
    // An ordinary app: server.listen(port) without an address (node:cluster would say null:port).
    const runner = startRunner(['start', '-i', '2', path.join(fixtures, 'ordinary-app.js')], seen, { APP_PORT: String(port) });
    expect((await runner.exited).code).toBe(1);
    const line =
      runner
        .stderr()
        .split('\n')
        .find((text) => text.startsWith('reuseport start:')) ?? '';
    expect(line).toContain(`bind EADDRINUSE :::${port}`);
    expect(line).toContain(`held by pid ${python.pid} (`);
    expect(line).toContain(`-m http.server ${port}`);
    expect(line).not.toContain('null:');
    expect(line).not.toContain('reuseport start: reuseport:');
  }, 60_000);
});
