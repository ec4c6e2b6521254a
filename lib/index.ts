// Public entry: re-exports only.
export { listenReusePort } from './listen-reuseport';
export type { ListenReusePortOptions } from './options';
export type { ListenBackend, ListenMode, ListenResult } from './types';
export type { SystemError } from './errors';
