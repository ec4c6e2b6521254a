// Reloads and worker recyclings (maxMemoryRestart), one at a time in the order asked: each waits for
// the one under way, whether it passed or failed. A reload tells systemd (RELOADING=1, then READY=1),
// pauses the balancer's shedding (the drain is already moving connections), and ends with 'reload' or
// 'reload-failed', unless the supervisor is closing meanwhile.
import type { EmitEvent } from '../core/events';
import type { SupervisorSettings } from '../core/settings';
import type { ReloadResult } from '../core/types';
import { replaceAll } from './reload';
import type { WorkerSlots } from './worker-slots';

/** What the queue needs of the supervisor's other parts. */
export interface ReloadHooks {
  emit: EmitEvent;
  systemd: { reloading(): void; reloaded(): void };
  balancer: { pause(reason: string): void; resume(reason: string): void } | undefined;
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
    const { emit, systemd, balancer } = this.#hooks;
    const workers = this.#workers;
    systemd.reloading();
    balancer?.pause('a reload');
    let result: ReloadResult;
    try {
      result = await replaceAll(workers, this.#settings);
    } catch (error) {
      if (!workers.closing) emit('reload-failed', error as Error);
      throw error;
    } finally {
      if (!workers.closing) systemd.reloaded();
      balancer?.resume('a reload');
    }
    if (!workers.closing) emit('reload', result);
    return result;
  }
}
