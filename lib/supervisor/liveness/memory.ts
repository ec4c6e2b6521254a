// Memory recycling, as PM2's max_memory_restart but without its loss: a worker whose resident memory
// (RSS, Buffers included, from /proc/<pid>/status) is over the limit is replaced the way a reload
// replaces its slot: a new worker first, which listens and lives minUptimeMs, then the old one
// drains (never killed mid-request). Checked once a second, off the hot path (one small read per
// worker). A limit below what a fresh worker needs would replace workers forever: a slot whose new
// workers are over it at their first check TOO_LOW_STRIKES times in a row stops being recycled, and
// 'memory-limit-too-low' says so.
import type { Worker } from 'node:cluster';
import fs from 'node:fs';
import type { SupervisorSettings } from '../core/settings';
import type { EmitEvent, MemoryLimitEvent, RestartEvent } from '../core/events';
import { replaceOne } from '../slots/reload';
import type { Slot, WorkerSlots } from '../slots/worker-slots';

/** How often the workers' RSS is read. */
export const MEMORY_CHECK_MS = 1_000;
/** Replacements in a row of workers already over the limit at their first check, after which a slot stops being recycled. */
export const TOO_LOW_STRIKES = 3;

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** A size as PM2 writes it (pure): `200M`, `1G`, `512K`, `1.5G`, or bytes; undefined when it is none. */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([KMG]?)B?$/i.exec(text.trim());
  if (!match) return undefined;
  const bytes = Math.round(Number(match[1]) * (UNITS[(match[2] ?? '').toUpperCase()] ?? 1));
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

/** Bytes as a short size (pure): 157286400 -> '150M', 1610612736 -> '1.5G'. */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [
    ['G', 1024 ** 3],
    ['M', 1024 ** 2],
    ['K', 1024],
  ] as const) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(1))}${unit}`;
  }
  return String(bytes);
}

/** VmRSS of a /proc/<pid>/status text, in bytes (pure); undefined without one (a zombie, a kernel thread). */
export function rssFromStatus(status: string): number | undefined {
  const kb = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
  return kb === undefined ? undefined : Number(kb) * 1024;
}

/** A process's resident memory in bytes, or undefined where /proc cannot tell (gone, not Linux). */
export function readRss(pid: number, procRoot = '/proc'): number | undefined {
  try {
    return rssFromStatus(fs.readFileSync(`${procRoot}/${pid}/status`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** What the memory check makes of one worker (pure): leave it, replace it, or (a limit too low) stop recycling its slot. */
export function memoryVerdict(rss: number | undefined, limit: number, firstCheck: boolean, strikes: number): 'ok' | 'replace' | 'too-low' {
  if (rss === undefined || rss <= limit) return 'ok';
  if (firstCheck && strikes + 1 >= TOO_LOW_STRIKES) return 'too-low';
  return 'replace';
}

/** What the memory limit needs of the supervisor. */
export interface MemoryHost {
  emit: EmitEvent;
  /** Runs `job` when no reload (nor another recycling) is under way, and keeps the next one waiting until it ends. */
  serially(job: () => Promise<void>): Promise<void>;
}

export class MemoryLimit {
  readonly #settings: SupervisorSettings;
  readonly #workers: WorkerSlots;
  readonly #host: MemoryHost;
  readonly #read: (pid: number) => number | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Per slot: the last RSS read, workers replaced for memory, and the strikes of a limit too low. */
  readonly #rss = new Map<number, number>();
  readonly #restarts = new Map<number, number>();
  readonly #strikes = new Map<number, number>();
  readonly #tooLow = new Set<number>();
  // Workers checked at least once, and slots being recycled now.
  readonly #checked = new WeakSet<Worker>();
  readonly #busy = new Set<number>();

  constructor(settings: SupervisorSettings, workers: WorkerSlots, host: MemoryHost, read: (pid: number) => number | undefined = readRss) {
    this.#settings = settings;
    this.#workers = workers;
    this.#host = host;
    this.#read = read;
  }

  start(intervalMs = MEMORY_CHECK_MS): void {
    this.#timer ??= setInterval(() => this.check(), intervalMs).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The last RSS read for the slot's worker, in bytes. */
  rss(slot: number): number | undefined {
    return this.#rss.get(slot);
  }

  /** How many of the slot's workers were replaced for memory. */
  restarts(slot: number): number {
    return this.#restarts.get(slot) ?? 0;
  }

  /** One look at every serving worker; starts the replacement of those over the limit. */
  check(): void {
    const limit = this.#settings.maxMemoryRestart;
    for (const slot of this.#workers.slots) {
      const worker = slot.worker;
      const pid = worker?.process.pid;
      if (!worker || !pid || !slot.ready || worker.isDead() || this.#busy.has(slot.index) || this.#workers.closing) continue;
      const rss = this.#read(pid);
      if (rss !== undefined) this.#rss.set(slot.index, rss);
      const firstCheck = !this.#checked.has(worker);
      this.#checked.add(worker);
      if (this.#tooLow.has(slot.index)) continue;
      const strikes = this.#strikes.get(slot.index) ?? 0;
      const verdict = memoryVerdict(rss, limit, firstCheck, strikes);
      if (verdict === 'ok') {
        if (firstCheck) this.#strikes.set(slot.index, 0);
        continue;
      }
      if (verdict === 'too-low') {
        this.#tooLow.add(slot.index);
        const event: MemoryLimitEvent = { slot: slot.index, pid, rss: rss as number, limit };
        this.#host.emit('memory-limit-too-low', event);
        continue;
      }
      this.#strikes.set(slot.index, firstCheck ? strikes + 1 : 0);
      this.#busy.add(slot.index);
      this.#host
        .serially(() => this.#replace(slot, worker, rss as number))
        .catch(() => undefined)
        .finally(() => this.#busy.delete(slot.index));
    }
  }

  // The new worker listens and lives minUptimeMs, then takes the slot, and the old one drains (reload.ts's replaceOne).
  async #replace(slot: Slot, old: Worker, rss: number): Promise<void> {
    if (slot.worker !== old || old.isDead() || this.#workers.closing) return;
    const replaced = await replaceOne(this.#workers, this.#settings, slot);
    // It did not start: the old worker keeps the slot; the next check tries again.
    if (replaced instanceof Error) return;
    this.#restarts.set(slot.index, this.restarts(slot.index) + 1);
    const { pid = 0 } = replaced.old.process;
    const event: RestartEvent = { slot: slot.index, pid, reason: 'memory', rss, limit: this.#settings.maxMemoryRestart, by: replaced.worker.process.pid ?? 0 };
    this.#host.emit('restart', event);
  }
}
