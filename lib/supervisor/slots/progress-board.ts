// Progress cells: each worker writes how many connections it has accepted into its own cell of a
// small file the supervisor holds open (and unlinked at once, so nothing is left behind), at most
// every PROGRESS_MS while it accepts, and its load (open connections, connections shed, event-loop use) every
// LOAD_MS (worker/balance.ts). The periodic check reads every cell with one pread: a worker
// whose cell moved is accepting, so it is alive with no message sent either way, and only a worker
// whose slot has connections waiting while its cell stands still is asked whether it answers (a ping).
// The balancer reads the load fields with a pread of its own (loads()), leaving moved() to the checks.
// Linux only (a worker opens the file through /proc/<supervisor pid>/fd); elsewhere, or where a worker
// cannot open it, the supervisor pings as it would without cells (and does not balance).
import type { Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ACCEPTED_FIELD, BUSY_FIELD, CELL_BYTES, CELL_FIELDS, OPEN_FIELD, PROGRESS_ENV, SHED_FIELD, progressEnvValue } from '../../worker/progress';

/** A worker's load as its cell shows it. */
export interface CellLoad {
  open: number;
  shed: number;
  /** Event-loop utilisation over the worker's last interval (0-1). */
  busy: number;
  /** Connections accepted so far (the stall cell's count, written at most every PROGRESS_MS); absent: unknown. */
  accepted?: number;
}

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
  /** The whole file as loads() last read it. */
  #loads = new Float64Array(0);
  #loadBytes = Buffer.alloc(0);
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
    const length = this.#count * CELL_FIELDS;
    if (this.#now.length !== length) {
      // Cells are only ever added: the grown copy keeps every value read so far.
      const grown = new Float64Array(length);
      grown.set(this.#now);
      this.#now = grown;
      this.#before = new Float64Array(length);
      this.#bytes = Buffer.from(grown.buffer);
    }
    this.#before.set(this.#now);
    this.#pread(this.#bytes);
  }

  /** Whether the worker's cell moved between the last two reads; undefined for a worker without a cell. */
  moved(worker: Worker): boolean | undefined {
    const cell = this.#cells.get(worker);
    if (cell === undefined) return undefined;
    const at = cell * CELL_FIELDS + ACCEPTED_FIELD;
    return this.#now[at] !== this.#before[at];
  }

  /** Reads every cell's load (one pread, apart from read()'s); workers without a cell are not there. */
  loads(): Map<Worker, CellLoad> {
    const found = new Map<Worker, CellLoad>();
    if (this.#closed) return found;
    if (this.#loads.length !== this.#count * CELL_FIELDS) {
      this.#loads = new Float64Array(this.#count * CELL_FIELDS);
      this.#loadBytes = Buffer.from(this.#loads.buffer);
    }
    this.#pread(this.#loadBytes);
    for (const [worker, cell] of this.#cells) {
      const at = cell * CELL_FIELDS;
      found.set(worker, {
        open: this.#loads[at + OPEN_FIELD] ?? 0,
        shed: this.#loads[at + SHED_FIELD] ?? 0,
        busy: this.#loads[at + BUSY_FIELD] ?? 0,
        accepted: this.#loads[at + ACCEPTED_FIELD] ?? 0,
      });
    }
    return found;
  }

  #pread(into: Buffer): void {
    try {
      fs.readSync(this.#fd, into, 0, into.length, 0);
    } catch {
      // Never expected (our own open file): the cells then look still, and pings take over.
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.#fd);
  }
}
