// How long a new worker has to listen on its slot socket, and what ends the wait: its slot listen
// (done), its exit (failed, with the listen error it reported if any), the fork itself failing, the
// ready timeout, a listen through node:cluster's primary with no slot listen after it (without the
// hook), or a listen error the app did not follow with a slot listen soon. Every timer and listener
// of the wait is cleared in one place, whichever ends it.
import type { Worker } from 'node:cluster';

/** How long a worker that listened through node:cluster's primary (without the hook) has to listen on a slot. */
export const NOT_A_SLOT_MS = 2_000;

export interface StartWatchOptions {
  /** Names the worker in messages: "the worker for slot 0 (pid 123)". */
  who: string;
  readyTimeoutMs: number;
  /** Whether workers preload the hook (without it an app's own listen never reaches a slot). */
  register: boolean;
  /** Stops the worker after a failed start (not after an exit, or a fork that failed). */
  stop: () => void;
}

/** A start being watched: `listening` settles once; the other calls are what the worker said or did. */
export interface StartWatch {
  listening: Promise<void>;
  /** It listened on a slot socket. */
  listened(): void;
  /** It reported a failed listen (the app may handle it and listen again). */
  failed(error: Error): void;
  /** The fork failed: there is no process, and no 'exit' comes. */
  forkFailed(error: Error): void;
}

type ClusterAddress = { address?: string | null; port?: number; addressType?: number | string };

/** Watches `worker`'s start. */
export function watchStart(worker: Worker, options: StartWatchOptions): StartWatch {
  const { who } = options;
  let settle!: { resolve: () => void; reject: (error: Error) => void };
  const listening = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  const timers = new Map<string, NodeJS.Timeout>();
  let settled = false;
  // What it listened on through node:cluster's primary instead of a slot, and the listen error it reported, if any.
  let elsewhere: string | undefined;
  let failure: Error | undefined;

  const timer = (name: string, ms: number, fire: () => void) => {
    clearTimeout(timers.get(name));
    timers.set(name, setTimeout(fire, ms));
  };
  const end = (outcome: Error | undefined, stop: boolean) => {
    if (settled) return;
    settled = true;
    for (const each of timers.values()) clearTimeout(each);
    timers.clear();
    worker.off('exit', onExit);
    worker.off('listening', onClusterListen);
    if (outcome === undefined) {
      settle.resolve();
      return;
    }
    settle.reject(outcome);
    if (stop) options.stop();
  };
  // node:cluster's 'listening' also follows every slot listen (the worker sends it after the slot's);
  // one that comes first is a listen the primary serves.
  const onClusterListen = (address: ClusterAddress) => {
    if (address.addressType !== 4 && address.addressType !== 6) return;
    elsewhere ??= `${address.address ?? '::'}:${address.port}`;
    // Without the hook, an app's server.listen(port) never reaches a slot: say so soon.
    if (options.register || timers.has('not-a-slot')) return;
    timer('not-a-slot', NOT_A_SLOT_MS, () =>
      end(
        new Error(
          `reuseport: ${who} listened on ${elsewhere} through node:cluster's primary, not on a slot socket, and no slot listen followed ` +
            `within ${NOT_A_SLOT_MS} ms: with register: false (--no-register) its server.listen() is Node's own. Start it with the hook ` +
            '(the default), or call listenReusePort(server, port) in the app.',
        ),
        true,
      ),
    );
  };
  const onExit = (code: number | null, signal: string | null) =>
    end(failure ?? new Error(`reuseport: ${who} exited (${signal ?? code}) before it listened`), false);

  timer('ready', options.readyTimeoutMs, () => {
    const through = elsewhere
      ? `; it listened only on ${elsewhere} through node:cluster's primary (a port-0 listen, or one that did not reach the slot socket)`
      : '';
    end(new Error(`reuseport: ${who} did not listen on a slot socket within ${options.readyTimeoutMs} ms${through}`), true);
  });
  worker.on('listening', onClusterListen);
  worker.once('exit', onExit);

  return {
    listening,
    listened: () => end(undefined, false),
    // A listen that failed: the app may handle it and listen again (get-port probes address after
    // address and takes EINVAL and EADDRNOTAVAIL in its stride), so the start fails with it only if
    // no slot listen follows soon, or the worker exits first. One that fails after the start (another
    // server of the app) is the app's to handle.
    failed: (error) => {
      if (settled) return;
      failure = error;
      timer('listen-failed', NOT_A_SLOT_MS, () => end(error, true));
    },
    forkFailed: (error) => end(error, false),
  };
}
