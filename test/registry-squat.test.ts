// The socket registry directory (how one uid's processes recognise each other's sockets on a port):
// root's under /run, where no other user can create it; another user's in XDG_RUNTIME_DIR or
// <tmp>/reuseport-<uid>. When another user made it first (or it is a link, a file, mode 0755), the
// service still starts, with the ownership check off and a warning naming the directory.
import { type SpawnSyncOptions, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { registryPath, registryProblem } from '../lib/ports/ownership';
import { fetchOnce } from './helpers/http';
import { untilOutput } from './helpers/exit';
import { SeenProcesses } from './helpers/pids';
import { fixtures } from './helpers/processes';
import { freePort, startRunner } from './helpers/runner';

const NOBODY = 65_534;
const DAEMON = 1;
const seen = new SeenProcesses();
const dirs: string[] = [];
afterEach(() => {
  seen.killAll();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

// The Node this file runs on, as DAEMON can run it: itself, or a copy in a directory DAEMON may enter
// where it lies in one it may not (CI's other Node majors are cached under /root/.cache, mode 0700).
let daemonNode: string | undefined;
let nodeCopyDir: string | undefined;
function nodeForDaemon(): string {
  if (daemonNode) return daemonNode;
  if (spawnSync(process.execPath, ['--version'], { uid: DAEMON, gid: DAEMON }).status === 0) {
    daemonNode = process.execPath;
    return daemonNode;
  }
  nodeCopyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-node-'));
  fs.chmodSync(nodeCopyDir, 0o755);
  daemonNode = path.join(nodeCopyDir, 'node');
  fs.copyFileSync(process.execPath, daemonNode);
  fs.chmodSync(daemonNode, 0o755);
  return daemonNode;
}
afterAll(() => {
  if (nodeCopyDir) fs.rmSync(nodeCopyDir, { recursive: true, force: true });
});

// A private temp directory as /tmp is (sticky, world-writable), for TMPDIR.
function privateTmp(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-squat-'));
  dirs.push(dir);
  fs.chmodSync(dir, 0o1777);
  return dir;
}

// `nobody` runs a command (setuid in the child): the squatter.
function asNobody(command: string, args: string[]): void {
  const result = spawnSync(command, args, { uid: NOBODY, gid: NOBODY, encoding: 'utf8' });
  expect(result.status, result.stderr).toBe(0);
}

const squats: [string, (at: string) => void][] = [
  ['a directory of its own', (at) => asNobody('mkdir', ['-m', '0700', at])],
  ['a directory open to all (mode 0777)', (at) => asNobody('mkdir', ['-m', '0777', at])],
  [
    'a symlink to a directory of its own',
    (at) => {
      asNobody('mkdir', ['-m', '0700', `${at}-real`]);
      asNobody('ln', ['-s', `${at}-real`, at]);
    },
  ],
  ['a file', (at) => asNobody('touch', [at])],
];

// The environment of a process that has no XDG_RUNTIME_DIR (a service), with its own TMPDIR.
function envWith(tmp: string): NodeJS.ProcessEnv {
  // '' rather than unset, so that it stays unset when merged over this process's environment.
  return { ...process.env, TMPDIR: tmp, XDG_RUNTIME_DIR: '' };
}

function listenAs(options: SpawnSyncOptions, argv: string[] = [process.execPath, path.join(fixtures, 'registry-listen.js')]) {
  const [command, ...args] = argv as [string, ...string[]];
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 20_000, ...options });
  const line = String(result.stdout).trim().split('\n').at(-1) ?? '';
  return {
    status: result.status,
    stderr: String(result.stderr),
    report: JSON.parse(line || '{}') as { uid?: number; body?: string; error?: string; warnings: { code: string; message: string }[] },
  };
}

describe('registryPath and registryProblem (pure)', () => {
  it.each([
    ['root, /run there', 0, {}, true, '/run/reuseport'],
    ['root, /run there, XDG_RUNTIME_DIR set (a login): still /run', 0, { XDG_RUNTIME_DIR: '/run/user/0' }, true, '/run/reuseport'],
    ['root, no /run', 0, {}, false, '/tmpx/reuseport-0'],
    ['a user with XDG_RUNTIME_DIR', 1000, { XDG_RUNTIME_DIR: '/run/user/1000' }, true, '/run/user/1000/reuseport'],
    ['a user without it', 1000, {}, true, '/tmpx/reuseport-1000'],
    ['a user with a relative XDG_RUNTIME_DIR (ignored)', 1000, { XDG_RUNTIME_DIR: 'run' }, true, '/tmpx/reuseport-1000'],
  ])('%s', (_name, uid, env, runExists, expected) => {
    expect(registryPath(uid, env, '/tmpx', runExists)).toBe(expected);
  });

  const stat = (kind: 'dir' | 'link' | 'file', uid: number, mode: number) => ({
    uid,
    mode,
    isDirectory: () => kind === 'dir',
    isSymbolicLink: () => kind === 'link',
  });
  it.each([
    ['ours, 0700', stat('dir', 5, 0o40700), undefined],
    ['another uid', stat('dir', 6, 0o40700), /owned by uid 6, not 5/],
    ['mode 0755', stat('dir', 5, 0o40755), /mode is 0755, not 0700/],
    ['a symlink', stat('link', 5, 0o120777), /symbolic link/],
    ['a file', stat('file', 5, 0o100600), /not a directory/],
    ['missing', undefined, /cannot be created/],
  ])('%s', (_name, given, problem) => {
    const found = registryProblem(given, 5);
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toMatch(problem);
  });
});

describe('a registry directory another user made first', () => {
  it.each(squats)('root: <tmp>/reuseport-0 squatted (%s) does not matter: root keeps its registry under /run', (_name, squat) => {
    const tmp = privateTmp();
    squat(path.join(tmp, 'reuseport-0'));
    const { status, report, stderr } = listenAs({ env: envWith(tmp) });
    expect(status, stderr).toBe(0);
    expect(report).toMatchObject({ uid: 0, body: 'served\n' });
    expect(report.warnings.filter((warning) => warning.code === 'REUSEPORT_REGISTRY_UNSAFE')).toEqual([]);
  });

  it.each(squats)('another user: <tmp>/reuseport-<uid> squatted by nobody (%s): listenReusePort serves, with a warning naming it', (_name, squat) => {
    const tmp = privateTmp();
    const dir = path.join(tmp, `reuseport-${DAEMON}`);
    squat(dir);
    const { status, report, stderr } = listenAs({ env: envWith(tmp), uid: DAEMON, gid: DAEMON }, [nodeForDaemon(), path.join(fixtures, 'registry-listen.js')]);
    expect(status, stderr).toBe(0);
    expect(report).toMatchObject({ uid: DAEMON, body: 'served\n' });
    const warning = report.warnings.find((w) => w.code === 'REUSEPORT_REGISTRY_UNSAFE');
    expect(warning?.message).toContain(`the socket registry ${dir} cannot be trusted`);
  });

  it('root: /run/reuseport of another owner (a private /run in a mount namespace): serves, with a warning naming it', () => {
    const script = 'mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -m 0700 /run/reuseport && chown 65534 /run/reuseport && exec "$0" "$@"';
    const { status, report, stderr } = listenAs({ env: envWith(privateTmp()) }, [
      'unshare',
      '-m',
      'sh',
      '-c',
      script,
      process.execPath,
      path.join(fixtures, 'registry-listen.js'),
    ]);
    expect(status, stderr).toBe(0);
    expect(report).toMatchObject({ uid: 0, body: 'served\n' });
    const warning = report.warnings.find((w) => w.code === 'REUSEPORT_REGISTRY_UNSAFE');
    expect(warning?.message).toContain('the socket registry /run/reuseport cannot be trusted (it is owned by uid 65534, not 0)');
  });

  it('`reuseport start` as another user, its registry squatted by nobody: serves, the warning on stderr, and stops on SIGTERM', async () => {
    const tmp = privateTmp();
    const dir = path.join(tmp, `reuseport-${DAEMON}`);
    asNobody('mkdir', ['-m', '0700', dir]);
    const port = await freePort();
    const runner = startRunner(
      ['start', path.join(fixtures, 'runner-app.js'), '-i', '2', '--json'],
      seen,
      { ...envWith(tmp), PORT: String(port) },
      { uid: DAEMON, gid: DAEMON, execPath: nodeForDaemon() },
    );
    await runner.next((line) => line.event === 'ready');
    expect(Number(await fetchOnce(port))).toBeGreaterThan(0);
    expect(await untilOutput(() => runner.stderr() + runner.stdout(), `the socket registry ${dir} cannot be trusted`)).toContain(
      `the socket registry ${dir} cannot be trusted`,
    );
    runner.child.kill('SIGTERM');
    expect((await runner.exited).code).toBe(0);
  });
});
