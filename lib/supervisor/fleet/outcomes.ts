// The last outcome of each reload and upgrade, as GET /status tells it (`reuseport reload` and
// `reuseport upgrade` follow them there): a sequence number, when, whether it happened, and the
// event's own fields (a reload's pids, an upgrade's successor pid, a failure's message and code).
// Every field of the event is kept as it is, so a field the event gains is reported with no change here.
import type { EventEmitter } from 'node:events';

/** One reload's or upgrade's outcome. */
export interface Outcome {
  /** Counts up over every outcome recorded, reloads and upgrades alike. */
  seq: number;
  /** When it ended (ms since the epoch). */
  at: number;
  ok: boolean;
  /** A failure's message and code. */
  error?: string;
  code?: string;
  /** The event's own fields: a reload's `pids`, an upgrade's `pid`. */
  [field: string]: unknown;
}

/** The last outcome of each kind; absent until one ended. */
export interface Outcomes {
  reload?: Outcome;
  upgrade?: Outcome;
}

/** Records the outcomes a supervisor emits. */
export class OutcomeLog {
  #seq = 0;
  readonly #last: Outcomes = {};

  watch(emitter: EventEmitter): void {
    const ok = (kind: keyof Outcomes) => (event: Record<string, unknown>) => this.#record(kind, { ...event, ok: true });
    const failed = (kind: keyof Outcomes) => (error: Error & { code?: string }) =>
      this.#record(kind, { ok: false, error: error.message, ...(error.code ? { code: error.code } : {}) });
    emitter.on('reload', ok('reload'));
    emitter.on('reload-failed', failed('reload'));
    emitter.on('upgrade', ok('upgrade'));
    emitter.on('upgrade-failed', failed('upgrade'));
  }

  #record(kind: keyof Outcomes, fields: Omit<Outcome, 'seq' | 'at'>): void {
    this.#seq += 1;
    this.#last[kind] = { ...fields, seq: this.#seq, at: Date.now() } as Outcome;
  }

  get last(): Outcomes {
    return { ...this.#last };
  }
}

/** The service's counts: workers restarted, reloads, upgrades, connections reloads cut. */
export interface ServiceCounts {
  restarts: number;
  reloads: number;
  upgrades: number;
  cut: number;
}

/**
 * The service's record, which an upgrade hands to its successor: its counts, when it began (its first
 * supervisor's start), and the last outcome of each reload and upgrade.
 */
export class ServiceRecord {
  readonly #counts: ServiceCounts = { restarts: 0, reloads: 0, upgrades: 0, cut: 0 };
  #startedAt = Date.now();
  readonly #outcomes = new OutcomeLog();

  /** Counts what the supervisor emits from now on. */
  watch(emitter: EventEmitter): void {
    this.#outcomes.watch(emitter);
    emitter.on('exit', (exit: { expected: boolean }) => {
      if (!exit.expected) this.#counts.restarts += 1;
    });
    emitter.on('reload', (result: { cut: number }) => {
      this.#counts.reloads += 1;
      this.#counts.cut += result.cut;
    });
    emitter.on('upgrade', () => {
      this.#counts.upgrades += 1;
    });
  }

  /** In a successor: goes on from the predecessor's counts (and counts this upgrade) and its start (none told: 0.1's predecessor). */
  takeOver(from: { counts?: Partial<ServiceCounts>; serviceStartedAt?: number }): void {
    Object.assign(this.#counts, from.counts);
    this.#counts.upgrades += 1;
    if (from.serviceStartedAt !== undefined) this.#startedAt = from.serviceStartedAt;
  }

  get counts(): ServiceCounts {
    return { ...this.#counts };
  }

  get startedAt(): number {
    return this.#startedAt;
  }

  get outcomes(): Outcomes {
    return this.#outcomes.last;
  }
}
