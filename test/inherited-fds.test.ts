// Fds named by LISTEN_FDS or REUSEPORT_HANDOVER are proven sockets before they are used or closed: a
// wrong number names one of Node's own fds (its epoll fd, an eventfd), and closing it made the runner
// ignore SIGTERM or abort at exit. Now: a clear error naming the variable, a clean exit, no fd closed.
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { firstNotInherited, notInheritedReason } from '../lib/supervisor/deploy/inherited-fd';
import { fdName } from '../lib/supervisor/deploy/systemd';
import { fetchOnce } from './helpers/http';
import { exitAfterOutput } from './helpers/exit';
import { SeenProcesses } from './helpers/pids';
import { fixtures } from './helpers/processes';
import { cli, freePort } from './helpers/runner';

const seen = new SeenProcesses();
afterEach(() => seen.killAll());

const app = path.join(fixtures, 'runner-app.js');

describe('notInheritedReason (pure)', () => {
  it.each([
    [{ kind: 'socket' as const, link: 'socket:[1]' }, undefined],
    [{ kind: 'other' as const, link: 'anon_inode:[eventpoll]' }, 'is not a socket (anon_inode:[eventpoll])'],
    [{ kind: 'pipe' as const, link: 'pipe:[9]' }, 'is a pipe, not a socket (pipe:[9])'],
    [{ kind: 'file' as const }, 'is a file, not a socket'],
    [{ kind: 'closed' as const }, 'is not open'],
  ])('%o: %s', (kind, reason) => {
    expect(notInheritedReason(kind)).toBe(reason);
  });

  it('firstNotInherited names the first fd that is no socket, with what it was said to be', () => {
    const kinds: Record<number, { kind: 'socket' | 'other' }> = { 3: { kind: 'socket' }, 4: { kind: 'other' }, 5: { kind: 'other' } };
    expect(
      firstNotInherited(
        [
          { fd: 3, as: 'a' },
          { fd: 4, as: 'b' },
          { fd: 5, as: 'c' },
        ],
        (fd) => kinds[fd] ?? { kind: 'other' },
      ),
    ).toBe('fd 4 (b) is not a socket');
    expect(firstNotInherited([{ fd: 3, as: 'a' }], (fd) => kinds[fd] ?? { kind: 'other' })).toBeUndefined();
  });
});

// The runner, started by a shell that sets LISTEN_PID to the runner's own pid ($$, kept across exec).
function runnerWith(script: string, env: NodeJS.ProcessEnv, extraStdio: ('pipe' | 'ignore')[] = []) {
  const child = spawn('sh', ['-c', script, process.execPath, cli], { stdio: ['ignore', 'pipe', 'pipe', ...extraStdio], env: { ...process.env, ...env } });
  seen.add(child.pid);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = exitAfterOutput(child);
  const within = (ms: number) => Promise.race([exited, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), ms))]);
  return { child, exited, within, stdout: () => stdout, stderr: () => stderr };
}

const ourName = (port: number) => fdName({ slot: 0, port, requestedPort: port, ipv6Only: false, address: '127.0.0.1', requestedAddress: '127.0.0.1' });

describe("LISTEN_FDS=1 with LISTEN_PID right, and no fd passed (fd 3 is Node's epoll fd)", () => {
  it("named in the library's own format: an error naming LISTEN_FDS and fd 3, exit 1 by itself, no signal, no worker", async () => {
    const port = await freePort();
    const runner = runnerWith(`LISTEN_PID=$$ exec "$0" "$@" start ${app} -i 1 --json`, { LISTEN_FDS: '1', LISTEN_FDNAMES: ourName(port), PORT: String(port) });
    expect(await runner.within(20_000)).toEqual({ code: 1, signal: null });
    expect(runner.stderr()).toMatch(
      /LISTEN_FDS and LISTEN_FDNAMES name fd 3 \("reuseport,0,\d+,[^"]*"\) is not a socket \(anon_inode:\[eventpoll\]\).*neither used nor closed/,
    );
    expect(runner.stdout()).not.toMatch(/"event":"listening"/);
  });

  it('under a name not ours: left to the app, untouched; the runner serves and SIGTERM ends it with 0', async () => {
    const port = await freePort();
    const runner = runnerWith(`LISTEN_PID=$$ exec "$0" "$@" start ${app} -i 1 --json`, { LISTEN_FDS: '1', LISTEN_FDNAMES: 'app-state', PORT: String(port) });
    const deadline = Date.now() + 20_000;
    while (!/"event":"ready"/.test(runner.stdout()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(runner.stdout()).toMatch(/"event":"ready"/);
    expect(Number(await fetchOnce(port))).toBeGreaterThan(0);
    runner.child.kill('SIGTERM');
    expect(await runner.within(20_000)).toEqual({ code: 0, signal: null });
  });
});

describe("REUSEPORT_HANDOVER naming fd 4 (not handed over: one of Node's own)", () => {
  it('an error naming REUSEPORT_HANDOVER and fd 4, told on the readiness channel; exit 1 by itself, no signal', async () => {
    const port = await freePort();
    const handover = {
      from: process.pid,
      ready: 3,
      sockets: [
        { fd: 4, slot: 0, address: '127.0.0.1', port, requestedPort: port, requestedAddress: '127.0.0.1', ipv6Only: false, steerable: true, group: false },
      ],
    };
    // fd 3: a real readiness channel (a socket pair, as an upgrade's); fd 4: whatever Node opens there.
    const runner = runnerWith(`exec "$0" "$@" start ${app} -i 1 --json`, { REUSEPORT_HANDOVER: JSON.stringify(handover), PORT: String(port) }, ['pipe']);
    const channel = runner.child.stdio[3] as Readable;
    let told = '';
    channel.setEncoding('utf8').on('data', (chunk: string) => (told += chunk));
    expect(await runner.within(20_000)).toEqual({ code: 1, signal: null });
    expect(runner.stderr()).toMatch(/REUSEPORT_HANDOVER names fd 4 \(slot 0's socket\) is (a [a-z]+, )?not a socket.*neither used nor closed/);
    expect(runner.stdout()).not.toMatch(/"event":"listening"/);
    const deadline = Date.now() + 5_000;
    while (!told.includes('\n') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(JSON.parse(told.split('\n')[0] ?? '')).toMatchObject({ error: expect.stringMatching(/REUSEPORT_HANDOVER names fd 4/) });
  });
});
