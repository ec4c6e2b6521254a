// Balance: the supervisor reads every worker's load (open connections, connections shed) from the
// progress cells every LOAD_MS (shared memory; the workers write them, see worker/balance.ts), and tells
// a worker that holds more than its share of connections to shed down to it (a 'balance' message
// with a limit), and to stop once it no longer does: messages only when a worker's limit changes.
// New connections, a shed one's reconnection among them, are steered by weight to the less loaded
// workers (weighted.ts): the weights are rebuilt from the same loads, the program replaced only when
// they change, at most every SWAP_MS, and only while every slot is served (never away from a dead one).
// Off with sticky: 'ip' (a client address keeps its worker) and cpuLocal (a reconnection lands on the
// same CPU and slot again), without progress cells (not Linux), and paused while a reload, an
// upgrade, a stall's loan or a shutdown is under way (the drain is already moving connections, and a
// borrower's load is two slots').
import type { Worker } from 'node:cluster';
import { type PrimaryMessage, supervisorMessage } from '../../cluster/ipc';
import { IDLE_BELOW, LOAD_MS, nextLoadDelay } from '../../worker/balance';
import type { ProgressBoard } from './progress-board';
import type { Slot } from './slot';
import { churning, steeringWeights } from './weighted';

/** The least time between two replacements of the steering program. */
export const SWAP_MS = 250;

/** A worker is armed only when it holds at least this many connections more than the least loaded one... */
export const MIN_SPREAD = 2;
/** ...and at least this share of its target more (so a large pool is not churned for a few connections). */
export const SPREAD_SHARE = 0.2;
/** Or (at its share of connections, or under it) when its event loop is this much busier than the least busy worker's... */
export const BUSY_GAP = 0.3;
/** ...or at least this much busier and BUSY_RATIO times as busy (on a loaded machine every loop looks busy, which narrows the gap)... */
export const BUSY_MIN_GAP = 0.15;
export const BUSY_RATIO = 1.5;
/** ...and it stays armed until the gap is under this. */
export const BUSY_SETTLED = 0.1;
/** How much of each new event-loop reading the smoothed figure takes (one reading every LOAD_MS). */
export const BUSY_SMOOTHING = 0.15;

/** A worker's load as the balance sees it: open connections, smoothed event-loop utilisation (0-1). */
export interface WorkerLoad {
  open: number;
  busy: number;
  /** Connections it accepted since the last look (absent: none known). */
  accepted?: number;
}

/**
 * Each worker's limit (pure): the connections it may keep, or undefined (not armed); `previous`: the
 * limits in force. The target is every worker's share of connections, rounded up.
 * - By connections: a worker is armed when it holds more than the target and at least
 *   max(minSpread, spreadShare * target) more than the least loaded worker, with the target as its
 *   limit; once armed it stays armed while it holds more than the target (hysteresis).
 * - By use: a worker holding 2 connections or more whose event loop is BUSY_GAP busier than the least
 *   busy worker's (its connections are the hot ones of a pool that uses a few of them) is armed to
 *   give up one connection (its open connections less one), and stays armed, with the limit it has,
 *   until the gap is under BUSY_SETTLED.
 * - Never a worker whose connections turn over by themselves: one that accepted since the last look
 *   at least as many connections as it holds open (direct clients with short connections, which the
 *   steering of new connections evens out; shedding one would only cost a reconnection).
 */
export function balanceLimits(
  loads: WorkerLoad[],
  previous: (number | undefined)[],
  minSpread = MIN_SPREAD,
  spreadShare = SPREAD_SHARE,
): (number | undefined)[] {
  if (loads.length < 2) return loads.map(() => undefined);
  const total = loads.reduce((sum, load) => sum + load.open, 0);
  const target = Math.ceil(total / loads.length);
  const least = Math.min(...loads.map((load) => load.open));
  const leastBusy = Math.min(...loads.map((load) => load.busy));
  const threshold = Math.max(minSpread, Math.ceil(spreadShare * target));
  return loads.map(({ open, busy, accepted = 0 }, i) => {
    if (accepted >= Math.max(open, 1)) return undefined;
    const before = previous[i];
    if (open > target && (before !== undefined || open - least >= threshold)) return Math.min(target, before ?? target);
    const gap = busy - leastBusy;
    if (before !== undefined && before < open && gap >= BUSY_SETTLED) return before;
    const busier = gap >= BUSY_GAP || (gap >= BUSY_MIN_GAP && busy >= BUSY_RATIO * leastBusy);
    if (open >= 2 && (before === undefined ? busier : gap >= BUSY_SETTLED)) return open - 1;
    return undefined;
  });
}

