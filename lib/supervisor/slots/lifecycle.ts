// A worker slot's lifecycle as an explicit state machine: its states, every transition in one table,
// and the timers that belong to states (started on entering, cleared on leaving). WorkerSlots fires
// the events; the other parts read the state (a slot serves, is stopped, ever served).
import { nodeError } from '../../errors';

/**
 * - `empty`: no worker yet (before the first start).
 * - `starting`: its worker is forked and has not listened on the slot's socket yet.
 * - `serving`: its worker listens (a reload's new worker listens beside it until adopted).
 * - `restarting`: its worker died unexpectedly; a replacement is due after a back-off.
 * - `stopped`: its workers kept dying young (a crash loop): no more restarts until a reload.
 * - `closed`: the supervisor stops; nothing more happens to the slot.
 */
export type SlotState = 'empty' | 'starting' | 'serving' | 'restarting' | 'stopped' | 'closed';

/**
 * - `fork`: a worker is forked for the slot (its first start, or a restart).
 * - `listen`: the slot's own worker listens on the slot's socket.
 * - `exit`: the slot's worker died unexpectedly and will be replaced.
 * - `give-up`: it died young once too often (maxRestarts): the slot stops restarting.
 * - `adopt`: a reload's new worker, listening and past minUptimeMs, becomes the slot's worker.
 * - `close`: the supervisor stops every slot.
 */
export type SlotEvent = 'fork' | 'listen' | 'exit' | 'give-up' | 'adopt' | 'close';

/** Every transition there is: state -> event -> next state. What is not here cannot happen. */
export const SLOT_TRANSITIONS: Readonly<Record<SlotState, Readonly<Partial<Record<SlotEvent, SlotState>>>>> = {
  empty: { fork: 'starting', close: 'closed' },
  starting: { listen: 'serving', exit: 'restarting', 'give-up': 'stopped', adopt: 'serving', close: 'closed' },
  serving: { exit: 'restarting', 'give-up': 'stopped', adopt: 'serving', close: 'closed' },
  restarting: { fork: 'starting', adopt: 'serving', close: 'closed' },
  stopped: { adopt: 'serving', close: 'closed' },
  closed: {},
};

/** The next state, or undefined when `event` cannot happen in `state`. */
export function nextSlotState(state: SlotState, event: SlotEvent): SlotState | undefined {
  return SLOT_TRANSITIONS[state][event];
}

/** Told of every transition, after it is made. */
export type TransitionListener = (transition: { slot: number; from: SlotState; to: SlotState; event: SlotEvent }) => void;

interface StateTimer {
  timer: NodeJS.Timeout;
  /** The states it lives through; entering any other clears it. */
  during: ReadonlySet<SlotState>;
}

/** One slot's state, the timers tied to it, and the count of young deaths in a row. */
export class SlotLifecycle {
  readonly #slot: number;
  readonly #listeners: TransitionListener[] = [];
  readonly #timers = new Map<string, StateTimer>();
  #state: SlotState = 'empty';
  #everServed = false;
  /** Deaths in a row within minUptimeMs of their start (or before listening); reset by a long life or an adoption. */
  failures = 0;

  constructor(slot: number) {
    this.#slot = slot;
  }

  get state(): SlotState {
    return this.#state;
  }

  /** Whether a worker of this slot ever listened on its socket (before that it has no queue to serve). */
  get everServed(): boolean {
    return this.#everServed;
  }

  /** Whether `event` can happen now. */
  can(event: SlotEvent): boolean {
    return nextSlotState(this.#state, event) !== undefined;
  }

  /** Makes the transition (throws ERR_REUSEPORT_SLOT_TRANSITION if the table has none), clears the timers of the state left, tells the listeners. */
  fire(event: SlotEvent): SlotState {
    const from = this.#state;
    const to = nextSlotState(from, event);
    if (to === undefined) {
      throw nodeError(Error, 'ERR_REUSEPORT_SLOT_TRANSITION', `reuseport: slot ${this.#slot} cannot '${event}' while ${from}`);
    }
    this.#state = to;
    if (to === 'serving') this.#everServed = true;
    if (event === 'adopt') this.failures = 0;
    for (const [name, entry] of this.#timers) {
      if (!entry.during.has(to)) {
        clearTimeout(entry.timer);
        this.#timers.delete(name);
      }
    }
    for (const listener of this.#listeners) listener({ slot: this.#slot, from, to, event });
    return to;
  }

  /** Calls `listener` after every transition. */
  onTransition(listener: TransitionListener): void {
    this.#listeners.push(listener);
  }

  /**
   * Starts a timer that lives while the slot stays in `during` (default: the current state) and is
   * cleared on entering any other; `name` replaces a timer of that name. Returns false (no timer)
   * when the slot is not in one of those states now.
   */
  startTimer(name: string, ms: number, fire: () => void, during: readonly SlotState[] = [this.#state]): boolean {
    if (!during.includes(this.#state)) return false;
    this.clearTimer(name);
    const timer = setTimeout(() => {
      this.#timers.delete(name);
      fire();
    }, ms);
    this.#timers.set(name, { timer, during: new Set(during) });
    return true;
  }

  hasTimer(name: string): boolean {
    return this.#timers.has(name);
  }

  clearTimer(name: string): void {
    const entry = this.#timers.get(name);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.#timers.delete(name);
  }
}
