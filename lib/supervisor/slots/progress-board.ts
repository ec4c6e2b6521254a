// Progress cells: each worker stores how many connections it has accepted into its own cell of a
// small file the supervisor holds open (and unlinked at once, so nothing is left behind), on every
// accept, and its load (open connections, connections shed, event-loop use) every LOAD_MS
// (worker/balance.ts). The file is mapped shared into the supervisor and every worker (the addon's
// mapShared, on tmpfs where there is one), so neither side makes a syscall for it. The periodic
// check reads every cell's count: a worker whose cell moved is accepting, so it is alive with no
// message sent either way, and only a worker whose slot has connections waiting while its cell stands
// still is asked whether it answers (a ping). The balancer reads the load fields (loads()), leaving
// moved() to the checks. Linux only (a worker opens the file through /proc/<supervisor pid>/fd);
// elsewhere, or where a worker cannot map it, the supervisor pings as it would without cells (and
// does not balance).
import type { Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type NativeBinding, loadBinding } from '../../binding';
import {
  ACCEPTED_FIELD,
  BOARD_BYTES,
  BOARD_CELLS,
  BUSY_FIELD,
  CELL_FIELDS,
  OPEN_FIELD,
  PROGRESS_ENV,
  SHED_FIELD,
  progressEnvValue,
} from '../../worker/progress';

/** A worker's load as its cell shows it. */
export interface CellLoad {
  open: number;
  shed: number;
  /** Event-loop utilisation over the worker's last interval (0-1). */
  busy: number;
  /** Connections accepted so far (the count the checks compare); absent: unknown. */
  accepted?: number;
}

/** Where the file is made: tmpfs when there is one, so a write never reaches a disk. */
export function boardDirectory(exists: (dir: string) => boolean = fs.existsSync, tmpdir = os.tmpdir()): string {
  return exists('/dev/shm') ? '/dev/shm' : tmpdir;
}

/** The workers' progress cells in one file, mapped shared (open() says why there is none: not Linux, no addon, no writable directory). */
export class ProgressBoard {
  readonly #fd: number;
  /** The whole file, mapped: the workers' stores show here as they happen. */
  readonly #fields: Float64Array;
  readonly #cells = new Map<Worker, number>();
  readonly #free: number[] = [];
  #count = 0;
  /** Each cell's accept count at the last two reads. */
  #now = new Float64Array(BOARD_CELLS);
  #before = new Float64Array(BOARD_CELLS);
  #closed = false;

  private constructor(fd: number, fields: Float64Array) {
    this.#fd = fd;
    this.#fields = fields;
  }

  /** Opens a board, or says why there is none (the supervisor then relies on pings alone). */
  static open(
    platform: NodeJS.Platform = process.platform,
    directory = boardDirectory(),
    addon: () => NativeBinding | undefined = () => loadBinding().binding,
  ): ProgressBoard | Error {
    if (platform !== 'linux') return new Error(`progress cells are Linux only (workers open them through /proc), and this is ${platform}`);
    const binding = addon();
    if (!binding) return new Error('progress cells are mapped by the native addon, which is not loaded');
    const file = path.join(directory, `reuseport-${process.pid}-${randomBytes(8).toString('hex')}`);
    let fd: number | undefined;
    try {
      // 'wx+': a new file only (never one someone placed there), readable by this user alone.
      fd = fs.openSync(file, 'wx+', 0o600);
      fs.unlinkSync(file);
      // Its whole length at once (tmpfs gives pages as they are touched): no cell is past its end.
      fs.ftruncateSync(fd, BOARD_BYTES);
      return new ProgressBoard(fd, new Float64Array(binding.mapShared(fd, BOARD_BYTES)));
    } catch (error) {
      if (fd !== undefined) fs.closeSync(fd);
      return error as Error;
    }
  }

  /**
   * A cell for the worker about to be forked, and the environment entry that tells it where;
   * undefined when every cell is taken: that worker is then pinged.
   */
  assign(): { cell: number; env: Record<string, string> } | undefined {
    if (this.#closed) return undefined;
    const cell = this.#free.pop() ?? (this.#count < BOARD_CELLS ? this.#count++ : undefined);
    if (cell === undefined) return undefined;
    // A reused cell starts from 0: the new worker's first accept moves it.
    this.#fields.fill(0, cell * CELL_FIELDS, (cell + 1) * CELL_FIELDS);
    this.#now[cell] = this.#before[cell] = 0;
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

  /** Takes every cell's accept count (loads from the mapping, no syscall); moved() compares with the read before. */
  read(): void {
    if (this.#closed) return;
    for (let cell = 0; cell < this.#count; cell++) {
      this.#before[cell] = this.#now[cell] as number;
      this.#now[cell] = this.#fields[cell * CELL_FIELDS + ACCEPTED_FIELD] as number;
    }
  }

  /** Whether the worker's cell moved between the last two reads; undefined for a worker without a cell. */
  moved(worker: Worker): boolean | undefined {
    const cell = this.#cells.get(worker);
    if (cell === undefined) return undefined;
    return this.#now[cell] !== this.#before[cell];
  }

  /** The connections the worker has accepted from its own slot so far, as its cell says now; undefined without a cell. */
  accepted(worker: Worker): number | undefined {
    const cell = this.#cells.get(worker);
    return cell === undefined || this.#closed ? undefined : (this.#fields[cell * CELL_FIELDS + ACCEPTED_FIELD] as number);
  }

  /** Every cell's load as it is now, apart from read()'s comparison; workers without a cell are not there. */
  loads(): Map<Worker, CellLoad> {
    const found = new Map<Worker, CellLoad>();
    if (this.#closed) return found;
    for (const [worker, cell] of this.#cells) {
      const at = cell * CELL_FIELDS;
      found.set(worker, {
        open: this.#fields[at + OPEN_FIELD] as number,
        shed: this.#fields[at + SHED_FIELD] as number,
        busy: this.#fields[at + BUSY_FIELD] as number,
        accepted: this.#fields[at + ACCEPTED_FIELD] as number,
      });
    }
    return found;
  }

  /** Closes the file (workers mapped it already; the mapping here goes with its last reference). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.#fd);
  }
}
