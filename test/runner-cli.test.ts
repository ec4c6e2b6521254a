// `reuseport start`'s command line as PM2 users type it, with real runners and workers: options
// before or after the script are the same, the script's own arguments go after `--` and reach it,
// an unknown option after the script is a usage error (exit 2) saying where its arguments go,
// `-i max` / `-i -1`, `--version`, `--help`'s PM2 table; and a runner started with 0.1's command
// line (everything after the script was the script's) keeps that meaning across upgrades to this
// version. 0.1 cannot run here as such (only this checkout is built), so its part is played by a
// startCluster supervisor that writes the hand-over as 0.1's does, without `commandSyntax` (the
// field 0.1 does not know), and whose upgrade command is a 0.1-style runner command line.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchPath } from './helpers/http';
import { SeenProcesses, alive } from './helpers/pids';
import { fixtures } from './helpers/processes';
import { type RunnerLine, cli, freePort, runCli, runCliAsync, startRunner } from './helpers/runner';

const seen = new SeenProcesses();
afterEach(() => seen.killAll());

const app = path.join(fixtures, 'runner-app.js');
const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };

async function argvOf(port: number): Promise<string[]> {
  return JSON.parse(await fetchPath(port, '/argv')) as string[];
}

async function stopped(runner: ReturnType<typeof startRunner>) {
  runner.child.kill('SIGTERM');
  return runner.exited;
}

describe('reuseport start: options anywhere before --', () => {
  it.each([
    ['after the script', ['start', app, '-i', '2', '--json', '--', '--port', '3000', 'x']],
    ['before the script', ['start', '-i', '2', '--json', app, '--', '--port', '3000', 'x']],
    ['on both sides', ['start', '--json', app, '--workers', '2', '--', '--port', '3000', 'x']],
  ])('%s: 2 workers, and the arguments after -- reach the script untouched', async (_name, args) => {
    const port = await freePort();
    const runner = startRunner(args, seen, { PORT: String(port) });
    const ready = await runner.next((line) => line.event === 'ready');
    expect(ready.workers).toHaveLength(2);
    expect(await argvOf(port)).toEqual(['--port', '3000', 'x']);
    expect(await stopped(runner)).toEqual({ code: 0, signal: null });
  });

  it('an unknown option after the script is a usage error (exit 2) that says to put it after --; nothing starts', async () => {
    const port = await freePort();
    const runner = startRunner(['start', app, '--port', '3000'], seen, { PORT: String(port) });
    expect(await runner.exited).toEqual({ code: 2, signal: null });
    expect(runner.stderr()).toMatch(
      /unknown option '--port'\. Runner options go anywhere before `--`; the script's own arguments go after it: reuseport start \[options\] <script> -- --port/,
    );
    expect(runner.stdout()).toBe('');
  });

  it.each([
    ['max', os.availableParallelism()],
    ['-1', Math.max(1, os.availableParallelism() - 1)],
    ['1', 1],
  ])('-i %s runs %s worker(s)', async (value, count) => {
    const port = await freePort();
    const runner = startRunner(['start', app, '-i', value, '--json'], seen, { PORT: String(port) });
    const ready = await runner.next((line) => line.event === 'ready');
    expect(ready.workers).toHaveLength(count);
    expect(await stopped(runner)).toEqual({ code: 0, signal: null });
  });

  it('--version prints the version; --help the PM2 usage, the exit codes and the PM2 table', () => {
    for (const flag of ['--version', '-v']) expect(runCli([flag])).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
    const help = runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/reuseport start app\.js -i max --pid-file app\.pid -- --port 3000/);
    expect(help.stdout).toMatch(/Exit codes: 0 done; 1 it failed .*\n2 a usage error/);
    expect(help.stdout).toMatch(/PM2 command +reuseport command\n +pm2 start app\.js -i max +reuseport start app\.js -i max\n/);
    expect(help.stdout).toMatch(/pm2 reload app +reuseport reload --pid-file app\.pid/);
    expect(runCli(['start', '--help']).stdout).toMatch(/Usage: reuseport start \[options\] <script> \[-- script args\.\.\.\]/);
  });

  it.each([
    ['an unknown command', ['bogus']],
    ['an unknown option of status', ['status', '--bogus']],
    ['a bad -i', ['start', app, '-i', 'lots']],
    ['no target for reload', ['reload']],
    ['a pid file that does not exist for stop', ['stop', '--pid-file', '/nonexistent-dir/app.pid']],
  ])('%s: exits 2', (_name, args) => {
    const result = runCli(args);
    expect(result.code).toBe(2);
    expect(result.stderr).not.toBe('');
  });
});

