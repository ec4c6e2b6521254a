// `reuseport reload | stop | upgrade`: sends the runner its signal (SIGHUP, SIGTERM, SIGUSR2), then
// follows the outcome on its health server (GET /status's last reload and upgrade, GET /exit for a
// stop), says what happened, and exits 0 only when it did (stop: with the runner's own exit status).
import fs from 'node:fs';
import http from 'node:http';
import type { ExitReport, StatusReport } from '../supervisor/fleet/health';
import type { Outcome } from '../supervisor/fleet/outcomes';
import { formatEvent } from './lines';
import { childrenOf, findHealth, getStatus } from './status';

export type ControlAction = 'reload' | 'stop' | 'upgrade';

export interface ControlOptions {
  pid: number;
  /** How long to wait for the outcome. */
  timeoutMs: number;
  json: boolean;
}

const SIGNALS: Record<ControlAction, NodeJS.Signals> = { reload: 'SIGHUP', stop: 'SIGTERM', upgrade: 'SIGUSR2' };
const POLL_MS = 100;

/** Whether a process runs (a zombie, exited but not yet reaped, does not). */
export function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the command prints: a line (`reload pid=... pids=...`), or one JSON object with --json. */
function say(options: ControlOptions, event: string, fields: Record<string, unknown>): void {
  process.stdout.write(formatEvent(event, fields, options.json));
}

/** A reload's or upgrade's outcome as printed: its fields (an empty list left out), not the bookkeeping ones. */
export function outcomeFields(outcome: Outcome): Record<string, unknown> {
  const { seq: _seq, at: _at, ok: _ok, ...fields } = outcome;
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => !(Array.isArray(value) && value.length === 0)));
}

/** Signals the runner and follows the outcome; resolves with the exit code. */
export async function runControl(action: ControlAction, options: ControlOptions): Promise<number> {
  const health = await findHealth({ pid: options.pid }, action);
  const deadline = Date.now() + options.timeoutMs;
  if (action === 'reload') return reload(health, options, deadline);
  if (action === 'upgrade') return upgrade(health, options, deadline);
  return stop(health, options, deadline);
}

type Health = { host: string; port: number; report: StatusReport };

async function reload({ host, port, report }: Health, options: ControlOptions, deadline: number): Promise<number> {
  const before = report.last?.reload?.seq ?? 0;
  const was = report.slots.flatMap((slot) => (slot.pid === undefined ? [] : [slot.pid]));
  process.kill(options.pid, SIGNALS.reload);
  while (Date.now() < deadline) {
    await sleep(POLL_MS);
    const now = await getStatus(host, port);
    const outcome = now?.pid === options.pid ? now.last?.reload : undefined;
    if (outcome && outcome.seq > before) {
      if (outcome.ok) {
        say(options, 'reload', { pid: options.pid, ...outcomeFields(outcome), was });
        return 0;
      }
      say(options, 'reload-failed', { pid: options.pid, ...outcomeFields(outcome) });
      return 1;
    }
    if (!running(options.pid)) {
      say(options, 'reload-failed', { pid: options.pid, error: `the runner (pid ${options.pid}) exited during the reload` });
      return 1;
    }
  }
  say(options, 'reload-failed', { pid: options.pid, error: `no outcome within ${options.timeoutMs} ms (the runner may still be reloading)` });
  return 1;
}

