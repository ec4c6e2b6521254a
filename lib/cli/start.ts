// `reuseport start <script> [args...]`: runs startCluster for a script (an ordinary app: the workers
// preload the hook, so its server.listen(port) listens on a slot; or one that calls listenReusePort),
// as a process runner: SIGHUP reloads the workers, SIGUSR2 upgrades the whole runner (the successor
// runs this same command line), SIGTERM/SIGINT shut down gracefully; one line per event on stdout;
// a pid file that names the runner serving now (rewritten by an upgrade's successor, removed on exit).
import fs from 'node:fs';
import path from 'node:path';
import { startCluster } from '../supervisor/start-cluster';
import { upgradeFailed } from '../supervisor/deploy/successor';
import type { CrashLoopEvent, ForkEvent, ReloadResult, RunnerStartOptions, Supervisor } from '../supervisor/core/types';
import type { MemoryLimitEvent, RestartEvent } from '../supervisor/core/events';
import { formatSize } from '../supervisor/liveness/memory';
import type { ModeChoice } from '../plan/plan';
import type { CommandSyntax } from './args';
import { launcherMessage } from './launchers';
import { formatEvent } from './lines';
import { EXIT_FLUSH_MS, OutputRelay, outputMode, runnerStdout } from './output';
import { checkPidFilePath, removePidFile, writePidFile } from './pid-file';
import { UsageError } from './usage-error';

export { formatEvent } from './lines';

/** `reuseport start`'s options, as parsed from the command line. */
export interface StartCommandOptions {
  workers?: number;
  mode?: ModeChoice;
  cpuLocal?: boolean;
  /** `--sticky ip`: each client address stays on one worker (startCluster's sticky). */
  sticky?: 'ip';
  healthPort?: number;
  healthHost?: string;
  pidFile?: string;
  drainTimeout?: number;
  shutdownDelay?: number;
  minUptime?: number;
  maxRestarts?: number;
  maxDraining?: number;
  json?: boolean;
  /** false (`--no-balance`): no shedding of keep-alive connections to even out the workers. */
  balance?: boolean;
  /** false (`--no-register`): the workers do not preload the hook. */
  register?: boolean;
  /** --prefix-output (true), --no-prefix-output (false), or neither. */
  prefixOutput?: boolean;
  /** `--instance-var NAME`: the variable that tells each worker its slot (default NODE_APP_INSTANCE). */
  instanceVar?: string;
  /** `--node-args "<flags>"`, split: Node's flags for every worker. */
  nodeArgs?: string[];
  /** `--subreaper`: reap orphaned processes as an init does (always as PID 1). */
  subreaper?: boolean;
  /** `--max-memory-restart <size>`, in bytes. */
  maxMemoryRestart?: number;
  /** How the command line was read (told to an upgrade's successor, which reruns it). */
  syntax?: CommandSyntax;
}

export { UsageError } from './usage-error';

/**
 * The runner's one line for a start that failed (pure): its own prefix once (the library's
 * `reuseport: ` dropped), the address a worker's listen really tried where node:cluster's message
 * says null, the error's code at the end unless the message says it already.
 */
export function startFailure(error: Error & { code?: unknown }): string {
  // node:cluster's "null:3000" in a worker's listen error: the address its advice names instead.
  const message = error.message
    .replace(/^reuseport: /, '')
    .replace(/ null:(\d+) \(on (\S+):\1: /, ' $2:$1 (')
    .replace(/ null:(\d+) \(on (\S+):\1\)/, ' $2:$1');
  const code = typeof error.code === 'string' && !message.includes(error.code) ? ` (${error.code})` : '';
  return `reuseport start: ${message}${code}`;
}

/** Why SIGUSR2 upgrades nothing when the runner is PID 1 (ERR_REUSEPORT_UPGRADE_FAILED). */
export function upgradeAsPid1(): Error {
  return upgradeFailed(
    'this runner is PID 1 of its pid namespace (a container): when it exits the kernel ends every process in the namespace, ' +
      'the successor too. Deploy a new container, or reload (SIGHUP) for new workers',
  );
}

/** Checks what can be checked before starting: the script and the pid file's directory. */
export function checkStart(script: string, options: StartCommandOptions): { script: string; pidFile: string | undefined } {
  const resolved = path.resolve(script);
  const launcher = launcherMessage(script, realPath(resolved));
  if (launcher) throw new UsageError(launcher);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(resolved);
  } catch {
    throw new UsageError(`reuseport start: the script ${resolved} does not exist`);
  }
  if (!stat.isFile()) throw new UsageError(`reuseport start: ${resolved} is not a file`);
  const pidFile = options.pidFile === undefined ? undefined : checkPidFilePath(options.pidFile);
  return { script: resolved, pidFile };
}

