// PID 1 duties: a runner that is PID 1 of a container (no --init, no tini), or a subreaper asked for,
// is given every orphaned process of its tree, and must reap them or they stay zombies, filling the
// pid table. It must never take the exit status of a child libuv waits for (a worker, an upgrade's
// successor, any ChildProcess of this process): that child's 'exit' would never come. So it peeks
// (waitid with WNOWAIT leaves the child waitable) and reaps by pid only a pid that is none of its own.
// Checked on SIGCHLD and every REAP_MS.
import { ChildProcess } from 'node:child_process';
import cluster from 'node:cluster';
import type { NativeBinding } from '../../binding';
import { modeUnsupported } from '../../errors';

/** How often the orphans are looked for besides SIGCHLD (a signal can be coalesced or missed). */
export const REAP_MS = 150;
/** The most orphans reaped in one pass (the next pass goes on). */
export const REAP_BATCH = 256;

/** Whether this process reaps orphans (pure): as PID 1, or as a subreaper asked for; undefined when neither. */
export function reaperRole(pid: number, subreaper: boolean): 'pid 1' | 'subreaper' | undefined {
  if (pid === 1) return 'pid 1';
  return subreaper ? 'subreaper' : undefined;
}

/** What to do with the exited child a peek found (pure): nothing (none), leave it to libuv (ours), or reap it. */
export function orphanVerdict(pid: number, own: ReadonlySet<number>): 'none' | 'ours' | 'reap' {
  if (pid <= 0) return 'none';
  return own.has(pid) ? 'ours' : 'reap';
}

// Every ChildProcess this process started since the reaper was installed, by pid, until its 'exit':
// ChildProcess.prototype.spawn is what spawn, fork, exec, execFile and cluster.fork all go through.
const spawned = new Set<number>();
let tracking = false;

function trackChildren(): void {
  if (tracking) return;
  tracking = true;
  const proto = ChildProcess.prototype as unknown as { spawn: (this: ChildProcess, ...args: unknown[]) => unknown };
  const original = proto.spawn;
  proto.spawn = function spawn(this: ChildProcess, ...args: unknown[]) {
    const result = original.apply(this, args);
    const { pid } = this;
    if (pid !== undefined) {
      spawned.add(pid);
      this.once('exit', () => spawned.delete(pid));
    }
    return result;
  };
}

/** This process's own live children: those started since tracking began, every ref'd ChildProcess, the cluster's workers. */
export function ownChildren(): Set<number> {
  const own = new Set(spawned);
  const handles = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles?.() ?? [];
  for (const handle of handles) if (handle instanceof ChildProcess && handle.pid !== undefined) own.add(handle.pid);
  for (const worker of Object.values(cluster.workers ?? {})) if (worker?.process.pid !== undefined) own.add(worker.process.pid);
  return own;
}

/** Reaps the orphans given to this process, never a child of its own. */
export class OrphanReaper {
  readonly #binding: Pick<NativeBinding, 'peekExitedChild' | 'reapChild'>;
  readonly #own: () => ReadonlySet<number>;
  #timer: NodeJS.Timeout | undefined;
  /** Orphans reaped so far. */
  reaped = 0;
  readonly #onSigchld = () => this.reap();

  constructor(binding: Pick<NativeBinding, 'peekExitedChild' | 'reapChild'>, own: () => ReadonlySet<number> = ownChildren) {
    this.#binding = binding;
    this.#own = own;
  }

  /** One pass: reaps exited orphans until none is left or the next exited child is one of ours (libuv's to wait for). */
  reap(): number {
    let count = 0;
    let own: ReadonlySet<number> | undefined;
    while (count < REAP_BATCH) {
      let pid: number;
      try {
        pid = this.#binding.peekExitedChild();
      } catch {
        return count;
      }
      own ??= this.#own();
      const verdict = orphanVerdict(pid, own);
      if (verdict !== 'reap') return count;
      try {
        if (this.#binding.reapChild(pid) !== pid) return count;
      } catch {
        // gone already (ECHILD): someone else waited for it
        return count;
      }
      count += 1;
      this.reaped += 1;
    }
    return count;
  }

  start(intervalMs = REAP_MS): void {
    if (this.#timer) return;
    trackChildren();
    this.#timer = setInterval(() => this.reap(), intervalMs).unref();
    process.on('SIGCHLD', this.#onSigchld);
    this.reap();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    process.off('SIGCHLD', this.#onSigchld);
  }
}

/**
 * The reaper this process needs (as PID 1, or with `subreaper`: made one through prctl first), started;
 * undefined when it needs none. A subreaper asked for where there is none (not Linux, no addon) throws
 * ERR_REUSEPORT_MODE_UNSUPPORTED.
 */
export function startReaper(binding: NativeBinding | undefined, subreaper: boolean, pid: number = process.pid): OrphanReaper | undefined {
  const role = reaperRole(pid, subreaper);
  if (!role) return undefined;
  if (!binding) {
    if (role === 'subreaper') throw modeUnsupported('reuseport: subreaper cannot be used: it needs the native addon (prctl(PR_SET_CHILD_SUBREAPER), waitid)');
    // PID 1 without the addon: nothing can peek without taking libuv's statuses.
    process.emitWarning(
      'reuseport: this process is PID 1 but cannot reap orphaned processes without the native addon: run it under an init (docker run --init, tini)',
      {
        code: 'REUSEPORT_NO_REAPER',
      },
    );
    return undefined;
  }
  if (role === 'subreaper') {
    try {
      binding.setChildSubreaper(true);
    } catch (error) {
      throw modeUnsupported(`reuseport: subreaper cannot be used: ${(error as Error).message}`);
    }
  }
  const reaper = new OrphanReaper(binding);
  reaper.start();
  return reaper;
}
