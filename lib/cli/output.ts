// The workers' output under `reuseport start`: passed through untouched (each worker writes to the
// runner's own stdout and stderr: no pipe at all), or read from a pipe per worker and written line by
// line, prefixed with `[slot pid]`, or as one JSON object per line ({ event: 'output', slot, pid,
// stream, line }). Read lines are written with fs.write on the thread pool, never with a blocking
// write on the event loop (Node writes to a terminal or a file synchronously): a terminal that stops
// reading stops the writes, not the supervisor. Past a bound the workers' pipes are paused; a worker
// then buffers its writes in its own memory, as Node does for any stdout that is a pipe (on an
// inherited terminal it would block instead). bench/output.mjs measures the cost.
import type { Readable } from 'node:stream';
import SonicBoom from 'sonic-boom';
import type { ForkEvent } from '../supervisor/core/types';
import { formatEvent } from './lines';

export type OutputMode = 'raw' | 'prefix' | 'json';

/** The mode (pure): --no-prefix-output raw; --json objects; --prefix-output, or a terminal, prefixed; else raw. */
export function outputMode(options: { json?: boolean; prefixOutput?: boolean }, stdoutIsTerminal: boolean): OutputMode {
  if (options.prefixOutput === false) return 'raw';
  if (options.json) return 'json';
  return options.prefixOutput === true || stdoutIsTerminal ? 'prefix' : 'raw';
}

/** One line as written (pure): `[slot pid] line` or a JSON object. */
export function formatOutput(mode: 'prefix' | 'json', slot: number, pid: number, stream: 'stdout' | 'stderr', line: string): string {
  return mode === 'json' ? formatEvent('output', { slot, pid, stream, line }, true) : `[${slot} ${pid}] ${line}\n`;
}

/** Bytes queued for a descriptor past which the workers' pipes are paused. */
export const HIGH_WATER = 1 << 20;
/**
 * How long the runner waits, before an exit of its own, for the lines queued to its stdout: a write
 * still on the thread pool is lost when the process exits, and under load (a sanitizer build, the
 * workers' relayed output) 1 s was seen to lose the last lines (the crash-loop ones).
 */
export const EXIT_FLUSH_MS = 5_000;
/** A line longer than this is cut into pieces of this length. */
export const MAX_LINE = 64 * 1024;

/**
 * Writes to a descriptor off the event loop, one write at a time (sonic-boom, pino's writer, in its
 * asynchronous mode: fs.write on the thread pool), so a terminal that stops reading (Ctrl-S, a paused
 * pager) holds a pool thread, not the event loop: Node's own process.stdout writes to a terminal or a
 * file synchronously. sonic-boom retries a full non-blocking descriptor (EAGAIN); on any other error
 * (EPIPE: the reader is gone) the output has nowhere to go and is dropped rather than held. What this
 * adds: the bytes still queued (the relay pauses the workers' pipes past HIGH_WATER), a bounded wait
 * for the queue to empty before an exit, and the rest written at exit.
 */
export class FdWriter {
  readonly #sonic: SonicBoom;
  #queued = 0;
  #broken = false;
  readonly #drained = new Set<() => void>();