// Where a link (node_modules/.bin/tsx) leads; undefined for a missing file.
function realPath(file: string): string | undefined {
  try {
    return fs.realpathSync(file);
  } catch {
    return undefined;
  }
}

/**
 * Why a worker died, from the last lines of its stderr (pure): the error Node printed for an uncaught
 * exception (`RangeError [ERR_SOCKET_BAD_PORT]: ...`), else its last lines.
 */
export function stderrReason(tail: string[]): string {
  const error = [...tail].reverse().find((line) => /^(\w*Error|Error)\b.*?: /.test(line) || /^\w*Error \[\w+\]: /.test(line));
  if (error) return `its error: ${error}`;
  const last = tail.filter((line) => line.trim() !== '').slice(-3);
  return last.length > 0 ? `its stderr ended with: ${last.join(' | ')}` : 'it wrote nothing to stderr';
}

// A worker that died before it listened: its message ends with the last lines it wrote to stderr.
async function withStderrTail(error: Error, relay: OutputRelay | undefined): Promise<Error> {
  const pid = Number(/before it listened/.test(error.message) ? /\(pid (\d+)\)/.exec(error.message)?.[1] : Number.NaN);
  if (!relay || !Number.isInteger(pid)) return error;
  error.message += `: ${stderrReason(await relay.tail(pid))}`;
  return error;
}

