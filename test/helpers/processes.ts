// Starts fixture processes that report over IPC, and always stops them by pid.
import { type ChildProcess, fork, spawn } from 'node:child_process';
import path from 'node:path';

export const fixtures = path.join(__dirname, '..', 'fixtures');

const started = new Set<ChildProcess>();

/** A fixture process and a way to wait for its next IPC message of a given type. */
export interface Fixture {
  child: ChildProcess;
  next<T = Record<string, unknown>>(type: string, timeoutMs?: number): Promise<T>;
  exited: Promise<number | null>;
}

function wrap(child: ChildProcess): Fixture {
  started.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      started.delete(child);
      resolve(code);
    });
  });
  // A bound, not an expectation: a start of a supervisor and its workers took over 15 s under the
  // sanitizer build on a loaded machine. Waits end at the message, so a passing run is no slower.
  const next = <T>(type: string, timeoutMs = 30_000) =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no "${type}" message from pid ${child.pid} within ${timeoutMs} ms`));
      }, timeoutMs);
      const onMessage = (message: { type?: string }) => {
        if (message?.type !== type) return;
        cleanup();
        resolve(message as T);
      };
      const onExit = (code: number | null) => {
        cleanup();
        reject(new Error(`pid ${child.pid} exited with ${code} before sending "${type}"`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  return { child, next, exited };
}

/** Forks `test/fixtures/<name>` with an IPC channel (`node` flags in `options.execArgv`, run in `options.cwd`). */
export function startFixture(name: string, args: string[] = [], env: NodeJS.ProcessEnv = {}, options: { execArgv?: string[]; cwd?: string } = {}): Fixture {
  const child = fork(path.join(fixtures, name), args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    ...options,
  });
  return wrap(child);
}

/** Spawns a command (e.g. `unshare`) whose last process is a fixture speaking IPC on fd 3. */
export function spawnFixture(command: string, args: string[]): Fixture {
  const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return wrap(child);
}

/** Kills every fixture still running (SIGKILL by pid) and waits for each to exit, bounded. */
export async function stopAll(timeoutMs = 5_000): Promise<void> {
  const waits = [...started].map(
    (child) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(resolve, timeoutMs);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        if (child.pid) {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }),
  );
  await Promise.all(waits);
  started.clear();
}
