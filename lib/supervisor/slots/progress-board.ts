// Progress cells: each worker writes how many connections it has accepted into its own 8-byte cell of
// a small file the supervisor holds open (and unlinked at once, so nothing is left behind), at most
// every PROGRESS_MS while it accepts. The periodic check reads every cell with one pread: a worker
// whose cell moved is accepting, so it is alive with no message sent either way, and only a worker
// whose slot has connections waiting while its cell stands still is asked whether it answers (a ping).
// Linux only (a worker opens the file through /proc/<supervisor pid>/fd); elsewhere, or where a worker
// cannot open it, the supervisor pings as it would without cells.
import type { Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CELL_BYTES, PROGRESS_ENV, progressEnvValue } from '../../worker/progress';

/** Where the file is made: tmpfs when there is one, so a write never reaches a disk. */
export function boardDirectory(exists: (dir: string) => boolean = fs.existsSync, tmpdir = os.tmpdir()): string {
  return exists('/dev/shm') ? '/dev/shm' : tmpdir;
}

/** The workers' progress cells in one file (open() says why there is none: not Linux, no writable directory). */
export class ProgressBoard {
  readonly #fd: number;
  readonly #cells = new Map<Worker, number>();
  readonly #free: number[] = [];
  #count = 0;
  #now = new Float64Array(0);
  #before = new Float64Array(0);
  /** #now's bytes, read into. */
  #bytes = Buffer.alloc(0);
  readonly #zero = Buffer.alloc(CELL_BYTES);
  #closed = false;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Opens a board, or says why there is none (the supervisor then relies on pings alone). */
  static open(platform: NodeJS.Platform = process.platform, directory = boardDirectory()): ProgressBoard | Error {
    if (platform !== 'linux') return new Error(`progress cells are Linux only (workers open them through /proc), and this is ${platform}`);
    const file = path.join(directory, `reuseport-${process.pid}-${randomBytes(8).toString('hex')}`);
    try {
      // 'wx+': a new file only (never one someone placed there), readable by this user alone.
      const fd = fs.openSync(file, 'wx+', 0o600);
      fs.unlinkSync(file);
      return new ProgressBoard(fd);
    } catch (error) {
      return error as Error;
    }
  }

  /**
   * A cell for the worker about to be forked, and the environment entry that tells it where;
   * undefined when the cell cannot be written (a full tmpfs): that worker is then pinged.
   */
  assign(): { cell: number; env: Record<string, string> } | undefined {
    if (this.#closed) return undefined;
    const cell = this.#free.pop() ?? this.#count++;
    try {
      // A reused cell starts from 0: the new worker's first write moves it.
      fs.writeSync(this.#fd, this.#zero, 0, CELL_BYTES, cell * CELL_BYTES);
    } catch {
      this.#free.push(cell);
      return undefined;
    }
    return { cell, env: { [PROGRESS_ENV]: progressEnvValue(this.#fd, cell) } };
  }

  /** The forked worker now owns `cell`. */
  bind(worker: Worker, cell: number): void {
    this.#cells.set(worker, cell);
  }

  /** A worker is gone: its cell can be given to another. */
  release(worker: Worker): void {
    const cell = this.#cells.get(worker);
    if (cell === undefined) return;
    this.#cells.delete(worker);
    this.#free.push(cell);
  }

  /** Reads every cell (one pread); moved() compares with the read before. */
  read(): void {
    if (this.#closed) return;
    if (this.#now.length !== this.#count) {
      // Cells are only ever added: the grown copy keeps every value read so far.
      const grown = new Float64Array(this.#count);
      grown.set(this.#now);
      this.#now = grown;
      this.#before = new Float64Array(this.#count);
      this.#bytes = Buffer.from(grown.buffer);
    }
    this.#before.set(this.#now);
    try {
      fs.readSync(this.#fd, this.#bytes, 0, this.#bytes.length, 0);
    } catch {
      // Never expected (our own open file): the cells then look still, and pings take over.
    }
  }

  /** Whether the worker's cell moved between the last two reads; undefined for a worker without a cell. */
  moved(worker: Worker): boolean | undefined {
    const cell = this.#cells.get(worker);
    return cell === undefined ? undefined : this.#now[cell] !== this.#before[cell];
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.#fd);
  }
}
