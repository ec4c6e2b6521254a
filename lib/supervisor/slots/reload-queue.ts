// Reloads and worker recyclings (maxMemoryRestart), one at a time in the order asked: each waits for
// the one under way, whether it passed or failed. A reload tells systemd (RELOADING=1, then READY=1),
// tells the parts that act differently during a deploy (the balancer pauses its shedding: the drain
// is already moving connections; stall protection says a stall then is expected), and ends with
// 'reload' or 'reload-failed', unless the supervisor is closing meanwhile.
import type { EmitEvent } from '../core/events';
import type { SupervisorSettings } from '../core/settings';
import type { ReloadResult } from '../core/types';
import { replaceAll } from './reload';
import type { WorkerSlots } from './worker-slots';

/** What the queue needs of the supervisor's other parts. */
export interface ReloadHooks {
  emit: EmitEvent;
  systemd: { reloading(): void; reloaded(): void };
  /** Told when a deploy begins (pause) and ends (resume), with its reason ('a reload'). */
  deploys: readonly ({ pause(reason: string): void; resume(reason: string): void } | undefined)[];
}

export class ReloadQueue {
  readonly #workers: WorkerSlots;
  readonly #settings: SupervisorSettings;
  readonly #hooks: ReloadHooks;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(workers: WorkerSlots, settings: SupervisorSettings, hooks: ReloadHooks) {
    this.#workers = workers;
    this.#settings = settings;
    this.#hooks = hooks;
  }

  /** Replaces every worker (canary, then waves: slots/reload.ts), after the job under way. */
  reload(): Promise<ReloadResult> {
    return this.serially(() => this.#reload());
  }

  /** Runs `job` after the one under way, and before the next. */
  serially<T>(job: () => Promise<T>): Promise<T> {
    const run = this.#tail.catch(() => undefined).then(job);
    this.#tail = run;
    return run;
  }

  async #reload(): Promise<ReloadResult> {
    const { emit, systemd, deploys } = this.#hooks;
    const workers = this.#workers;
    systemd.reloading();
    for (const part of deploys) part?.pause('a reload');
    let result: ReloadResult;
    try {
      result = await replaceAll(workers, this.#settings);
    } catch (error) {
      if (!workers.closing) emit('reload-failed', error as Error);
      throw error;
    } finally {
      if (!workers.closing) systemd.reloaded();
      for (const part of deploys) part?.resume('a reload');
    }
    if (!workers.closing) emit('reload', result);
    return result;
  }
}
