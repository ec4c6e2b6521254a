// Runs a service under test/fixtures/systemd-harness.py, a harness following systemd's documented protocol
// (sd_notify, the fd store, LISTEN_FDS) because systemd cannot run as PID 1 here, and reads its events.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

const script = path.join(__dirname, '..', 'fixtures', 'systemd-harness.py');

/** Every line the harness prints, by its `event`. */
export type HarnessEvent =
  | { event: 'ready'; pid: number; notifySocket: string; fdstoreMax: number }
  | { event: 'notify'; pid: number | null; fields: Record<string, string>; fds: number; ignored?: string[] }
  | { event: 'started'; pid: number; listenFds: number; names: string[]; inodes: string[] }
  | { event: 'exited'; pid: number; code: number | null; signal: string | null }
  | { event: 'store'; names: string[]; inodes: string[] }
  | { event: 'rejected'; reason: string; pid: number | null; fds: number }
  | { event: 'status'; state: string; mainPid: number | null; statusText: string | null; names: string[]; inodes: string[] }
  | { event: 'done'; command: string }
  | { event: 'error'; message: string; command?: string };

/** The name of an event kind. */
export type HarnessEventName = HarnessEvent['event'];

/** One kind of event. */
export type EventOf<K extends HarnessEventName> = Extract<HarnessEvent, { event: K }>;

/** Harness settings: the unit's FileDescriptorStoreMax=, TimeoutStopSec=, Restart= and the rest. */
export interface HarnessOptions {
  /** FileDescriptorStoreMax= (default 16). */
  fdstoreMax?: number;
  /** Added to this process's environment for the harness and so for the service. */
  env?: Record<string, string>;
  /** TimeoutStopSec= in ms (default 10000). */
  stopTimeoutMs?: number;
  /** Restart= (default 'no') and RestartSec= in ms (default 100). */
  restart?: 'no' | 'on-failure' | 'always';
  restartMs?: number;
  /** FileDescriptorStorePreserve= (default 'restart': the store is released when the service stops for good). */
  fdstorePreserve?: 'restart' | 'yes';
  /** Pass stored fds newest first, as systemd's implementation does (default: store order). */
  newestFirst?: boolean;
  /** The harness's stderr, which carries the service's stdout and stderr: kept (default) or inherited. */
  stderr?: 'pipe' | 'inherit';
}

/** A running harness: its events, and ways to wait for them and to command it. */
export interface Harness {
  child: ChildProcess;
  /** Every event so far, in order; an index into it is a cursor for next(). */
  readonly events: HarnessEvent[];
  /** The 'ready' event: the harness pid and the NOTIFY_SOCKET path. */
  ready: Promise<EventOf<'ready'>>;
  /** Pids the harness reported as started, and main pids the service announced. */
  readonly pids: Set<number>;
  /**
   * The first event at index >= `after` that matches and no earlier next() returned; waits for one
   * up to `timeoutMs`. Rejects on timeout or when the harness exits first.
   */
  next<K extends HarnessEventName>(match: K, timeoutMs?: number, after?: number): Promise<EventOf<K>>;
  next(match: (event: HarnessEvent) => boolean, timeoutMs?: number, after?: number): Promise<HarnessEvent>;
  /** Writes one command line; returns the index the events it causes will have (at least). */
  send(command: string): number;
  /** Sends a command and waits for its 'done' (resolves) or 'error' (rejects). */
  run(command: string, timeoutMs?: number): Promise<EventOf<'done'>>;
  /** What the harness (and the service) wrote on stderr, when kept. */
  stderr(): string;
  /** Sends quit, waits up to `timeoutMs`, then SIGKILLs the harness and every pid in `pids` still alive. */
  close(timeoutMs?: number): Promise<void>;
  /** The harness's exit code (null when killed by a signal). */
  exited: Promise<number | null>;
}

const open = new Set<Harness>();

