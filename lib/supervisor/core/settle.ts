// When a start is done: every worker has listened once, and then no listen came for a short while, so
// an app that listens on a second port (an admin port, a metrics port) right after its first has it in
// the ready line and in the ports. Bounded, so a worker that keeps opening listeners cannot hold the
// start.
import type { EventEmitter } from 'node:events';

/** How long no new listen must come before a start counts as settled. */
export const LISTEN_SETTLE_MS = 200;
/** The longest a start waits for its listens to settle. */
export const LISTEN_SETTLE_MAX_MS = 2_000;

/** Resolves once `event` has not been emitted for `quietMs`, or after `maxMs` at most. */
export function whenQuiet(emitter: EventEmitter, event: string, quietMs = LISTEN_SETTLE_MS, maxMs = LISTEN_SETTLE_MAX_MS): Promise<void> {
  return new Promise((resolve) => {
    let quiet: NodeJS.Timeout;
    const done = () => {
      clearTimeout(quiet);
      clearTimeout(bound);
      emitter.off(event, heard);
      resolve();
    };
    const heard = () => {
      clearTimeout(quiet);
      quiet = setTimeout(done, quietMs);
    };
    const bound = setTimeout(done, maxMs);
    emitter.on(event, heard);
    heard();
  });
}
