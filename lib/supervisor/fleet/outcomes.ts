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