/** Starts the harness for `command` (the service's command line). The service starts at `start`. */
export function startHarness(command: string[], options: HarnessOptions = {}): Harness {
  const {
    fdstoreMax = 16,
    env = {},
    stopTimeoutMs = 10_000,
    restart = 'no',
    restartMs = 100,
    fdstorePreserve = 'restart',
    newestFirst = false,
    stderr: stderrMode = 'pipe',
  } = options;
  const args = [
    script,
    '--fdstore-max',
    String(fdstoreMax),
    '--stop-timeout-ms',
    String(stopTimeoutMs),
    '--restart',
    restart,
    '--restart-ms',
    String(restartMs),
    '--fdstore-preserve',
    fdstorePreserve,
    ...(newestFirst ? ['--newest-first'] : []),
    '--',
    ...command,
  ];
  const child = spawn('python3', args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', stderrMode] });
  child.stdin?.on('error', () => {}); // EPIPE once it has gone; close() and exited say so

  const events: HarnessEvent[] = [];
  const taken: boolean[] = [];
  const pids = new Set<number>();
  let stderrText = '';
  let gone = false;
  const waiters = new Set<() => void>();

  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderrText = (stderrText + chunk).slice(-64 * 1024);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('close', (code) => {
      gone = true;
      for (const wake of [...waiters]) wake();
      resolve(code);
    });
  });

  let markReady: (event: EventOf<'ready'>) => void = () => {};
  const ready = new Promise<EventOf<'ready'>>((resolve, reject) => {
    markReady = resolve;
    void exited.then((code) => reject(new Error(`systemd-harness exited (${code}) before 'ready': ${stderrText}`)));
  });
  ready.catch(() => {}); // a test that never awaits it must not see an unhandled rejection

  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    let event: HarnessEvent;
    try {
      event = JSON.parse(line) as HarnessEvent;
    } catch {
      event = { event: 'error', message: `not JSON: ${line}` };
    }
    events.push(event);
    taken.push(false);
    if (event.event === 'ready') markReady(event);
    if (event.event === 'started') pids.add(event.pid);
    if (event.event === 'notify' && /^\d+$/.test(event.fields.MAINPID ?? '')) pids.add(Number(event.fields.MAINPID));
    for (const wake of [...waiters]) wake();
  });

  const describe = (match: unknown) => (typeof match === 'string' ? `'${match}'` : 'a matching event');
  const recent = () =>
    events
      .slice(-8)
      .map((event) => JSON.stringify(event))
      .join('\n  ');

  function next(match: string | ((event: HarnessEvent) => boolean), timeoutMs = 10_000, after = 0): Promise<HarnessEvent> {
    const test = typeof match === 'string' ? (event: HarnessEvent) => event.event === match : match;
    return new Promise((resolve, reject) => {
      const look = () => {
        for (let index = after; index < events.length; index++) {
          const event = events[index]!;
          if (!taken[index] && test(event)) {
            taken[index] = true;
            finish();
            resolve(event);
            return;
          }
        }
        if (gone) {
          finish();
          reject(new Error(`systemd-harness exited before ${describe(match)}; last events:\n  ${recent()}\n${stderrText}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no ${describe(match)} from systemd-harness within ${timeoutMs} ms; last events:\n  ${recent()}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        waiters.delete(look);
      };
      waiters.add(look);
      look();
    });
  }

  function send(command: string): number {
    const index = events.length;
    if (!gone) child.stdin?.write(`${command}\n`);
    return index;
  }

  async function run(command: string, timeoutMs = 30_000): Promise<EventOf<'done'>> {
    const after = send(command);
    const outcome = await next((event) => (event.event === 'done' || event.event === 'error') && event.command === command, timeoutMs, after);
    if (outcome.event === 'error') throw new Error(`systemd-harness: ${command}: ${outcome.message}`);
    return outcome as EventOf<'done'>;
  }

  let closing: Promise<void> | undefined;
  const harness: Harness = {
    child,
    events,
    ready,
    pids,
    next: next as Harness['next'],
    send,
    run,
    stderr: () => stderrText,
    exited,
    close(timeoutMs = 15_000) {
      closing ??= (async () => {
        if (!gone) {
          send('quit');
          child.stdin?.end();
          if (!(await within(exited, timeoutMs))) {
            killPid(child.pid);
            await within(exited, 5_000);
          }
        }
        // The service leads its own process group: kill that group, then any announced pid left.
        for (const pid of pids) if (isRunning(pid)) killGroup(pid);
        for (const pid of pids) if (isRunning(pid)) killPid(pid);
        open.delete(harness);
      })();
      return closing;
    },
  };
  open.add(harness);
  return harness;
}

/** Closes every harness still open (for an afterEach). */
export async function closeAllHarnesses(timeoutMs = 15_000): Promise<void> {
  await Promise.all([...open].map((harness) => harness.close(timeoutMs)));
}

/** Whether `pid` is a process that has not exited (a zombie has). */
export function isRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

async function within(promise: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const settled = await Promise.race([promise.then(() => true), timeout]);
  clearTimeout(timer);
  return settled;
}

function killPid(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // no such group
  }
}