/** The spread of open connections over the serving workers (pure): the most less the fewest. */
export function spreadOf(loads: number[]): number {
  return loads.length === 0 ? 0 : Math.max(...loads) - Math.min(...loads);
}

/** What /status and /metrics show of the balance. */
export interface BalanceReport {
  /** Whether the supervisor balances (undefined reason) or why not. */
  enabled: boolean;
  reason?: string;
  /** Why it is paused right now, if it is. */
  paused?: string;
  spread: number;
  shed: number;
  /** The steering weights in force, by slot ("0": 32), when new connections are steered by load. */
  weights?: Record<string, number>;
}

export interface BalancerHooks {
  slots: Slot[];
  board: ProgressBoard;
  send(worker: Worker, message: PrimaryMessage): void;
  /** Whether the supervisor asked this worker to go. */
  isLeaving(worker: Worker): boolean;
  /** Why not to shed now (a loan or a ping under way), if anything. */
  unsettled(): string | undefined;
  /** Steers new connections to every slot (all of `slots`, as ever) by these weights (by slot); absent: no steering by load. */
  steer?(slots: number[], weights: ReadonlyMap<number, number>): void;
  /** The clock of the rate limit (performance.now()). */
  now?(): number;
}

/** The balance of one supervisor's workers. */
export class Balancer {
  readonly #hooks: BalancerHooks;
  readonly #limits = new Map<Worker, number>();
  readonly #lastShed = new Map<Worker, number>();
  /** Each worker's accepted connections at the last look. */
  readonly #lastAccepted = new Map<Worker, number>();
  /** Each worker's event-loop utilisation, smoothed. */
  readonly #busy = new Map<Worker, number>();
  readonly #paused = new Set<string>();
  /** Per slot: its worker's open connections at the last read, and the connections shed from it. */
  readonly #open = new Map<number, number>();
  readonly #shed = new Map<number, number>();
  #spread = 0;
  #timer: NodeJS.Timeout | undefined;
  #delay = LOAD_MS;
  /** The open connections per slot at the last look, to see whether anything moved. */
  #lastOpen = '';
  /** The steering weights in force (by slot), and when the program was last replaced. */
  #weights = new Map<number, number>();
  #lastSwap = Number.NEGATIVE_INFINITY;

  constructor(hooks: BalancerHooks) {
    this.#hooks = hooks;
  }

  /** Starts reading the loads: every LOAD_MS while they move, a worker is busy or one is armed, less often as all stays idle (nextLoadDelay; an unref'd timer). */
  start(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      const active = this.tick();
      this.#delay = nextLoadDelay(active, 0, this.#delay);
      if (!this.#timer) return;
      this.#timer = undefined;
      this.start();
    }, this.#delay);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#disarmAll();
  }

  /** A reload, an upgrade or a shutdown begins: no shedding until resume(reason). */
  pause(reason: string): void {
    this.#paused.add(reason);
    this.#disarmAll();
  }

  resume(reason: string): void {
    this.#paused.delete(reason);
  }

  /** A worker is gone. */
  forget(worker: Worker): void {
    this.#limits.delete(worker);
    this.#lastShed.delete(worker);
    this.#lastAccepted.delete(worker);
    this.#busy.delete(worker);
  }

