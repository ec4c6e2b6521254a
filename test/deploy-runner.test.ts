// `reuseport start` as PM2 users deploy with it: each worker's instance id (NODE_APP_INSTANCE, or
// --instance-var), the same after a reload; Node flags for the workers (--node-args), kept across a
// reload and an upgrade, and a TypeScript app through tsx; a launcher refused with what to run instead.
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { countResponses } from './helpers/http';
import { SeenProcesses } from './helpers/pids';
import { fixtures } from './helpers/processes';
import { type Runner, type RunnerLine, freePort, startRunner } from './helpers/runner';

const seen = new SeenProcesses();
afterEach(() => seen.killAll());

interface Told {
  pid: number;
  instance?: string;
  slot?: string;
  custom?: string;
  execArgv: string[];
}

// What each worker said on its first line (instance-app.js), from the runner's --json output lines.
function told(runner: Runner, after = 0): Told[] {
  return runner.lines
    .slice(after)
    .filter((line: RunnerLine) => line.event === 'output' && line.stream === 'stdout' && String(line.line).startsWith('{'))
    .map((line) => ({ pid: line.pid as number, ...(JSON.parse(String(line.line)) as Omit<Told, 'pid'>) }));
}

async function toldBy(runner: Runner, count: number, after = 0): Promise<Told[]> {
  await runner.next(() => told(runner, after).length >= count, after, 30_000);
  return told(runner, after);
}

describe('reuseport start: instance ids', () => {
  it("NODE_APP_INSTANCE is each worker's slot, 0..2, and the same after a reload", async () => {
    const port = await freePort();
    const runner = startRunner(['start', '-i', '3', '--json', path.join(fixtures, 'instance-app.js')], seen, { PORT: String(port) });
    const ready = await runner.next((line) => line.event === 'ready', 0, 30_000);
    const first = await toldBy(runner, 3);
    expect(first.map((each) => each.instance).sort()).toEqual(['0', '1', '2']);
    for (const each of first) expect(each.slot).toBe(each.instance);
    const mark = runner.lines.length;
    runner.child.kill('SIGHUP');
    await runner.next((line) => line.event === 'reload', mark, 60_000);
    const after = await toldBy(runner, 3, mark);
    expect(after.map((each) => each.instance).sort()).toEqual(['0', '1', '2']);
    expect(after.map((each) => each.pid).some((pid) => (ready.workers as number[]).includes(pid))).toBe(false);
    runner.child.kill('SIGTERM');
    expect((await runner.exited).code).toBe(0);
  }, 90_000);

  it('--instance-var NAME sets NAME too; a bad name is a usage error', async () => {
    const port = await freePort();
    const runner = startRunner(['start', '-i', '2', '--instance-var', 'WORKER_NO', '--json', path.join(fixtures, 'instance-app.js')], seen, {
      PORT: String(port),
      INSTANCE_VAR_NAME: 'WORKER_NO',
    });
    const first = await toldBy(runner, 2);
    expect(first.map((each) => each.custom).sort()).toEqual(['0', '1']);
    runner.child.kill('SIGTERM');
    expect((await runner.exited).code).toBe(0);
    const bad = startRunner(['start', '--instance-var', '1X', path.join(fixtures, 'instance-app.js')], seen);
    expect((await bad.exited).code).toBe(2);
    expect(bad.stderr()).toContain("'1X'");
  }, 60_000);
});

describe('reuseport start --node-args', () => {
  it('gives every worker the flags, after a reload and after an upgrade too', async () => {
    const port = await freePort();
    const flags = ['--max-old-space-size=123', '--enable-source-maps'];
    const runner = startRunner(['start', '-i', '2', '--node-args', flags.join(' '), '--json', path.join(fixtures, 'instance-app.js')], seen, {
      PORT: String(port),
    });
    const has = (each: Told) => flags.every((flag) => each.execArgv.includes(flag));
    expect((await toldBy(runner, 2)).every(has)).toBe(true);
    let mark = runner.lines.length;
    runner.child.kill('SIGHUP');
    await runner.next((line) => line.event === 'reload', mark, 60_000);
    expect((await toldBy(runner, 2, mark)).every(has)).toBe(true);
    mark = runner.lines.length;
    runner.child.kill('SIGUSR2');
    const upgrade = await runner.next((line) => line.event === 'upgrade', mark, 60_000);
    // The successor shares the runner's stdout: its workers' lines come through the same pipe.
    const after = await toldBy(runner, 2, mark);
    expect(after.every(has)).toBe(true);
    // The successor's workers have the same instance ids.
    expect(after.map((each) => each.instance).sort()).toEqual(['0', '1']);
    expect((await runner.exited).code).toBe(0);
    process.kill(upgrade.to as number, 'SIGTERM');
    await runner.next((line) => line.event === 'stopped' && line.pid === upgrade.to, mark, 30_000);
  }, 120_000);

  it('"--import tsx" serves a TypeScript app from 2 workers (Node 20: no type stripping of its own)', async () => {
    const port = await freePort();
    const runner = startRunner(['start', '-i', '2', '--node-args', '--import tsx', '--json', path.join(fixtures, 'ts-app.ts')], seen, { PORT: String(port) });
    const ready = await runner.next((line) => line.event === 'ready', 0, 60_000);
    const bodies = await countResponses(port, 60);
    const pids = new Set([...bodies.keys()].map((body) => Number(body.split(' ')[0])));
    expect([...bodies.keys()].every((body) => body.endsWith(' typescript'))).toBe(true);
    expect([...pids].sort()).toEqual([...(ready.workers as number[])].sort());
    runner.child.kill('SIGTERM');
    expect((await runner.exited).code).toBe(0);
  }, 90_000);

  it('refuses a launcher (node_modules/.bin/tsx) with exit 2 and says what to run instead', async () => {
    const runner = startRunner(['start', '-i', '2', path.join(__dirname, '..', 'node_modules', '.bin', 'tsx'), '--', path.join(fixtures, 'ts-app.ts')], seen);
    expect((await runner.exited).code).toBe(2);
    expect(runner.stderr()).toContain('--node-args "--import tsx"');
    expect(runner.stdout()).toBe('');
  }, 30_000);
});
