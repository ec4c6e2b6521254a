// The supervisor's one stop path (fleet/stop.ts) and its reloads one at a time (slots/reload-queue.ts):
// the order of the steps, once whoever asks, how the sockets end; jobs in the order asked, each after
// the one under way whether it passed or failed.
import { describe, expect, it } from 'vitest';
import type { ShutdownResult } from '../lib/supervisor/core/types';
import { type Ending, StopPath } from '../lib/supervisor/fleet/stop';
import { ReloadQueue } from '../lib/supervisor/slots/reload-queue';
import type { WorkerSlots } from '../lib/supervisor/slots/worker-slots';
import type { SupervisorSettings } from '../lib/supervisor/core/settings';

function recordingPath(result: ShutdownResult = { cut: 2, killed: [7] }) {
  const log: string[] = [];
  let release: () => void = () => undefined;
  const workersStopped = new Promise<void>((resolve) => {
    release = resolve;
  });
  const path = new StopPath({
    stopping: () => log.push('stopping'),
    quiet: () => log.push('quiet'),
    stopWorkers: async () => {
      log.push('stop workers');
      await workersStopped;
      return result;
    },
    closeSockets: () => log.push('close sockets'),
    finish: (got) => log.push(`finish ${got.cut}/${got.killed.join(',')}`),
  });
  return { log, path, release };
}

describe('StopPath', () => {
  it.each<[string, (log: string[]) => Ending, string[]]>([
    ['close', () => ({ how: 'close' }), ['stopping', 'quiet', 'stop workers', 'close sockets', 'finish 2/7']],
    ['hand-over', (log) => ({ how: 'hand-over', letGo: () => log.push('let go') }), ['quiet', 'stop workers', 'let go', 'finish 2/7']],
  ])('%s: the steps in order, the sockets ended after every worker stopped', async (_name, ending, expected) => {
    const { log, path, release } = recordingPath();
    expect(path.begun).toBe(false);
    const stopping = path.run(ending(log));
    expect(path.begun).toBe(true);
    // The workers are still draining: the sockets stay open.
    await new Promise((resolve) => setImmediate(resolve));
    expect(log).toEqual(expected.slice(0, expected.indexOf('stop workers') + 1));
    release();
    await expect(stopping).resolves.toEqual({ cut: 2, killed: [7] });
    expect(log).toEqual(expected);
  });

  it('runs once: a close during a hand-over, or a second close, gets the first promise and repeats no step', async () => {
    const { log, path, release } = recordingPath();
    const first = path.run({ how: 'hand-over', letGo: () => log.push('let go') });
    const second = path.run({ how: 'close' });
    const third = path.run({ how: 'close' });
    expect(second).toBe(first);
    expect(third).toBe(first);
    release();
    await first;
    expect(log).toEqual(['quiet', 'stop workers', 'let go', 'finish 2/7']);
  });
});

describe('ReloadQueue.serially', () => {
  const queue = () =>
    new ReloadQueue({} as WorkerSlots, {} as SupervisorSettings, { emit: () => undefined, systemd: { reloading() {}, reloaded() {} }, deploys: [] });

  it('runs jobs one at a time in the order asked, each after the one before passed or failed', async () => {
    const reloads = queue();
    const log: string[] = [];
    const job =
      (name: string, fail = false) =>
      async () => {
        log.push(`${name} start`);
        await new Promise((resolve) => setImmediate(resolve));
        log.push(`${name} end`);
        if (fail) throw new Error(name);
        return name;
      };
    const a = reloads.serially(job('a', true));
    const b = reloads.serially(job('b'));
    const c = reloads.serially(job('c'));
    await expect(a).rejects.toThrow('a');
    await expect(b).resolves.toBe('b');
    await expect(c).resolves.toBe('c');
    expect(log).toEqual(['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
  });
});
