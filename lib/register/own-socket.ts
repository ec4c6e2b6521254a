// A hooked listen's own SO_REUSEPORT socket, opened by the addon: bound, checked against the port's
// other holders (the sharing group), registered, and wrapped in a libuv TCP handle that Node's listen
// path then listens on. Failures come out as Node's listen errors.
import type { NativeBinding } from '../binding';
import { type SystemError, exceptionWithHostPort, systemError } from '../errors';
import { explainTaken } from '../ports/holder-advice';
import { openWithAddon } from '../listen/acquire';
import type { TcpHandle } from '../tcp-handle';
import type { HookTarget } from './targets';

/** A bound socket in a handle, and how to take its registration back. */
export interface OwnSocket {
  handle: TcpHandle;
  unregister: () => void;
}

/**
 * The error Node would give for this failure, with the package's hint after Node's message: the same
 * code and errno; standalone, Node's listen error (syscall 'listen', the address bound); in a cluster
 * worker, node:cluster's (syscall 'bind', the address as the app gave it, null for none).
 */
export function asNodeError(error: unknown, where: 'standalone' | 'worker', target: { address: string }, asked: string | null, port: number): Error {
  const failure = error as Partial<SystemError>;
  if (typeof failure.errno !== 'number' || typeof failure.code !== 'string') return error as Error;
  const nodeShaped =
    where === 'standalone' ? systemError(failure.errno, 'listen', target.address, port) : exceptionWithHostPort(failure.errno, 'bind', asked, port);
  // A foreign holder's explanation (which names the holder's address:port again) is this package's
  // own: all of it after Node's words, and no generic hint beside it.
  const extra = explanationAfter((error as Error).message, `${target.address}:${port}`);
  if (!extra) explainTaken(nodeShaped);
  else nodeShaped.message += ` ${extra}`;
  return where === 'worker' && asked === null ? sayWhere(nodeShaped, target.address, port) : nodeShaped;
}

/**
 * node:cluster's message for a listen without an address says "null:3000" (kept: it begins every such
 * message, and `address` stays null); the advice after it begins with the address really tried:
 * "bind EADDRINUSE null:3000 (on :::3000: held by ...)".
 */
export function sayWhere<T extends Error>(error: T, address: string, port: number): T {
  const node = `null:${port}`;
  if (port <= 0 || !error.message.includes(node)) return error;
  error.message = error.message.includes(`${node} (`)
    ? error.message.replace(`${node} (`, `${node} (on ${address}:${port}: `)
    : `${error.message} (on ${address}:${port})`;
  return error;
}

/** What a message says after the first `address:port` in it ('' when nothing or no such place). */
export function explanationAfter(message: string, where: string): string {
  const at = message.indexOf(where);
  return at < 0 ? '' : message.slice(at + where.length).trim();
}

/** Opens, checks and registers the socket; throws the OS error (or the foreign-holder refusal): the acquisition core's. */
export const openOwnSocket: (binding: NativeBinding, group: string | false, target: HookTarget, port: number) => OwnSocket = openWithAddon;
