// Graceful shutdown, by default on SIGTERM and SIGINT: readiness fails at once (a balancer's health
// check stops sending), the workers keep serving for the delay (a balancer, or Kubernetes removing
// the endpoint, catches up), then every worker drains as in a reload and the process exits 0, or 1
// saying what the drain had to cut. A second signal while it runs ends at once.
import { invalidArgType } from '../../errors';
import { positiveInteger } from '../core/settings';
import type { EmitEvent } from '../core/events';
import type { ShutdownOptions, ShutdownResult } from '../core/types';

/** The exit status of a graceful shutdown: 1 when its drain cut connections or had to kill a worker. */
export function shutdownExitCode(result: ShutdownResult): number {
  return result.cut > 0 || result.killed.length > 0 ? 1 : 0;
}

/**
 * How soon after a SIGINT a second one is the same Ctrl-C told twice: the terminal signals its whole
 * foreground process group, and npx (or another wrapper in that group) forwards its copy a few ms
 * later. A person pressing Ctrl-C again takes longer than this.
 */
export const ECHO_MS = 150;

/** Whether a second signal is another copy of the first (pure): a SIGINT within ECHO_MS of a SIGINT. */
export function isEcho(first: { signal: NodeJS.Signals; at: number } | undefined, signal: NodeJS.Signals, at: number): boolean {
  return first !== undefined && first.signal === signal && at - first.at < ECHO_MS;
}

/** What a shutdown needs of the supervisor. */
export interface ShutdownHost {
  readonly signals: NodeJS.Signals[];
  readonly delayMs: number;
  readonly drainTimeoutMs: number;
  emit: EmitEvent;
  /** Drains and stops every worker, closes the slot sockets. */
  close(): Promise<ShutdownResult>;
  /** Ends at once: every worker killed. */
  abort(): void;
}

/** The shutdown of one supervisor. */
export class GracefulShutdown {
  readonly #host: ShutdownHost;
  #running: Promise<ShutdownResult> | undefined;
  #first: { signal: NodeJS.Signals; at: number } | undefined;
  readonly #onSignal = (signal: NodeJS.Signals) => {
    const at = performance.now();
    if (isEcho(this.#first, signal, at)) {
      process.stderr.write(
        `reuseport: ${signal} again ${Math.round(at - (this.#first?.at ?? at))} ms after the first: the same one told twice (a wrapper such as npx forwarding it), not a second request\n`,
      );
      return;
    }
    this.#first ??= { signal, at };
    if (this.#running) {
      // The second signal: whoever sent it does not want to wait.
      process.stderr.write(`reuseport: ${signal} again during the shutdown: stopping at once\n`);
      this.#host.abort();
      process.exit(1);
    }
    this.start({}, signal).catch(() => undefined);
  };

  constructor(host: ShutdownHost) {
    this.#host = host;
  }

  /** Whether a shutdown has begun (readiness then fails). */
  get begun(): boolean {
    return this.#running !== undefined;
  }

  install(): void {
    for (const signal of this.#host.signals) process.on(signal, this.#onSignal);
  }

  uninstall(): void {
    for (const signal of this.#host.signals) process.off(signal, this.#onSignal);
  }

  /** Runs the sequence once; a second call gets the same promise. */
  start(options: ShutdownOptions = {}, signal?: NodeJS.Signals): Promise<ShutdownResult> {
    if (this.#running) return this.#running;
    let delayMs: number;
    let exit: boolean;
    try {
      if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'of type object', options);
      delayMs = positiveInteger(options.delayMs, 'options.delayMs', this.#host.delayMs, 0);
      if (options.exit !== undefined && typeof options.exit !== 'boolean') throw invalidArgType('options.exit', 'of type boolean', options.exit);
      exit = options.exit !== false;
    } catch (error) {
      return Promise.reject(error);
    }
    this.#running = this.#run(delayMs, exit, signal);
    return this.#running;
  }

  async #run(delayMs: number, exit: boolean, signal: NodeJS.Signals | undefined): Promise<ShutdownResult> {
    this.#host.emit('shutdown', { signal, delayMs });
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    const result = await this.#host.close();
    this.uninstall();
    if (result.cut > 0 || result.killed.length > 0) {
      const killed = result.killed.length > 0 ? `; worker(s) ${result.killed.join(', ')} did not finish and were killed` : '';
      process.stderr.write(
        `reuseport: the shutdown cut ${result.cut} connection(s) still open after drainTimeoutMs (${this.#host.drainTimeoutMs} ms)${killed}\n`,
      );
    }
    if (exit) process.exit(shutdownExitCode(result));
    return result;
  }
}