describe("a runner started with 0.1's command line, upgraded to this version", () => {
  it("keeps reading it as 0.1 did (after the script, all is the script's) across two upgrades", async () => {
    const port = await freePort();
    // The 0.1-style line: `--workers 3 --tag` after the script were the script's arguments.
    const command = [process.execPath, cli, 'start', '--workers', '1', '--json', app, '--workers', '3', '--tag'];
    const predecessor = spawn(process.execPath, [path.join(fixtures, 'upgradable.js'), JSON.stringify({ exec: 'runner-app.js', workers: 1 })], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PORT: String(port), UPGRADE_OPTIONS: JSON.stringify({ command }) },
    });
    seen.add(predecessor.pid);
    const lines: RunnerLine[] = [];
    let text = '';
    predecessor.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n')) {
        const raw = text.slice(0, end);
        text = text.slice(end + 1);
        // The workers' own output (inherited) comes on the same stdout.
        if (!raw.startsWith('{')) continue;
        const line = JSON.parse(raw) as RunnerLine;
        for (const pid of [line.pid, ...((line.workers as number[]) ?? []), ...((line.pids as number[]) ?? [])]) if (typeof pid === 'number') seen.add(pid);
        lines.push(line);
      }
    });
    const next = async (match: (line: RunnerLine) => boolean) => {
      const deadline = Date.now() + 30_000;
      for (let i = 0; i < 1500 && Date.now() < deadline; i++) {
        const found = lines.find(match);
        if (found) return found;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error(`no such line within 30 s: ${JSON.stringify(lines)}`);
    };
    await next((line) => line.gen === 'ready');
    expect(await argvOf(port)).toEqual([]);
    // Its upgrade (SIGHUP in the fixture) starts the runner with the 0.1-style line.
    predecessor.kill('SIGHUP');
    const first = await next((line) => line.event === 'ready');
    expect(first.workers).toHaveLength(1);
    // The predecessor's worker serves until its drain begins: asked before it is gone, it may answer.
    // Then it drains and exits: seconds on a loaded machine.
    const goneBy = Date.now() + 30_000;
    for (let i = 0; i < 1500 && alive(predecessor.pid as number) && Date.now() < goneBy; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(alive(predecessor.pid as number)).toBe(false);
    expect(await argvOf(port)).toEqual(['--workers', '3', '--tag']);

    // This version's runner upgrades itself: its hand-over now says how the line is read.
    const upgrade = await runCliAsync(['upgrade', '--pid', String(first.pid), '--json']);
    expect(upgrade.code).toBe(0);
    const outcome = JSON.parse(upgrade.stdout) as { event: string; from: number; to: number; workers: number[] };
    expect(outcome).toMatchObject({ event: 'upgrade', from: first.pid, to: expect.any(Number) });
    for (const pid of [outcome.to, ...outcome.workers]) seen.add(pid);
    expect(outcome.workers).toHaveLength(1);
    expect(await argvOf(port)).toEqual(['--workers', '3', '--tag']);
    const stop = await runCliAsync(['stop', '--pid', String(outcome.to)]);
    expect(stop).toMatchObject({ code: 0, stdout: `stopped pid=${outcome.to} exitCode=0 cut=0 killed=-\n` });
  });
});
