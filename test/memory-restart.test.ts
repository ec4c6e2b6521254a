// --max-memory-restart: a leaking worker is replaced the way a reload replaces its slot (the new one
// first, the old one drains), with requests coming in all along and none failing; the output,
// /metrics and status say which worker and why. A limit below what a fresh worker needs stops
// recycling instead of replacing workers forever. The sizes and the decision as tables.
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseMemorySize } from '../lib/cli/args';
import { TOO_LOW_STRIKES, formatSize, memoryVerdict, parseSize, rssFromStatus } from '../lib/supervisor/liveness/memory';
import { resolveSettings } from '../lib/supervisor/core/settings';
import { fetchOnce, fetchPath } from './helpers/http';
import { untilOutput } from './helpers/exit';
import { SeenProcesses } from './helpers/pids';
import { fixtures } from './helpers/processes';
import { freePort, runCliAsync, startRunner } from './helpers/runner';

const seen = new SeenProcesses();
afterEach(() => seen.killAll());

describe('sizes and the decision', () => {
  it.each([
    ['200M', 200 * 1024 ** 2],
    ['1G', 1024 ** 3],
    ['1.5G', 1.5 * 1024 ** 3],
    ['512K', 512 * 1024],
    ['150m', 150 * 1024 ** 2],
    ['150MB', 150 * 1024 ** 2],
    ['1048576', 1048576],
  ])('%s is %i bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
    expect(parseMemorySize(text)).toBe(bytes);
  });

  it.each([[''], ['M'], ['15X'], ['-1G'], ['0'], ['0M'], ['1T'], ['1e9']])('%j is no size: a usage error naming it', (text) => {
    expect(parseSize(text)).toBeUndefined();
    expect(() => parseMemorySize(text)).toThrow(`'${text}' is not one`);
  });

  it.each([
    [157286400, '150M'],
    [1610612736, '1.5G'],
    [2048, '2K'],
    [100, '100'],
  ])('%i bytes read %s', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });

  it.each([
    ['Name:\tnode\nVmPeak:\t  900 kB\nVmRSS:\t   51200 kB\nThreads:\t7\n', 51200 * 1024],
    ['Name:\tzombie\nState:\tZ (zombie)\n', undefined],
  ])('VmRSS of a status file %#', (text, bytes) => {
    expect(rssFromStatus(text)).toBe(bytes);
  });

  it.each([
    [undefined, 100, false, 0, 'ok'],
    [100, 100, false, 0, 'ok'],
    [101, 100, false, 0, 'replace'],
    [101, 100, true, 0, 'replace'],
    [101, 100, true, TOO_LOW_STRIKES - 2, 'replace'],
    [101, 100, true, TOO_LOW_STRIKES - 1, 'too-low'],
    [101, 100, false, TOO_LOW_STRIKES - 1, 'replace'],
  ])('rss %s, limit %i, first check %s, strikes %i: %s', (rss, limit, first, strikes, verdict) => {
    expect(memoryVerdict(rss, limit, first, strikes)).toBe(verdict);
  });

  it.each([[-1], [1.5], ['150M']])('maxMemoryRestart %j is refused', (given) => {
    expect(() => resolveSettings({ exec: 'app.js', workers: 1, maxMemoryRestart: given as number })).toThrow(
      expect.objectContaining({ code: expect.stringMatching(/^ERR_(OUT_OF_RANGE|INVALID_ARG_TYPE)$/) }),
    );
  });
});

