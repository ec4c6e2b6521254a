// drainSignal(): one AbortSignal per process that aborts when the package starts draining this
// process's servers, whatever started it: the supervisor (a reload, an upgrade, a shutdown),
// node:cluster's disconnect, or PM2's stop signal. Apps close what a drain cannot end for them
// (websockets with 1001, SSE streams, long polls). It is kept on a global symbol, so every copy of
// the package loaded in the process (the runner's hook and the app's own) hands out the same signal.
const KEY = Symbol.for('reuseport.drain');

type Holder = typeof globalThis & { [KEY]?: AbortController };

function controller(): AbortController {
  const holder = globalThis as Holder;
  holder[KEY] ??= new AbortController();
  return holder[KEY];
}

/**
 * An AbortSignal that aborts once, when the package starts draining this process's servers; its
 * `reason` is an Error (code 'REUSEPORT_DRAINING') saying what started the drain. It never aborts
 * where the package never drains: it adds no signal listener of its own.
 */
export function drainSignal(): AbortSignal {
  return controller().signal;
}

/** Aborts the drain signal (once; later calls do nothing), saying why. */
export function startDraining(why: string): void {
  const drain = controller();
  if (drain.signal.aborted) return;
  const reason = Object.assign(new Error(`reuseport: draining this process's servers: ${why}`), { code: 'REUSEPORT_DRAINING' });
  drain.abort(reason);
}
