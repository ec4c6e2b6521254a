// The one way a supervisor ends, whoever asks: close(), a shutdown (a signal, supervisor.shutdown(),
// the runner: fleet/shutdown.ts), a failed start, or an upgrade whose successor took over
// (deploy/upgrade.ts). It runs once; a second ask gets the first one's promise. In order:
//   1. quiet: nothing starts new work (reload and upgrade signals, the periodic checks, memory
//      recycling, the balancer, surplus sockets, ticket-key rotation);
//   2. every worker drains and stops (WorkerSlots.stopAll);
//   3. the slot sockets end: closed, or, after an upgrade, let go (the successor holds them);
//   4. the rest closes: the reaper, the progress board, the health server (it answers /exit waiters
//      with the result), and last the shutdown signals, so a second signal during the drain still
//      ends it at once.
import type { ShutdownResult } from '../core/types';

/** How the slot sockets end: closed (systemd hears STOPPING=1), or handed over to a successor. */
export type Ending = { how: 'close' } | { how: 'hand-over'; letGo: () => void };

/** The supervisor's parts, in the order the stop visits them. */
export interface StopSteps {
  quiet(): void;
  stopWorkers(): Promise<ShutdownResult>;
  /** Tells systemd the service is stopping (a close, not a hand-over). */
  stopping(): void;
  closeSockets(): void;
  finish(result: ShutdownResult): void;
}

export class StopPath {
  readonly #steps: StopSteps;
  #stopping: Promise<ShutdownResult> | undefined;

  constructor(steps: StopSteps) {
    this.#steps = steps;
  }

  /** Whether the stop has begun (nothing new may start: an upgrade, a reload by signal). */
  get begun(): boolean {
    return this.#stopping !== undefined;
  }

  /** Runs the stop once: every later call, of either kind, gets the first one's promise. */
  run(ending: Ending): Promise<ShutdownResult> {
    if (this.#stopping) return this.#stopping;
    const steps = this.#steps;
    if (ending.how === 'close') steps.stopping();
    steps.quiet();
    this.#stopping = steps.stopWorkers().then((result) => {
      if (ending.how === 'close') steps.closeSockets();
      else ending.letGo();
      steps.finish(result);
      return result;
    });
    return this.#stopping;
  }
}
