// The supervisor's side of systemd: adopts the sockets systemd passes (LISTEN_FDS), keeps every slot
// socket in the fd store under a name that says where it goes, and tells systemd when the service is
// ready, reloading or stopping. Does nothing without NOTIFY_SOCKET and LISTEN_FDS.
import fs from 'node:fs';
import type { NativeBinding } from '../../binding';
import { handoverError } from './handover';
import type { SlotHandover } from './slot-handover';
import { type ListenFds, SystemdNotifier, fdName, planListenFds } from './systemd';

/** systemd's notify socket and fd store, for one supervisor. */
export class SystemdLink {
  readonly #sockets: SlotHandover | undefined;
  readonly #notifier: SystemdNotifier | undefined;
  #serving = false;

  constructor(binding: NativeBinding | undefined, sockets: SlotHandover | undefined, env: NodeJS.ProcessEnv = process.env) {
    this.#sockets = sockets;
    this.#notifier = SystemdNotifier.fromEnv(binding, env);
  }

  /** Whether systemd (or a harness) listens on NOTIFY_SOCKET. */
  get notifying(): boolean {
    return this.#notifier !== undefined;
  }

  /**
   * Adopts the slot sockets among the fds systemd passed (from the fd store, or a socket unit with
   * ReusePort=yes); returns the sentences for the plan's reasons. Sockets named ours that are not what
   * their names say are closed (and dropped from the store) with a REUSEPORT_LISTEN_FDS_REFUSED warning.
   */
  adopt(binding: NativeBinding | undefined, passed: ListenFds): string[] {
    if (!this.#sockets || !binding) {
      // Not ours to close: a plan without slot sockets leaves them to the app.
      throw handoverError(`systemd passed ${passed.fds.length} fd(s), and this supervisor's plan holds no slot sockets to adopt them as`);
    }
    const plan = planListenFds(binding, passed, (fd) => fs.closeSync(fd));
    const reasons: string[] = [];
    if (plan.sockets.length > 0) {
      // adopt() owns the fds from here: on failure it closes what it did not wrap.
      reasons.push(...this.#sockets.adopt(plan.sockets, 'systemd (LISTEN_FDS)'));
      this.#notifier?.known(plan.sockets.map((socket) => ({ name: fdName(socket), inode: String(fs.fstatSync(socket.fd).ino) })));
    }
    for (const { fd, name, why } of plan.refused) {
      const text = `fd ${fd} ("${name}") from systemd ${why}: closed, and dropped from the fd store`;
      reasons.push(text);
      process.emitWarning(`reuseport: ${text}`, { code: 'REUSEPORT_LISTEN_FDS_REFUSED' });
    }
    this.#notifier?.remove(plan.refused.map(({ name }) => name));
    if (plan.ignored.length > 0) {
      reasons.push(`left ${plan.ignored.map(({ fd, name }) => `fd ${fd} ("${name}")`).join(', ')} from systemd to the app: not listening TCP sockets`);
    }
    return reasons;
  }

  /** Every slot listens: closes adopted sockets no worker asked for, stores the slot sockets, READY=1. */
  serving(): string[] {
    const reasons: string[] = [];
    const unused = this.#sockets?.closeUnused() ?? [];
    if (unused.length > 0) {
      const text = `closed ${unused.length} socket(s) passed back for ${[...new Set(unused.map((s) => `${s.address}:${s.port}`))].join(', ')}, where no worker listens now`;
      reasons.push(text);
      process.emitWarning(`reuseport: ${text}`, { code: 'REUSEPORT_LISTEN_FDS_UNUSED' });
      this.#notifier?.remove(unused.map((socket) => fdName(socket)));
    }
    this.#serving = true;
    this.storeSockets();
    this.#notifier?.ready();
    return reasons;
  }

  /** Stores slot sockets not in the fd store yet (after a slot socket was reopened, say). */
  storeSockets(): void {
    if (!this.#notifier || !this.#sockets || !this.#serving) return;
    this.#notifier.store(
      this.#sockets.handedSockets().map((socket) => ({ name: fdName(socket), fd: socket.sourceFd, inode: String(fs.fstatSync(socket.sourceFd).ino) })),
    );
  }

  /** A slot's sockets are about to be closed for good: out of the store. */
  slotClosing(slot: number): void {
    if (!this.#notifier || !this.#sockets) return;
    this.#notifier.remove(
      this.#sockets
        .handedSockets()
        .filter((socket) => socket.slot === slot)
        .map((socket) => fdName(socket)),
    );
  }

  reloading(): void {
    this.#notifier?.reloading();
  }

  reloaded(): void {
    this.#notifier?.ready();
  }

  stopping(): void {
    this.#notifier?.stopping();
  }
}