/** Runs the command; resolves once every worker listens (the process then lives until a signal). */
export async function runStart(script: string, args: string[], options: StartCommandOptions): Promise<Supervisor> {
  const checked = checkStart(script, options);
  const json = options.json === true;
  // Off the event loop: a terminal that stops reading must not stop the supervisor.
  const stdout = runnerStdout();
  const say = (event: string, fields: Record<string, unknown> = {}) => stdout.write(formatEvent(event, fields, json));
  const mode = outputMode(options, process.stdout.isTTY === true);
  const relay = mode === 'raw' ? undefined : new OutputRelay(mode);
  let supervisor: Supervisor;
  try {
    const startOptions: RunnerStartOptions = {
      exec: checked.script,
      args,
      ...(options.workers === undefined ? {} : { workers: options.workers }),
      ...(options.mode === undefined ? {} : { mode: options.mode }),
      ...(options.cpuLocal ? { cpuLocal: true } : {}),
      ...(options.sticky === undefined ? {} : { sticky: options.sticky }),
      // Always a health server (an ephemeral loopback port unless given): `reuseport status` asks it.
      health: { port: options.healthPort ?? 0, ...(options.healthHost ? { host: options.healthHost } : {}) },
      ...(options.drainTimeout === undefined ? {} : { drainTimeoutMs: options.drainTimeout }),
      ...(options.shutdownDelay === undefined ? {} : { shutdownDelayMs: options.shutdownDelay }),
      ...(options.minUptime === undefined ? {} : { minUptimeMs: options.minUptime }),
      ...(options.maxRestarts === undefined ? {} : { maxRestarts: options.maxRestarts }),
      ...(options.maxDraining === undefined ? {} : { maxDraining: options.maxDraining }),
      reloadOnSighup: true,
      // As PID 1 an upgrade would end the container: the successor dies with this process (below).
      upgradeOnSigusr2: process.pid !== 1,
      register: options.register !== false,
      ...(options.balance === false ? { balance: false } : {}),
      output: relay ? (event: ForkEvent) => relay.add(event) : 'inherit',
      ...(options.syntax ? { commandSyntax: options.syntax } : {}),
      ...(options.instanceVar === undefined ? {} : { instanceVar: options.instanceVar }),
      ...(options.nodeArgs === undefined ? {} : { nodeArgs: options.nodeArgs }),
      ...(options.subreaper ? { subreaper: true } : {}),
      ...(options.maxMemoryRestart === undefined ? {} : { maxMemoryRestart: options.maxMemoryRestart }),
    };
    supervisor = await startCluster(startOptions);
  } catch (error) {
    throw await withStderrTail(error as Error, relay);
  }
  // A worker that died: the one that next listens on its slot replaces it (said on its listening line).
  const died = new Map<number, number>();
  supervisor.on('listening', ({ slot, pid, port }) => {
    const replaces = died.get(slot);
    died.delete(slot);
    say('listening', { slot, pid, port, ...(replaces === undefined ? {} : { replaces }) });
  });
  supervisor.on('exit', ({ slot, pid, code, signal, expected }) => {
    if (expected) return;
    died.set(slot, pid);
    say('exit', { slot, pid, code, signal });
  });
  // A worker replaced for its memory: which, why, by whom (its own 'listening' line came before).
  supervisor.on('restart', ({ slot, pid, reason, rss, limit, by }: RestartEvent) =>
    say('restart', { slot, pid, reason, rss: json ? rss : formatSize(rss), limit: json ? limit : formatSize(limit), by }),
  );
  supervisor.on('memory-limit-too-low', ({ slot, pid, rss, limit }: MemoryLimitEvent) => {
    say('memory-limit-too-low', { slot, pid, rss: json ? rss : formatSize(rss), limit: json ? limit : formatSize(limit) });
    process.stderr.write(
      `reuseport start: --max-memory-restart ${formatSize(limit)} is too low: slot ${slot}'s new workers were over it at their first check ` +
        `(pid ${pid}: ${formatSize(rss)}), so its workers are no longer replaced for memory; raise the limit above what a fresh worker needs\n`,
    );
  });
  supervisor.on('stall', ({ slot, pid, lentTo, during }) => say('stall', { slot, pid, lentTo, during }));
  supervisor.on('recover', ({ slot, pid, stalledMs }) => say('recover', { slot, pid, stalledMs }));
  supervisor.on('stall-replace', ({ slot, pid }) => say('stall-replace', { slot, pid }));
  supervisor.on('stall-detection-off', ({ reason }) => say('stall-detection-off', { reason }));
  supervisor.on('reload', ({ pids, cut, killed }: ReloadResult) => say('reload', { pids, cut, killed: killed.length > 0 ? killed : undefined }));
  supervisor.on('crash-loop', async (event: CrashLoopEvent) => {
    say('crash-loop', {
      slot: event.slot,
      pid: event.pid,
      code: event.code ?? undefined,
      signal: event.signal ?? undefined,
      restarts: event.restarts,
      serving: event.serving,
    });
    if (event.serving > 0) return;
    // Nothing serves any more: the runner ends, non-zero, with one line naming the cause.
    const how = event.signal ? `was killed by ${event.signal}` : `exited with code ${event.code}`;
    // With the output relayed, the last worker's own error (or its stderr's last lines) too.
    const why = relay ? `: ${stderrReason(await relay.tail(event.pid))}` : '';
    process.stderr.write(
      `reuseport start: every slot stopped restarting: the workers kept dying within ${event.minUptimeMs} ms of their start ` +
        `(${event.restarts} restarts in a row per slot; the last, pid ${event.pid}, ${how})${why}\n`,
    );
    supervisor.shutdown({ delayMs: 0, exit: false }).finally(async () => {
      await stdout.whenIdle(EXIT_FLUSH_MS);
      process.exit(1);
    });
  });
  supervisor.on('reload-failed', (error: Error) => say('reload-failed', { error: error.message }));
  supervisor.on('upgrade', ({ pid }) => say('upgrade', { from: process.pid, to: pid }));
  supervisor.on('upgrade-failed', (error: Error) => say('upgrade-failed', { error: error.message }));
  if (process.pid === 1) process.on('SIGUSR2', () => supervisor.emit('upgrade-failed', upgradeAsPid1()));
  supervisor.on('shutdown', ({ signal }) => say('shutdown', { pid: process.pid, signal }));
  supervisor.on('foreign', ({ address, port, processes }) => say('foreign', { address, port, pids: processes.map((p: { pid: number }) => p.pid) }));
  // The last line: how this runner ends (also after an upgrade: 0 once the successor serves).
  process.on('exit', (code) => {
    stdout.write(formatEvent('stopped', { pid: process.pid, code }, json));
    stdout.flushSync();
  });
  if (checked.pidFile) {
    const file = checked.pidFile;
    writePidFile(file);
    process.on('exit', () => removePidFile(file));
  }
  say('ready', {
    pid: process.pid,
    mode: supervisor.plan.mode,
    workers: supervisor.pids,
    ports: supervisor.ports,
    ...(supervisor.healthPort === undefined ? {} : { health: supervisor.healthPort }),
  });
  return supervisor;
}
