// Starting a successor supervisor for an upgrade in place: the slot sockets are inherited as fds
// 4.. (spawn's stdio), the hand-over is described in its environment, and fd 3 is a readiness
// channel on which the successor writes one JSON line once every slot of it listens (or why it
// failed). Like tableflip's: a successor that dies, fails or is late is stopped, and the caller
// keeps serving.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { invalidArgType, nodeError } from '../../errors';
import { HANDOVER_ENV, type HandedSocket, type Handover, type HandoverNotes } from './handover';

/** The readiness channel's fd in the successor. */
const READY_FD = 3;

/** ERR_REUSEPORT_UPGRADE_FAILED: the successor did not take over; the caller still serves. */
export function upgradeFailed(message: string, cause?: unknown): Error {
  const error = nodeError(Error, 'ERR_REUSEPORT_UPGRADE_FAILED', `reuseport: the upgrade failed, this supervisor keeps serving: ${message}`);
  if (cause !== undefined) Object.assign(error, { cause });
  return error;
}

/** This process's own command line: the default successor (new code on disk, a new Node at the same path). */
export function ownCommand(): string[] {
  return [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
}

/** Checks an upgrade command ([file, ...args], non-empty strings). */
export function checkCommand(command: unknown): string[] {
  if (!Array.isArray(command) || command.length === 0 || !command.every((part) => typeof part === 'string' && part !== '' && !part.includes('\0'))) {
    throw invalidArgType('options.command', 'a non-empty array of non-empty strings', command);
  }
  return command as string[];
}

/** A started successor: its process, and a promise that settles when it is ready or has failed. */
export interface Successor {
  child: ChildProcess;
  ready: Promise<void>;
  /** Stops it (SIGTERM, SIGKILL after `graceMs`); resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts `command` with the sockets handed over; `ready` rejects with ERR_REUSEPORT_UPGRADE_FAILED. */
export function startSuccessor(
  command: string[],
  sockets: (Omit<HandedSocket, 'fd'> & { sourceFd: number })[],
  readyTimeoutMs: number,
  healthFd?: number,
  ticketKey?: Buffer,
  notes: HandoverNotes = {},
): Successor {
  const [file, ...args] = command as [string, ...string[]];
  const inherited = [...sockets.map((socket) => socket.sourceFd), ...(healthFd === undefined ? [] : [healthFd])];
  // After the inherited fds: a pipe that carries the ticket key, written once and closed.
  const keysFd = READY_FD + 1 + inherited.length;
  const handover: Handover = {
    ...notes,
    from: process.pid,
    ready: READY_FD,
    sockets: sockets.map(({ sourceFd: _, ...socket }, index) => ({ ...socket, fd: READY_FD + 1 + index })),
    ...(healthFd === undefined ? {} : { health: READY_FD + 1 + sockets.length }),
    ...(ticketKey === undefined ? {} : { keys: keysFd }),
  };
  const child = spawn(file, args, {
    stdio: ['inherit', 'inherit', 'inherit', 'pipe', ...inherited, ...(ticketKey === undefined ? [] : ['pipe' as const])],
    env: { ...process.env, [HANDOVER_ENV]: JSON.stringify(handover) },
  });
  if (ticketKey !== undefined) {
    const keys = child.stdio[keysFd] as Writable | null;
    keys?.on('error', () => undefined);
    keys?.end(Buffer.from(ticketKey));
  }
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const stop = async (graceMs = 5_000) => {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    }
  };
  const ready = new Promise<void>((resolve, reject) => {
    const channel = child.stdio[READY_FD] as Readable | null;
    let text = '';
    let settled = false;
    const settle = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      channel?.destroy();
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(
      () => settle(upgradeFailed(`the successor (pid ${child.pid}) did not serve every slot within ${readyTimeoutMs} ms`)),
      readyTimeoutMs,
    );
    child.once('error', (error) => settle(upgradeFailed(`the successor could not be started (${(error as Error).message})`, error)));
    child.once('exit', (code, signal) => settle(upgradeFailed(`the successor (pid ${child.pid}) exited (${signal ?? code}) before it served every slot`)));
    channel?.setEncoding('utf8');
    channel?.on('error', () => undefined);
    channel?.on('data', (chunk: string) => {
      text += chunk;
      const line = text.split('\n')[0];
      if (line === undefined || !text.includes('\n')) return;
      let report: { ready?: boolean; error?: string };
      try {
        report = JSON.parse(line);
      } catch {
        return settle(upgradeFailed(`the successor (pid ${child.pid}) wrote ${JSON.stringify(line.slice(0, 80))} on its readiness channel`));
      }
      if (report.ready === true) settle();
      else settle(upgradeFailed(`the successor (pid ${child.pid}) failed: ${report.error ?? 'no reason given'}`));
    });
  });
  return { child, ready, stop };
}

/** In the successor: reads the ticket key its predecessor wrote on `fd` (until end of file), and closes it. */
export function readHandedKey(fd: number): Buffer | undefined {
  const chunks: Buffer[] = [];
  const chunk = Buffer.alloc(256);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + 5_000;
  try {
    for (;;) {
      let read: number;
      try {
        read = fs.readSync(fd, chunk, 0, chunk.length, null);
      } catch (error) {
        // A non-blocking pipe with nothing yet: wait a little (bounded); the predecessor writes at once.
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || Date.now() > deadline) throw error;
        Atomics.wait(pause, 0, 0, 5);
        continue;
      }
      if (read === 0) break;
      chunks.push(Buffer.from(chunk.subarray(0, read)));
    }
  } catch {
    return undefined;
  } finally {
    chunk.fill(0);
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
  }
  const key = Buffer.concat(chunks);
  for (const part of chunks) part.fill(0);
  return key;
}

/** In the successor: tells the predecessor that every slot is served, or why it failed; closes the channel. */
export function reportToPredecessor(fd: number, outcome: { ready: true } | { error: string }): void {
  try {
    fs.writeSync(fd, `${JSON.stringify({ ...outcome, pid: process.pid })}\n`);
  } catch {
    // the predecessor is gone or stopped listening: it no longer waits for us
  }
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}
