// TLS session-ticket keys shared by every worker: with SO_REUSEPORT a client that reconnects lands on
// any worker, and a ticket only resumes on a process that has the key that sealed it. The supervisor
// makes one 48-byte key (Node's setTicketKeys takes one), gives it to each worker that asks before it
// listens, gives every worker a new one at the same moment every ticketKeyRotationMs, and hands the
// current one to its successor in an upgrade. Keys live in memory only: never on disk, in the
// environment or in a log, and only this supervisor's workers and successor get them.
import crypto from 'node:crypto';

/** The length Node's tls.Server#setTicketKeys takes. */
export const TICKET_KEY_BYTES = 48;

/** The current key and its rotation, for one supervisor. */
export class TicketKeys {
  #key: Buffer;
  #timer: NodeJS.Timeout | undefined;
  readonly #onRotate: (key: Buffer) => void;

  /** `key`: a predecessor's (an upgrade), else a new random one. */
  constructor(onRotate: (key: Buffer) => void, key?: Buffer) {
    this.#key = key && key.length === TICKET_KEY_BYTES ? Buffer.from(key) : crypto.randomBytes(TICKET_KEY_BYTES);
    this.#onRotate = onRotate;
  }

  get current(): Buffer {
    return this.#key;
  }

  /** Rotates every `intervalMs` (unref'd: it never keeps the process alive). */
  start(intervalMs: number): void {
    this.#timer = setInterval(() => this.rotate(), intervalMs);
    this.#timer.unref();
  }

  /** A new key, given to every worker at once. */
  rotate(): void {
    const old = this.#key;
    this.#key = crypto.randomBytes(TICKET_KEY_BYTES);
    old.fill(0);
    this.#onRotate(this.#key);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
