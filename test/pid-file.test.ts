// The runner's pid file where other users can plant files: a symlink at the pid file or at any name
// the runner could use for its temporary file leaves the link's target untouched; '' or a directory
// is a usage error before any worker starts; reading a pid file is bounded (/dev/zero, a FIFO, a big file).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PID_FILE_MAX_BYTES, readPidFile, writePidFile } from '../lib/cli/pid-file';
import { UsageError } from '../lib/cli/usage-error';
import { SeenProcesses } from './helpers/pids';
import { fixtures } from './helpers/processes';
import { cli, freePort, startRunner } from './helpers/runner';

const seen = new SeenProcesses();
const dirs: string[] = [];
afterEach(() => {
  seen.killAll();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-pidfile-'));
  dirs.push(dir);
  return dir;
}

// A file another user would want overwritten, and its content.
function target(dir: string): { file: string; content: string } {
  const file = path.join(dir, 'precious');
  fs.writeFileSync(file, 'precious content\n');
  return { file, content: 'precious content\n' };
}

const app = path.join(fixtures, 'runner-app.js');

describe('writePidFile', () => {
  it('a symlink at the pid file: refused, its target untouched', () => {
    const dir = tempDir();
    const { file, content } = target(dir);
    const pidFile = path.join(dir, 'app.pid');
    fs.symlinkSync(file, pidFile);
    expect(() => writePidFile(pidFile, 4242)).toThrow(/is a symbolic link: refused/);
    expect(fs.readFileSync(file, 'utf8')).toBe(content);
    expect(fs.readlinkSync(pidFile)).toBe(file);
  });

  it('symlinks at every temporary name it tries: all targets untouched, and it says so (EEXIST)', () => {
    const dir = tempDir();
    const pidFile = path.join(dir, 'app.pid');
    const tried: string[] = [];
    const targets: string[] = [];
    const planted = (file: string) => {
      const name = `${file}.${tried.length}.tmp`;
      const victim = path.join(dir, `victim-${tried.length}`);
      fs.writeFileSync(victim, 'precious\n');
      fs.symlinkSync(victim, name);
      targets.push(victim);
      tried.push(name);
      return name;
    };
    expect(() => writePidFile(pidFile, 4242, planted)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    expect(tried.length).toBeGreaterThan(1);
    for (const victim of targets) expect(fs.readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(fs.existsSync(pidFile)).toBe(false);
  });

  it('a symlink (even a dangling one) at the first names: goes on to a free name, writes the pid, touches no target', () => {
    const dir = tempDir();
    const { file, content } = target(dir);
    const pidFile = path.join(dir, 'app.pid');
    let n = 0;
    const names = (base: string) => {
      const name = `${base}.${n}.tmp`;
      if (n === 0) fs.symlinkSync(file, name);
      if (n === 1) fs.symlinkSync(path.join(dir, 'nothing-yet'), name);
      n += 1;
      return name;
    };
    writePidFile(pidFile, 4242, names);
    expect(fs.readFileSync(pidFile, 'utf8')).toBe('4242\n');
    expect(fs.lstatSync(pidFile).isFile()).toBe(true);
    expect(fs.readFileSync(file, 'utf8')).toBe(content);
    expect(fs.existsSync(path.join(dir, 'nothing-yet'))).toBe(false);
    // Only the planted links are left, and the pid file.
    expect(fs.readdirSync(dir).sort()).toEqual(['app.pid', 'app.pid.0.tmp', 'app.pid.1.tmp', 'precious']);
  });
});

describe('reuseport start --pid-file where another user plants links', () => {
  it('a symlink at the name the runner used to write through (<pidfile>.<pid>.tmp): its target untouched, the pid file written', async () => {
    const dir = tempDir();
    const { file, content } = target(dir);
    const pidFile = path.join(dir, 'app.pid');
    const runner = startRunner(['start', app, '-i', '1', '--pid-file', pidFile, '--json'], seen, { PORT: String(await freePort()) });
    // Planted at once: the pid file is written only once the worker listens.
    fs.symlinkSync(file, `${pidFile}.${runner.child.pid}.tmp`);
    await runner.next((line) => line.event === 'ready');
    expect(fs.readFileSync(pidFile, 'utf8')).toBe(`${runner.child.pid}\n`);
    expect(fs.readFileSync(file, 'utf8')).toBe(content);
    runner.child.kill('SIGTERM');
    expect((await runner.exited).code).toBe(0);
    expect(fs.readFileSync(file, 'utf8')).toBe(content);
  });

  it('a symlink at the pid file: a usage error (exit 2) before any worker starts, its target untouched', async () => {
    const dir = tempDir();
    const { file, content } = target(dir);
    const pidFile = path.join(dir, 'app.pid');
    fs.symlinkSync(file, pidFile);
    const runner = startRunner(['start', app, '-i', '1', '--pid-file', pidFile, '--json'], seen, { PORT: '0' });
    expect((await runner.exited).code).toBe(2);
    expect(runner.stderr()).toMatch(/the pid file .*app\.pid is a symbolic link: refused/);
    expect(runner.lines.filter((line) => line.event === 'listening')).toEqual([]);
    expect(fs.readFileSync(file, 'utf8')).toBe(content);
    expect(fs.readdirSync(dir).sort()).toEqual(['app.pid', 'precious']);
  });

  it.each([
    ['an empty name', () => '', /--pid-file needs a file name/],
    ['a directory', (dir: string) => dir, /the pid file .* is a directory/],
    ['a directory, with a trailing slash', (dir: string) => `${dir}/`, /the pid file .* is a directory/],
  ])('%s: a usage error (exit 2) before any worker starts, nothing left behind', async (_name, pidFileOf, message) => {
    const dir = tempDir();
    const runner = startRunner(['start', app, '-i', '1', '--pid-file', pidFileOf(dir), '--json'], seen, { PORT: '0' });
    expect((await runner.exited).code).toBe(2);
    expect(runner.stderr()).toMatch(message);
    expect(runner.lines.filter((line) => line.event === 'listening')).toEqual([]);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('reading a pid file: bounded', () => {
  it.each([
    ['/dev/zero', () => '/dev/zero', /is not a regular file/],
    [
      'a FIFO (never opened for writing)',
      (dir: string) => {
        const fifo = path.join(dir, 'fifo');
        expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
        return fifo;
      },
      /is not a regular file/,
    ],
    ['a directory', (dir: string) => dir, /is not a regular file/],
    [
      'a file of 1 MB of digits',
      (dir: string) => {
        const big = path.join(dir, 'big.pid');
        fs.writeFileSync(big, '1'.repeat(1 << 20));
        return big;
      },
      new RegExp(`longer than ${PID_FILE_MAX_BYTES} bytes`),
    ],
    [
      'a pid past 2^53',
      (dir: string) => {
        const big = path.join(dir, 'big.pid');
        fs.writeFileSync(big, '99999999999999999999\n');
        return big;
      },
      /holds no pid/,
    ],
  ])('%s: a usage error', (_name, fileOf, message) => {
    const file = fileOf(tempDir());
    expect(() => readPidFile(file, 'stop')).toThrow(UsageError);
    expect(() => readPidFile(file, 'stop')).toThrow(message);
  });

  it('reads a pid file as written', () => {
    const file = path.join(tempDir(), 'app.pid');
    writePidFile(file, 31337);
    expect(readPidFile(file)).toBe(31337);
  });

  it.each(['stop', 'status', 'reload', 'upgrade'])(
    '`reuseport %s --pid-file /dev/zero` with 1 GB of address space past what Node reserves: exit 2 at once, no abort',
    (command) => {
      // What Node itself reserves (a few hundred MB on Node 20, far more on newer ones) and 1 GB more:
      // reading /dev/zero whole would need more than that.
      const limitKb = nodeAddressSpaceKb() + 1_048_576;
      const result = spawnSync('bash', ['-c', `ulimit -v ${limitKb}; exec "$0" "$@"`, process.execPath, cli, command, '--pid-file', '/dev/zero'], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(result.signal).toBe(null);
      expect(result.status).toBe(2);
      expect(result.stderr).toMatch(new RegExp(`reuseport ${command}: the pid file /dev/zero is not a regular file`));
    },
  );
});

// The peak address space (kB) of this Node running the CLI's imports, read from its own /proc status.
function nodeAddressSpaceKb(): number {
  const script = "require(process.argv[1]); process.stdout.write(/VmPeak:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1])";
  const result = spawnSync(process.execPath, ['-e', script, path.join(__dirname, '..', 'dist', 'cli', 'status.js')], { encoding: 'utf8' });
  const kb = Number(result.stdout);
  if (!Number.isSafeInteger(kb) || kb <= 0) throw new Error(`could not read Node's address space: ${result.stderr}`);
  return kb;
}
