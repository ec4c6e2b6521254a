// When a start is done: every worker has listened once, and then no listen came for a short while, so
// an app that listens on a second port (an admin port, a metrics port) right after its first has it in
// the ready line and in the ports. A slot socket a worker asked for and has not listened on yet (the
// grant and the listen are a round trip, which a busy machine can stretch past the quiet while) holds
// the start too. Bounded, so a worker that keeps opening listeners cannot hold the start.
import type { EventEmitter } from 'node:events';

/** How long no new listen must come before a start counts as settled. */
export const LISTEN_SETTLE_MS = 200;
/** The longest a start waits for its listens to settle. */
export const LISTEN_SETTLE_MAX_MS = 2_000;

/**
 * Resolves once `event` has not been emitted for `quietMs` and `pending()` is false, or after `maxMs`
 * at most.
 */
export function whenQuiet(
  emitter: EventEmitter,
  event: string,
  pending: () => boolean = () => false,
  quietMs = LISTEN_SETTLE_MS,
  maxMs = LISTEN_SETTLE_MAX_MS,
): Promise<void> {
  return new Promise((resolve) => {
    let quiet: NodeJS.Timeout;
    const done = () => {
      clearTimeout(quiet);
      clearTimeout(bound);
      emitter.off(event, heard);
      resolve();
    };
    // Quiet, but a listen still on its way: look again a quiet while later (its report restarts it).
    const settle = () => {
      if (pending()) quiet = setTimeout(settle, quietMs);
      else done();
    };
    const heard = () => {
      clearTimeout(quiet);
      quiet = setTimeout(settle, quietMs);
    };
    const bound = setTimeout(done, maxMs);
    emitter.on(event, heard);
    heard();
  });
}

/**
 * Per worker, the slot sockets it asked for and has neither listened on nor failed to listen on yet,
 * from the messages it sends: a start is not settled while there are any.
 */
export class PendingListens {
  readonly #asked = new Map<object, number>();

  /** A worker's message (checked): a slot request opens one; a listen, or a failed one, closes one. */
  heard(worker: object, act: string): void {
    if (act === 'slot') this.#asked.set(worker, (this.#asked.get(worker) ?? 0) + 1);
    else if (act === 'listening' || act === 'failed') {
      const left = (this.#asked.get(worker) ?? 0) - 1;
      if (left > 0) this.#asked.set(worker, left);
      else this.#asked.delete(worker);
    }
  }

  /** A worker that exited listens on nothing it asked for. */
  forget(worker: object): void {
    this.#asked.delete(worker);
  }

  /** Whether any worker's asked-for socket has not been listened on (nor failed) yet. */
  get any(): boolean {
    return this.#asked.size > 0;
  }
}