async function upgrade({ host, port, report }: Health, options: ControlOptions, deadline: number): Promise<number> {
  const before = report.last?.upgrade?.seq ?? 0;
  const upgrades = report.counts.upgrades;
  let successor: StatusReport | undefined;
  // The successor's pid, once the runner's outcome names it.
  let successorPid: number | undefined;
  process.kill(options.pid, SIGNALS.upgrade);
  while (Date.now() < deadline) {
    await sleep(POLL_MS);
    // The successor serves the same health socket: an answer is the predecessor's or the successor's.
    // A control listener (a health port on a non-loopback address) is the runner's own: the successor's is found by its pid.
    successorPid ??= successorChild(options.pid);
    let now = await getStatus(host, port);
    if (successorPid !== undefined && (!now || now.pid === options.pid))
      now = (await findHealth({ pid: successorPid }, 'upgrade').catch(() => undefined))?.report ?? now;
    if (now?.pid === options.pid) {
      const outcome = now.last?.upgrade;
      if (outcome && outcome.seq > before && !outcome.ok) {
        say(options, 'upgrade-failed', { pid: options.pid, ...outcomeFields(outcome) });
        return 1;
      }
      if (outcome && outcome.seq > before && typeof outcome.pid === 'number') successorPid = outcome.pid;
    } else if (now && now.ready && now.counts.upgrades > upgrades) {
      successor = now;
    }
    // Done once the successor serves and the old runner has drained and exited.
    if (successor && !running(options.pid)) {
      const workers = successor.slots.flatMap((slot) => (slot.pid === undefined ? [] : [slot.pid]));
      say(options, 'upgrade', { from: options.pid, to: successor.pid, workers });
      return 0;
    }
    if (!successor && !running(options.pid)) {
      say(options, 'upgrade-failed', { pid: options.pid, error: `the runner (pid ${options.pid}) exited and no successor serves its health port ${port}` });
      return 1;
    }
  }
  const where = successor ? `the successor (pid ${successor.pid}) serves, but pid ${options.pid} has not exited yet` : 'no successor serves yet';
  say(options, 'upgrade-failed', { pid: options.pid, error: `no outcome within ${options.timeoutMs} ms: ${where}` });
  return 1;
}

// An upgrade's successor while the runner runs: its child with the same command line (the workers run the script).
function successorChild(pid: number): number | undefined {
  const command = (of: number) => {
    try {
      return fs.readFileSync(`/proc/${of}/cmdline`, 'latin1');
    } catch {
      return undefined;
    }
  };
  const own = command(pid);
  if (!own) return undefined;
  try {
    return childrenOf(pid, '/proc').find((child) => command(child) === own);
  } catch {
    return undefined;
  }
}

// GET /exit: answered once the runner has stopped its workers; undefined if the connection ends first.
function awaitExit(host: string, port: number, timeoutMs: number): { opened: Promise<void>; report: Promise<ExitReport | undefined> } {
  let opened: () => void = () => undefined;
  const openedPromise = new Promise<void>((resolve) => {
    opened = resolve;
  });
  const report = new Promise<ExitReport | undefined>((resolve) => {
    const request = http.get({ host, port, path: '/exit', agent: false, timeout: timeoutMs }, (response) => {
      // The head comes at once: the server holds the request.
      opened();
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        try {
          resolve(JSON.parse(body) as ExitReport);
        } catch {
          resolve(undefined);
        }
      });
      response.on('error', () => resolve(undefined));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => {
      opened();
      resolve(undefined);
    });
  });
  return { opened: openedPromise, report };
}

async function stop({ host, port }: Health, options: ControlOptions, deadline: number): Promise<number> {
  const exit = awaitExit(host, port, options.timeoutMs);
  await exit.opened;
  process.kill(options.pid, SIGNALS.stop);
  const report = await exit.report;
  while (running(options.pid) && Date.now() < deadline) await sleep(POLL_MS / 4);
  if (running(options.pid)) {
    say(options, 'stop-failed', { pid: options.pid, error: `pid ${options.pid} still runs after ${options.timeoutMs} ms` });
    return 1;
  }
  if (!report) {
    say(options, 'stopped', { pid: options.pid, exitCode: 'unknown', error: 'its health server closed without saying how the drain ended' });
    return 1;
  }
  say(options, 'stopped', { pid: options.pid, exitCode: report.exitCode, cut: report.cut, killed: report.killed });
  return report.exitCode;
}
