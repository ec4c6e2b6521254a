// supervisor.upgrade(): one upgrade in place at a time. Checks the options, starts the successor with
// the slot sockets (successor.ts), and once it serves every slot drains this supervisor and lets go
// of its copies of the sockets; a successor that fails is stopped and this supervisor keeps serving.
import { invalidArgType, modeUnsupported, nodeError } from '../../errors';
import type { Plan } from '../../plan/plan';
import { positiveInteger } from '../core/settings';
import type { HandoverNotes } from './handover';
import type { SlotHandover } from './slot-handover';
import { checkCommand, ownCommand, startSuccessor } from './successor';
import type { EmitEvent } from '../core/events';
import type { UpgradeEvent, UpgradeOptions } from '../core/types';

/** What an upgrade needs of the supervisor it replaces. */
export interface UpgradeHost {
  readonly plan: Plan;
  readonly closed: boolean;
  readonly sockets: SlotHandover | undefined;
  readonly readyTimeoutMs: number;
  emit: EmitEvent;
  /** Stops the supervisor: drains its workers, then `closeSockets`. */
  shutDown(closeSockets: () => void): Promise<unknown>;
  /** The health server's listening fd, handed over too (the successor serves the same health port). */
  healthFd(): number | undefined;
  /** The TLS ticket key, handed over through a pipe (never the environment) so sessions resume on the successor. */
  ticketKey(): Buffer | undefined;
  /** What the successor is told of the service: its counts, its start, how the command line is read. */
  notes(): HandoverNotes;
}

/** The upgrades of one supervisor. */
export class Upgrades {
  readonly #host: UpgradeHost;
  #running: Promise<UpgradeEvent> | undefined;

  constructor(host: UpgradeHost) {
    this.#host = host;
  }

  /** Checks `options` (coded errors, nothing started), then runs the upgrade. */
  start(options: UpgradeOptions = {}): Promise<UpgradeEvent> {
    const host = this.#host;
    let command: string[];
    let readyTimeoutMs: number;
    let sockets: SlotHandover;
    try {
      if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'of type object', options);
      if (host.closed) throw nodeError(Error, 'ERR_REUSEPORT_CLOSED', 'reuseport: the supervisor is closed; there is nothing to upgrade');
      if (this.#running) throw nodeError(Error, 'ERR_REUSEPORT_UPGRADE_IN_PROGRESS', 'reuseport: an upgrade is already running; wait for it to end');
      command = options.command === undefined ? ownCommand() : checkCommand(options.command);
      readyTimeoutMs = positiveInteger(options.readyTimeoutMs, 'options.readyTimeoutMs', host.readyTimeoutMs);
      if (options.exit !== undefined && typeof options.exit !== 'boolean') throw invalidArgType('options.exit', 'of type boolean', options.exit);
      if (!host.sockets) {
        const { mode, backend, reasons } = host.plan;
        throw modeUnsupported(
          `reuseport: upgrade() hands the slot sockets to a successor, and this supervisor holds none: its plan is ${mode} (${backend}); ${reasons.join('; ')}`,
        );
      }
      sockets = host.sockets;
    } catch (error) {
      return Promise.reject(error);
    }
    this.#running = this.#run(command, readyTimeoutMs, sockets, options.exit !== false).finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #run(command: string[], readyTimeoutMs: number, sockets: SlotHandover, exit: boolean): Promise<UpgradeEvent> {
    const successor = startSuccessor(command, sockets.handedSockets(), readyTimeoutMs, this.#host.healthFd(), this.#host.ticketKey(), this.#host.notes());
    try {
      await successor.ready;
    } catch (error) {
      await successor.stop();
      this.#host.emit('upgrade-failed', error as Error);
      throw error;
    }
    const event: UpgradeEvent = { pid: successor.child.pid ?? 0 };
    this.#host.emit('upgrade', event);
    // The successor serves every slot on the same sockets: drain ours, and let go of our copies.
    await this.#host.shutDown(() => sockets.release());
    if (exit) process.exit(0);
    return event;
  }
}