// Requests on new connections, `lanes` at a time, until `stop()` is called (bounded by `maxMs`): who answered and what failed.
function load(port: number, lanes: number, maxMs: number) {
  const answered = new Map<string, number>();
  const failures: string[] = [];
  let stopped = false;
  const until = Date.now() + maxMs;
  const lane = async () => {
    while (!stopped && Date.now() < until) {
      try {
        const body = await fetchOnce(port);
        answered.set(body, (answered.get(body) ?? 0) + 1);
      } catch (error) {
        failures.push((error as Error).message);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  const done = Promise.all(Array.from({ length: lanes }, lane));
  return {
    answered,
    failures,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

describe('reuseport start --max-memory-restart', () => {
  it('replaces a worker growing 8 MB every 200 ms past 150M: the new one first, 0 failed, the output says memory, /metrics and status count it', async () => {
    const port = await freePort();
    const runner = startRunner(
      ['start', '-i', '2', '--max-memory-restart', '150M', '--min-uptime', '500', '--json', path.join(fixtures, 'leak-app.js')],
      seen,
      { PORT: String(port) },
    );
    const ready = await runner.next((line) => line.event === 'ready', 0, 30_000);
    const traffic = load(port, 4, 40_000);
    // Both slots recycled at least once.
    const restarts = () => runner.lines.filter((line) => line.event === 'restart');
    await runner.next(() => new Set(restarts().map((line) => line.slot)).size === 2, 0, 30_000);
    const replacedBy = restarts().map((line) => String(line.by));
    for (const line of restarts()) seen.add(line.by as number);
    // Every new worker answers before the traffic stops.
    const deadline = Date.now() + 15_000;
    while (!replacedBy.every((pid) => traffic.answered.has(pid)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    await traffic.stop();
    expect(traffic.failures).toEqual([]);
    for (const pid of replacedBy) expect(traffic.answered.has(pid)).toBe(true);
    for (const line of restarts()) {
      expect(line.reason).toBe('memory');
      expect(line.rss as number).toBeGreaterThan(150 * 1024 ** 2);
      expect(line.limit).toBe(150 * 1024 ** 2);
    }
    // The first restarts replaced the workers the runner started with; none of them exited unexpectedly.
    expect(restarts().some((line) => (ready.workers as number[]).includes(line.pid as number))).toBe(true);
    expect(runner.lines.filter((line) => line.event === 'exit')).toEqual([]);
    const metrics = await fetchPath(ready.health as number, '/metrics');
    expect(metrics).toMatch(/reuseport_slot_memory_restarts_total\{slot="0"\} [1-9]/);
    expect(metrics).toMatch(/reuseport_slot_worker_rss_bytes\{slot="1"\} [1-9]/);
    const status = await runCliAsync(['status', '--health-port', String(ready.health)]);
    expect(status.stdout).toContain('memory restarts');
    runner.child.kill('SIGTERM');
    expect((await runner.exited).code).toBe(0);
  }, 90_000);

  it('a limit below what a fresh worker needs stops recycling, saying the limit is too low', async () => {
    const port = await freePort();
    const runner = startRunner(['start', '-i', '1', '--max-memory-restart', '8M', '--min-uptime', '200', '--json', path.join(fixtures, 'leak-app.js')], seen, {
      PORT: String(port),
      LEAK_MB: '0',
    });
    const tooLow = await runner.next((line) => line.event === 'memory-limit-too-low', 0, 30_000);
    expect(tooLow.limit).toBe(8 * 1024 ** 2);
    expect(await untilOutput(runner.stderr, '--max-memory-restart 8M is too low')).toContain('--max-memory-restart 8M is too low');
    const replaced = runner.lines.filter((line) => line.event === 'restart').length;
    expect(replaced).toBe(TOO_LOW_STRIKES - 1);
    // No more replacements after it: the slot keeps its worker, which still answers.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(runner.lines.filter((line) => line.event === 'restart').length).toBe(replaced);
    expect(await fetchOnce(port)).toBe(String(tooLow.pid));
    runner.child.kill('SIGTERM');
    expect((await runner.exited).code).toBe(0);
  }, 60_000);

  it('a bad size is a usage error (exit 2) naming the value', async () => {
    const result = await runCliAsync(['start', '--max-memory-restart', '15X', path.join(fixtures, 'leak-app.js')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("'15X'");
  });
});