  /** One look: the loads read, the figures kept, the limits sent where they changed; says whether anything is going on (loads that moved, a busy worker, an armed one). */
  tick(): boolean {
    const loads = this.#hooks.board.loads();
    const serving: { worker: Worker; slot: number; load: WorkerLoad }[] = [];
    let complete = true;
    for (const slot of this.#hooks.slots) {
      const { worker } = slot;
      if (!worker) {
        this.#open.delete(slot.index);
        complete = false;
        continue;
      }
      const load = loads.get(worker);
      if (!load) {
        complete = false;
        continue;
      }
      this.#open.set(slot.index, load.open);
      const before = this.#lastShed.get(worker) ?? 0;
      if (load.shed > before) this.#shed.set(slot.index, (this.#shed.get(slot.index) ?? 0) + load.shed - before);
      this.#lastShed.set(worker, load.shed);
      const busy = (this.#busy.get(worker) ?? load.busy) * (1 - BUSY_SMOOTHING) + load.busy * BUSY_SMOOTHING;
      this.#busy.set(worker, busy);
      const acceptedBefore = this.#lastAccepted.get(worker);
      const accepted = load.accepted === undefined || acceptedBefore === undefined ? 0 : Math.max(0, load.accepted - acceptedBefore);
      if (load.accepted !== undefined) this.#lastAccepted.set(worker, load.accepted);
      if (slot.ready && !slot.stopped && !worker.isDead() && !this.#hooks.isLeaving(worker))
        serving.push({ worker, slot: slot.index, load: { open: load.open, busy, accepted } });
      else complete = false;
    }
    this.#spread = spreadOf(serving.map(({ load }) => load.open));
    const opens = [...this.#open].join();
    // Connections that turn over by themselves on every slot (direct clients) need no look every
    // LOAD_MS: nothing is armed for them and their open counts do not weigh, so the looks slow down
    // as at rest (up to QUIET_LOAD_MS), and come back to LOAD_MS at the first look that finds a pool.
    const turnover = serving.length > 0 && churning(serving.map(({ load }) => load));
    const active = (!turnover && (opens !== this.#lastOpen || serving.some(({ load }) => load.busy >= IDLE_BELOW))) || this.#limits.size > 0;
    this.#lastOpen = opens;
    // Only when every slot is served by its own worker with a cell, and nothing else moves connections.
    if (!complete || this.#paused.size > 0 || this.#hooks.unsettled()) {
      this.#disarmAll();
      return active;
    }
    const limits = balanceLimits(
      serving.map(({ load }) => load),
      serving.map(({ worker }) => this.#limits.get(worker)),
    );
    serving.forEach(({ worker }, i) => this.#setLimit(worker, limits[i]));
    return this.#weigh(serving) || active;
  }

  // The weights from the serving slots' loads; the program replaced when they changed and the last
  // replacement is SWAP_MS old. Says whether a change waits for that.
  #weigh(serving: { slot: number; load: WorkerLoad }[]): boolean {
    if (!this.#hooks.steer) return false;
    const previous = serving.map(({ slot }) => this.#weights.get(slot));
    const same = this.#weights.size === serving.length && previous.every((weight) => weight !== undefined);
    const weights = steeringWeights(
      serving.map(({ load }) => load),
      same ? (previous as number[]) : undefined,
    );
    if (same && weights.every((weight, i) => weight === previous[i])) return false;
    const now = this.#hooks.now?.() ?? performance.now();
    if (now - this.#lastSwap < SWAP_MS) return true;
    this.#lastSwap = now;
    this.#weights = new Map(serving.map(({ slot }, i) => [slot, weights[i] as number]));
    this.#hooks.steer(
      this.#hooks.slots.map((slot) => slot.index),
      this.#weights,
    );
    return false;
  }

  /** The slot's open connections (at the last read) and connections shed, for stats(). */
  slotStats(slot: number): { connections: number | undefined; shed: number; weight?: number } {
    const weight = this.#weights.get(slot);
    return { connections: this.#open.get(slot), shed: this.#shed.get(slot) ?? 0, ...(weight === undefined ? {} : { weight }) };
  }

  report(): BalanceReport {
    const shed = [...this.#shed.values()].reduce((sum, count) => sum + count, 0);
    const paused = [...this.#paused][0] ?? this.#hooks.unsettled();
    const weights = this.#weights.size > 0 ? { weights: Object.fromEntries(this.#weights) } : {};
    return { enabled: true, ...(paused ? { paused } : {}), spread: this.#spread, shed, ...weights };
  }

  #setLimit(worker: Worker, limit: number | undefined): void {
    if (this.#limits.get(worker) === limit) return;
    if (limit === undefined) this.#limits.delete(worker);
    else this.#limits.set(worker, limit);
    this.#hooks.send(worker, supervisorMessage({ act: 'balance', limit: limit ?? null }));
  }

  #disarmAll(): void {
    for (const worker of [...this.#limits.keys()]) this.#setLimit(worker, undefined);
  }
}

/** Why the supervisor does not balance with these settings, or undefined where it does (pure). */
export function balanceOffReason(settings: { balance: boolean; sticky: 'ip' | false; cpuLocal: boolean }, slotSockets: boolean): string | undefined {
  if (!settings.balance) return 'balance: false';
  if (settings.sticky) return "sticky: 'ip' keeps each client address on its worker";
  if (settings.cpuLocal) return 'cpuLocal: a reconnection lands on the same CPU and slot again';
  if (!slotSockets) return 'it needs the reuseport mode through the addon (the supervisor holds no slot sockets)';
  return undefined;
}