  constructor(fd: number) {
    this.#sonic = new SonicBoom({ fd, sync: false, minLength: 0 });
    this.#sonic.on('write', (written: number) => {
      this.#queued = Math.max(0, this.#queued - written);
    });
    // sonic-boom's buffer is empty and nothing is being written: every byte queued here is out.
    this.#sonic.on('drain', () => {
      this.#queued = 0;
      this.#idle();
    });
    this.#sonic.on('error', () => {
      this.#broken = true;
      this.#queued = 0;
      this.#idle();
    });
    process.on('exit', () => this.flushSync());
  }

  #idle(): void {
    if (this.#queued > 0 && !this.#broken) return;
    for (const listener of this.#drained) listener();
  }

  /** Called each time the queue has been written out. */
  onDrain(listener: () => void): void {
    this.#drained.add(listener);
  }

  /** Queues text; false once the queue is past HIGH_WATER (the caller then pauses its sources). */
  write(text: string): boolean {
    if (this.#broken) return true;
    this.#queued += Buffer.byteLength(text);
    this.#sonic.write(text);
    return this.#queued < HIGH_WATER;
  }

  /** Bytes not written yet. */
  get queued(): number {
    return this.#queued;
  }

  /**
   * Resolves once everything queued is written (or after `timeoutMs`): before an exit of the
   * runner's own, since a write still on the thread pool is lost when the process exits.
   */
  whenIdle(timeoutMs: number): Promise<void> {
    if (this.#queued === 0 || this.#broken) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (this.#queued === 0 || this.#broken) done();
      };
      const done = () => {
        clearTimeout(timer);
        this.#drained.delete(check);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#drained.add(check);
    });
  }

  /** At exit: what is not yet handed to a write, written at once (an error drops it). */
  flushSync(): void {
    if (this.#broken || this.#queued === 0) return;
    try {
      this.#sonic.flushSync();
    } catch {
      // nowhere to go
    }
  }
}

/** The runner's stdout, written off the event loop (its event lines and, relayed, the workers' output). */
let stdoutWriter: FdWriter | undefined;
export function runnerStdout(): FdWriter {
  stdoutWriter ??= new FdWriter(1);
  return stdoutWriter;
}

/** How many of a worker's last stderr lines are kept, for the message if it dies before it listens. */
export const TAIL_LINES = 40;
const TAILS_KEPT = 64;

/** Reads the workers' pipes and writes their lines, prefixed or as JSON; keeps each one's stderr tail. */
export class OutputRelay {
  readonly #mode: 'prefix' | 'json';
  readonly #out: FdWriter;
  readonly #err: FdWriter;
  readonly #sources = new Set<Readable>();
  readonly #tails = new Map<number, string[]>();
  readonly #ended = new Map<number, Promise<void>>();
  #paused = false;

  constructor(mode: 'prefix' | 'json', stdoutFd = 1, stderrFd = 2) {
    this.#mode = mode;
    this.#out = stdoutFd === 1 ? runnerStdout() : new FdWriter(stdoutFd);
    // JSON: every line is an object on stdout, whichever stream the worker wrote it to.
    this.#err = mode === 'json' ? this.#out : new FdWriter(stderrFd);
    this.#out.onDrain(() => this.#resume());
    this.#err.onDrain(() => this.#resume());
  }

  /** A worker was forked: its pipes are read from now on. */
  add({ slot, pid, stdout, stderr }: ForkEvent): void {
    const ends: Promise<void>[] = [];
    for (const [stream, source] of [
      ['stdout', stdout],
      ['stderr', stderr],
    ] as const) {
      if (!source) continue;
      ends.push(new Promise((resolve) => source.once('close', () => resolve())));
      this.#read(slot, pid, stream, source);
    }
    this.#ended.set(
      pid,
      Promise.all(ends).then(() => undefined),
    );
  }

  /** The worker's last stderr lines, once its pipes closed (waits at most `waitMs`). */
  async tail(pid: number, waitMs = 1_000): Promise<string[]> {
    const ended = this.#ended.get(pid);
    if (ended) await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, waitMs).unref())]);
    return this.#tails.get(pid) ?? [];
  }

  #read(slot: number, pid: number, stream: 'stdout' | 'stderr', source: Readable): void {
    const writer = stream === 'stdout' ? this.#out : this.#err;
    let partial = '';
    const emit = (line: string) => {
      if (stream === 'stderr') this.#keep(pid, line);
      if (!writer.write(formatOutput(this.#mode, slot, pid, stream, line))) this.#pause();
    };
    source.setEncoding('utf8');
    this.#sources.add(source);
    if (this.#paused) source.pause();
    source.on('data', (chunk: string) => {
      partial += chunk;
      let end = partial.indexOf('\n');
      while (end >= 0) {
        emit(partial.slice(0, end).replace(/\r$/, ''));
        partial = partial.slice(end + 1);
        end = partial.indexOf('\n');
      }
      while (partial.length >= MAX_LINE) {
        emit(partial.slice(0, MAX_LINE));
        partial = partial.slice(MAX_LINE);
      }
    });
    source.on('error', () => undefined);
    source.once('close', () => {
      if (partial) emit(partial);
      this.#sources.delete(source);
    });
  }

  #keep(pid: number, line: string): void {
    let tail = this.#tails.get(pid);
    if (!tail) {
      tail = [];
      this.#tails.set(pid, tail);
      if (this.#tails.size > TAILS_KEPT) this.#tails.delete(this.#tails.keys().next().value as number);
    }
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    for (const source of this.#sources) source.pause();
  }

  #resume(): void {
    if (!this.#paused || this.#out.queued >= HIGH_WATER / 2 || this.#err.queued >= HIGH_WATER / 2) return;
    this.#paused = false;
    for (const source of this.#sources) source.resume();
  }
}
