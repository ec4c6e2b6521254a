// The signals that act on a running supervisor, when its settings ask for them: SIGHUP reloads every
// worker (reloadOnSighup), SIGUSR2 upgrades the supervisor itself (upgradeOnSigusr2). A failure is told
// by the 'reload-failed' or 'upgrade-failed' event; the supervisor keeps serving. The shutdown
// signals are fleet/shutdown.ts's.
import type { SupervisorSettings } from '../core/settings';

export class ControlSignals {
  readonly #settings: Pick<SupervisorSettings, 'reloadOnSighup' | 'upgradeOnSigusr2'>;
  readonly #onSighup: () => void;
  readonly #onSigusr2: () => void;

  constructor(settings: Pick<SupervisorSettings, 'reloadOnSighup' | 'upgradeOnSigusr2'>, act: { reload(): Promise<unknown>; upgrade(): Promise<unknown> }) {
    this.#settings = settings;
    this.#onSighup = () => act.reload().catch(() => undefined);
    this.#onSigusr2 = () => act.upgrade().catch(() => undefined);
  }

  install(): void {
    if (this.#settings.reloadOnSighup) process.on('SIGHUP', this.#onSighup);
    if (this.#settings.upgradeOnSigusr2) process.on('SIGUSR2', this.#onSigusr2);
  }

  uninstall(): void {
    process.off('SIGHUP', this.#onSighup);
    process.off('SIGUSR2', this.#onSigusr2);
  }
}
