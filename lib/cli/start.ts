// `reuseport start <script> [args...]`: runs startCluster for a script (an ordinary app: the workers
// preload the hook, so its server.listen(port) listens on a slot; or one that calls listenReusePort),
// as a process runner: SIGHUP reloads the workers, SIGUSR2 upgrades the whole runner (the successor
// runs this same command line), SIGTERM/SIGINT shut down gracefully; one line per event on stdout;
// a pid file that names the runner serving now (rewritten by an upgrade's successor, removed on exit).
import fs from 'node:fs';
import path from 'node:path';
import { startCluster } from '../supervisor/start-cluster';
import type { CrashLoopEvent, ReloadResult, Supervisor } from '../supervisor/core/types';
import type { ModeChoice } from '../plan/plan';

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
  /** false (`--no-register`): the workers do not preload the hook. */
  register?: boolean;
}

/** Why the command cannot start, said before anything is started (exit code 2). */
export class UsageError extends Error {}

/** Checks what can be checked before starting: the script and the pid file's directory. */
export function checkStart(script: string, options: StartCommandOptions): { script: string; pidFile: string | undefined } {
  const resolved = path.resolve(script);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(resolved);
  } catch {
    throw new UsageError(`reuseport start: the script ${resolved} does not exist`);
  }
  if (!stat.isFile()) throw new UsageError(`reuseport start: ${resolved} is not a file`);
  const pidFile = options.pidFile === undefined ? undefined : path.resolve(options.pidFile);
  if (pidFile) {
    const dir = path.dirname(pidFile);
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UsageError(`reuseport start: the pid file's directory ${dir} does not exist`);
  }
  return { script: resolved, pidFile };
}

/** One event as a line: `key=value` words, or one JSON object with --json. */
export function formatEvent(event: string, fields: Record<string, unknown>, json: boolean): string {
  if (json) return `${JSON.stringify({ event, time: new Date().toISOString(), ...fields })}\n`;
  const words = Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === 'string' && /\s/.test(value) ? JSON.stringify(value) : String(value)}`);
  return `${[event, ...words].join(' ')}\n`;
}

// Written next to the final path, then renamed: a reader never sees a half-written pid.
function writePidFile(file: string): void {
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, `${process.pid}\n`);
  fs.renameSync(temporary, file);
}

// Removed only while it names this process: after an upgrade it names the successor.
function removePidFile(file: string): void {
  try {
    if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file);
  } catch {
    // gone already
  }
}

/** Runs the command; resolves once every worker listens (the process then lives until a signal). */
export async function runStart(script: string, args: string[], options: StartCommandOptions): Promise<Supervisor> {
  const checked = checkStart(script, options);
  const json = options.json === true;
  const say = (event: string, fields: Record<string, unknown> = {}) => process.stdout.write(formatEvent(event, fields, json));
  const supervisor = await startCluster({
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
    upgradeOnSigusr2: true,
    register: options.register !== false,
  });
  supervisor.on('listening', ({ slot, pid, port }) => say('listening', { slot, pid, port }));
  supervisor.on('exit', ({ slot, pid, code, signal, expected }) => {
    if (!expected) say('exit', { slot, pid, code, signal });
  });
  supervisor.on('stall', ({ slot, pid, lentTo }) => say('stall', { slot, pid, lentTo }));
  supervisor.on('recover', ({ slot, pid, stalledMs }) => say('recover', { slot, pid, stalledMs }));
  supervisor.on('stall-replace', ({ slot, pid }) => say('stall-replace', { slot, pid }));
  supervisor.on('stall-detection-off', ({ reason }) => say('stall-detection-off', { reason }));
  supervisor.on('reload', ({ pids, cut, killed }: ReloadResult) => say('reload', { pids: pids.join(','), cut, killed: killed.length > 0 ? killed.join(',') : undefined }));
  supervisor.on('crash-loop', (event: CrashLoopEvent) => {
    say('crash-loop', { slot: event.slot, pid: event.pid, code: event.code ?? undefined, signal: event.signal ?? undefined, restarts: event.restarts, serving: event.serving });
    if (event.serving > 0) return;
    // Nothing serves any more: the runner ends, non-zero, with one line naming the cause.
    const how = event.signal ? `was killed by ${event.signal}` : `exited with code ${event.code}`;
    process.stderr.write(
      `reuseport start: every slot stopped restarting: the workers kept dying within ${event.minUptimeMs} ms of their start ` +
        `(${event.restarts} restarts in a row per slot; the last, pid ${event.pid}, ${how})\n`,
    );
    supervisor.shutdown({ delayMs: 0, exit: false }).finally(() => process.exit(1));
  });
  supervisor.on('reload-failed', (error: Error) => say('reload-failed', { error: error.message }));
  supervisor.on('upgrade', ({ pid }) => say('upgrade', { from: process.pid, to: pid }));
  supervisor.on('upgrade-failed', (error: Error) => say('upgrade-failed', { error: error.message }));
  supervisor.on('shutdown', ({ signal }) => say('shutdown', { pid: process.pid, signal }));
  supervisor.on('foreign', ({ address, port, processes }) => say('foreign', { address, port, pids: processes.map((p: { pid: number }) => p.pid).join(',') }));
  if (checked.pidFile) {
    const file = checked.pidFile;
    writePidFile(file);
    process.on('exit', () => removePidFile(file));
  }
  say('ready', {
    pid: process.pid,
    mode: supervisor.plan.mode,
    workers: supervisor.pids.join(','),
    ports: supervisor.ports.join(','),
    ...(supervisor.healthPort === undefined ? {} : { health: supervisor.healthPort }),
  });
  return supervisor;
}
