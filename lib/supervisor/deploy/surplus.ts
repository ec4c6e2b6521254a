// Surplus slot sockets: a successor with fewer workers than its predecessor adopts every socket (the
// same sockets keep their queues), lends each extra one to a live worker, keeps new connections off
// it (steering), and closes it once its queue is empty, highest slot first so that closing moves no
// other socket in the kernel's group. Where the port is not steered the kernel keeps sending to them,
// so they stay lent for good.
import type { Worker } from 'node:cluster';
import { supervisorMessage } from '../../cluster/ipc';
import type { SlotSocket } from '../slots/socket-group';
import type { SlotHandover } from './slot-handover';
import type { Slot, WorkerSlots } from '../slots/worker-slots';

/** How often surplus queues are looked at, and how long after serving they may first be closed. */
const CHECK_MS = 100;
const SETTLE_MS = 1_000;

/** The lending and closing of surplus slot sockets for one supervisor. */
export class SurplusSockets {
  readonly #handover: SlotHandover;
  readonly #workers: WorkerSlots;
  readonly #onClosed: (slot: number) => void;
  #timer: NodeJS.Timeout | undefined;
  // What each worker was lent already: it is told at each of its listens.
  readonly #lent = new WeakMap<Worker, Set<SlotSocket>>();

  constructor(handover: SlotHandover, workers: WorkerSlots, onClosed: (slot: number) => void) {
    this.#handover = handover;
    this.#workers = workers;
    this.#onClosed = onClosed;
  }

  /**
   * A worker listens: it takes the surplus slots that fall to its slot (surplus % workers), on the
   * ports it listens on (a port it starts to listen on later is lent then), each socket once.
   */
  lendTo(worker: Worker, slot: Slot): void {
    const count = this.#workers.slots.length;
    const lent = this.#lent.get(worker) ?? new Set<SlotSocket>();
    this.#lent.set(worker, lent);
    for (const surplus of this.#handover.surplusSlots()) {
      if (surplus % count !== slot.index) continue;
      for (const socket of this.#handover.sockets.lendable(surplus, slot.index)) {
        if (lent.has(socket)) continue;
        lent.add(socket);
        this.#workers.send(worker, supervisorMessage({ act: 'lend', slot: surplus, port: socket.port }), socket.handle);
      }
    }
  }

  /** Every slot is served and steered: close each surplus socket once its queue is empty. */
  start(): void {
    if (this.#handover.surplusSlots().length === 0) return;
    const since = performance.now();
    this.#timer = setInterval(() => {
      if (performance.now() - since < SETTLE_MS) return;
      const [highest] = this.#handover.surplusSlots();
      if (highest === undefined) return this.stop();
      if (!this.#handover.surplusDrained(highest)) return;
      for (const slot of this.#workers.slots) if (slot.worker) this.#workers.send(slot.worker, supervisorMessage({ act: 'recall', slot: highest }));
      this.#onClosed(highest);
      this.#handover.closeSurplus(highest);
    }, CHECK_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
