// What a worker asks of the supervisor, answered: its slot's socket (lent with the reasons a worker
// gives, within maxSocketsPerWorker), the TLS ticket keys, a socket given back when the app closes its
// server, and its accept counts. Every request was checked where it arrived (cluster/ipc-validate.ts).
import type { Worker } from 'node:cluster';
import { type Handlers, type SlotRequest, dispatch, serializeError, supervisorMessage } from '../../cluster/ipc';
import { tooManySockets } from '../../errors';
import type { SupervisorSettings } from '../core/settings';
import { type QueueSource, queueSourceReason } from './queue-reader';
import type { Slot } from './slot';
import type { SlotSockets } from './slot-sockets';
import type { SupervisorRequest, WorkerSlots } from './worker-slots';

/** What answering needs of the supervisor's other parts. */
export interface LendingHooks {
  /** A worker's accept counts (also its answer to a ping). */
  beat(worker: Worker, accepted: Record<string, number>): void;
  /** The supervisor's TLS ticket key now, if it shares one. */
  ticketKey(): Buffer | undefined;
  /** No accept queue can be read here: told once, when first found. */
  queuesUnreadable(): void;
  /** How workers show they accept, for the reasons a lent socket comes with. */
  cells: string;
}

/** Answers the requests of the supervisor's workers. */
export class SlotLending {
  readonly #settings: SupervisorSettings;
  readonly #workers: WorkerSlots;
  readonly #sockets: SlotSockets | undefined;
  readonly #hooks: LendingHooks;
  #unreadable = false;

  constructor(settings: SupervisorSettings, workers: WorkerSlots, sockets: SlotSockets | undefined, hooks: LendingHooks) {
    this.#settings = settings;
    this.#workers = workers;
    this.#sockets = sockets;
    this.#hooks = hooks;
  }

  /** Answers one request. */
  answer(worker: Worker, slot: Slot, message: SupervisorRequest): void {
    dispatch(this.#requests, message, worker, slot);
  }

  readonly #requests: Handlers<SupervisorRequest, [Worker, Slot]> = {
    beat: (message, worker) => this.#hooks.beat(worker, message.accepted),
    'keys-request': (message, worker) => {
      const keys = this.#hooks.ticketKey()?.toString('base64');
      this.#workers.send(worker, supervisorMessage({ act: 'keys', seq: message.seq, ...(keys ? { keys } : {}) }));
    },
    release: (message, worker) => void this.#sockets?.giveBack(message, worker),
    slot: (message, worker, slot) => this.#lend(worker, slot, message),
  };

  #lend(worker: Worker, slot: Slot, message: SlotRequest): void {
    if (!this.#sockets) {
      this.#workers.send(worker, supervisorMessage({ act: 'slot-reply', seq: message.seq, error: { message: 'this supervisor lends no sockets' } }));
      return;
    }
    try {
      const held = this.#sockets.heldBy(worker);
      if (held >= this.#settings.maxSocketsPerWorker && !this.#sockets.holds(worker, message)) {
        throw tooManySockets(
          `reuseport: the worker of slot ${slot.index} (pid ${worker.process.pid}) already holds ${held} slot sockets, the most one worker may (maxSocketsPerWorker: ${this.#settings.maxSocketsPerWorker}); close a server first`,
        );
      }
      const socket = this.#sockets.get(slot.index, message, worker);
      const steering = this.#sockets.steering().find((state) => state.port === socket.port && state.address === socket.address);
      const source = this.#settings.stallThresholdMs > 0 ? this.#sockets.queueSource() : undefined;
      if (source === 'none' && !this.#unreadable) {
        this.#unreadable = true;
        this.#hooks.queuesUnreadable();
      }
      const protection = this.#protection(source, steering?.reason ?? 'no steering');
      this.#workers.send(worker, supervisorMessage({ act: 'slot-reply', seq: message.seq, port: socket.port, steering: protection }), socket.handle);
    } catch (error) {
      this.#workers.send(worker, supervisorMessage({ act: 'slot-reply', seq: message.seq, error: serializeError(error) }));
    }
  }

  // What stall protection does for this socket, and how it is steered: the reasons the worker gives.
  #protection(source: QueueSource | undefined, steering: string): string {
    const { stallThresholdMs } = this.#settings;
    if (source === 'none') return `Stall protection is off: ${queueSourceReason(source)}; ${steering}.`;
    if (stallThresholdMs > 0) {
      return `Stall protection: a slot whose worker is silent for ${stallThresholdMs} ms is lent to a live worker (${this.#hooks.cells}); ${queueSourceReason(source)}; ${steering}.`;
    }
    return `Stall protection is off (stallThresholdMs: 0); ${steering}.`;
  }
}
