// Ctrl-C as a terminal sends it, with real processes: SIGINT to the whole foreground process group
// (the test plays the terminal: the group is made with `detached`, and signalled as -pgid). Through
// real npx (a project whose node_modules/.bin holds `reuseport`, as an install makes it; nothing is
// fetched), the runner drains and exits 0, whether it hears the group's copy alone or npx's forward
// too (npm 11 here does not forward: npx dies of the signal; a wrapper that forwards, as npm's
// run-script signal manager did, is the second case). A second SIGINT a person sends later still
// stops at once (exit 1). Which copies arrive within ECHO_MS is the kernel's and libuv's business
// (two pending SIGINTs may merge into one); the rule itself (isEcho) is table-tested in cli-parts.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { exitAfterOutput } from './helpers/exit';
import { SeenProcesses } from './helpers/pids';
import { fixtures } from './helpers/processes';
import { cli, freePort, startRunner } from './helpers/runner';

const seen = new SeenProcesses();
const dirs: string[] = [];
afterEach(() => {
  seen.killAll();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

const app = path.join(fixtures, 'runner-app.js');

// A project with reuseport installed the way npm links a bin (a shell stub that execs Node on the CLI).
function project(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-npx-'));
  dirs.push(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"npx-user","version":"1.0.0","private":true}\n');
  fs.mkdirSync(path.join(dir, 'node_modules', '.bin'), { recursive: true });
  const bin = path.join(dir, 'node_modules', '.bin', 'reuseport');
  fs.writeFileSync(bin, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} "$@"\n`, { mode: 0o755 });
  // The forwarding wrapper: passes each SIGINT on to its child at once, as a wrapper that forwards does.
  fs.writeFileSync(
    path.join(dir, 'forward.js'),
    `const { spawn } = require('node:child_process');
const child = spawn(process.argv[2], process.argv.slice(3), { stdio: 'inherit' });
process.on('SIGINT', () => child.kill('SIGINT'));
child.on('exit', (code, signal) => process.exit(code ?? 1));
`,
  );
  return dir;
}

async function groupRun(command: string, args: string[], cwd: string) {
  const port = await freePort();
  const child = spawn(command, args, {
    cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PORT: String(port), npm_config_yes: 'false' },
  });
  seen.add(child.pid);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = exitAfterOutput(child).then(() => undefined);
  // npx, then the runner and its 2 workers start: many seconds on a loaded machine.
  const readyBy = Date.now() + 60_000;
  for (let i = 0; i < 3000 && !/ready pid=\d+/.test(stdout) && Date.now() < readyBy; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  const runner = Number(/ready pid=(\d+)/.exec(stdout)?.[1]);
  expect(runner, `${stdout} ${stderr}`).toBeGreaterThan(0);
  seen.add(runner);
  for (const pid of (/workers=([\d,]+)/.exec(stdout)?.[1] ?? '').split(',')) seen.add(Number(pid));
  return { child, runner, exited, out: () => stdout, err: () => stderr };
}

describe('Ctrl-C from a terminal', () => {
  it.each([
    ['npx reuseport start', 'npx', (_dir: string) => ['--no-install', 'reuseport', 'start', app, '-i', '2']],
    [
      'a wrapper that forwards SIGINT',
      process.execPath,
      (dir: string) => [path.join(dir, 'forward.js'), path.join(dir, 'node_modules', '.bin', 'reuseport'), 'start', app, '-i', '2'],
    ],
  ])('under %s: the runner drains and exits 0', async (_name, command, args) => {
    const dir = project();
    const run = await groupRun(command, args(dir), dir);
    // The terminal: SIGINT to the whole foreground group.
    process.kill(-(run.child.pid as number), 'SIGINT');
    await run.exited;
    for (let i = 0; i < 500 && !/stopped pid=\d+ code=\d+/.test(run.out()); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(run.out()).toMatch(new RegExp(`shutdown pid=${run.runner} signal=SIGINT\\n(.*\\n)*stopped pid=${run.runner} code=0\\n`));
    expect(run.err()).not.toMatch(/stopping at once/);
  });

  it('a second SIGINT a person sends later stops at once (exit 1)', async () => {
    const port = await freePort();
    const runner = startRunner(['start', app, '-i', '1', '--shutdown-delay', '10000'], seen, { PORT: String(port) });
    const ready = await runner.next((line) => line.event === 'ready');
    const pid = Number(/ready pid=(\d+)/.exec(ready.text ?? '')?.[1]);
    runner.child.kill('SIGINT');
    await runner.next((line) => line.event === 'shutdown');
    // Well past ECHO_MS: a person pressing Ctrl-C again.
    await new Promise((resolve) => setTimeout(resolve, 500));
    runner.child.kill('SIGINT');
    expect(await runner.exited).toEqual({ code: 1, signal: null });
    expect(runner.stderr()).toMatch(/SIGINT again during the shutdown: stopping at once/);
    expect(pid).toBe(runner.child.pid);
  });
});
