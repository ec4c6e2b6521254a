// The one way a TCP listen gets its SO_REUSEPORT socket, for listenReusePort and for the hook
// (reuseport/register) alike: the supervisor's slot socket, borrowed; or a socket of the process's own
// opened by the addon (bound, checked against the port's other holders, registered); over the
// addresses to try, by one of two rules; and the one step after the listen. Node's own `reusePort`
// socket is the third way: each front-end asks Node for it in the form its caller gave (listen
// options, node:cluster's handle request, `_listen2`), so that part stays with them.
import fs from 'node:fs';
import type net from 'node:net';
import type { NativeBinding, NativeSocket } from '../binding';
import { explainTaken } from '../ports/holder-advice';
import { type TcpHandle, tcpHandleFromFd } from '../tcp-handle';
import { type LentSocket, type Supervision, registerWithSupervisor } from '../worker/supervised-worker';
import { isIpv6Unavailable } from './address';
import { joinCluster } from './cluster-worker';
import { trackSupervisedServer } from './datagram-cluster';
import { guardPort } from './guard-port';

/** An address to try. */
export interface Target {
  address: string;
  ipv6Only: boolean;
}

/**
 * When a failed target gives way to the next one:
 * - 'ipv6-unavailable': only for want of IPv6 (listenReusePort: its targets are what the app asked
 *   for, resolved; any other failure is the answer);
 * - 'unless-in-use': on anything but EADDRINUSE, as Node's own listen does with "::" then "0.0.0.0"
 *   (the hook, which stands in for Node's listen).
 */
export type TargetRule = 'ipv6-unavailable' | 'unless-in-use';

/** Whether `rule` moves on to the next target after `error` (pure). */
export function movesOn(rule: TargetRule, error: unknown): boolean {
  if (rule === 'ipv6-unavailable') return isIpv6Unavailable(error);
  return (error as { code?: unknown } | undefined)?.code !== 'EADDRINUSE';
}

/** A failure and the target it happened on. */
export interface TargetFailure<T extends Target = Target> {
  error: unknown;
  target: T;
}

/** Whether a thrown value is a TargetFailure. */
export function isTargetFailure(value: unknown): value is TargetFailure {
  return typeof value === 'object' && value !== null && 'error' in value && 'target' in value;
}

/** Rethrows a TargetFailure's own error (for callers that report the error alone). */
export function throwError(failure: unknown): never {
  throw isTargetFailure(failure) ? failure.error : failure;
}

/** Tries each target in order, moving on by `rule`; throws a TargetFailure (the last one tried). */
export async function tryTargets<T extends Target, V>(
  targets: T[],
  rule: TargetRule,
  attempt: (target: T) => Promise<V> | V,
): Promise<{ target: T; value: V }> {
  let failure: TargetFailure<T> | undefined;
  for (const target of targets) {
    try {
      return { target, value: await attempt(target) };
    } catch (error) {
      failure = { error, target };
      if (!movesOn(rule, error)) break;
    }
  }
  throw failure ?? new Error('reuseport: no address to listen on');
}

/** tryTargets for attempts that do not wait (the hook outside a cluster worker runs synchronously, as Node does there). */
export function tryTargetsSync<T extends Target, V>(targets: T[], rule: TargetRule, attempt: (target: T) => V): { target: T; value: V } {
  let failure: TargetFailure<T> | undefined;
  for (const target of targets) {
    try {
      return { target, value: attempt(target) };
    } catch (error) {
      failure = { error, target };
      if (!movesOn(rule, error)) break;
    }
  }
  throw failure ?? new Error('reuseport: no address to listen on');
}

/** What borrowing the slot socket needs: how to ask the supervisor (injectable for tests). */
export type Borrow = (request: { address: string; port: number; ipv6Only: boolean; group: string | false }) => Promise<LentSocket>;

/** The supervisor's slot socket for the first target that works. */
export async function borrowSlot<T extends Target>(
  borrow: Borrow,
  targets: T[],
  port: number,
  group: string | false,
  rule: TargetRule,
): Promise<{ target: T; lent: LentSocket }> {
  const { target, value } = await tryTargets(targets, rule, (each) => borrow({ address: each.address, port, ipv6Only: each.ipv6Only, group }));
  return { target, lent: value };
}

/** Who binds (named in a warning about group: false) and whether an OS error gets the package's hint now (the hook shapes its errors as Node's first). */
export interface BindOptions {
  caller: string;
  explain: boolean;
}

/**
 * A socket of this process's own from the addon: bound (not listening), checked against the port's
 * other holders and registered to the sharing group. A holder without SO_REUSEPORT makes the bind
 * fail (EADDRINUSE); one with it but of another group is refused before any listen.
 */
export function bindWithAddon(
  binding: NativeBinding,
  group: string | false,
  target: Target,
  port: number,
  options: BindOptions,
): { socket: NativeSocket; unregister: () => void } {
  let socket: NativeSocket;
  try {
    socket = binding.openListener({ address: target.address, port, ipv6Only: target.ipv6Only, listen: false });
  } catch (error) {
    throw options.explain ? explainTaken(error as Error) : error;
  }
  try {
    return { socket, unregister: guardPort(group, socket, 'tcp', options.caller) };
  } catch (error) {
    fs.closeSync(socket.fd);
    throw error;
  }
}

/** bindWithAddon, in the libuv handle Node's listen path listens on (the hook's form: its errors unexplained, as the OS gave them). */
export function openWithAddon(binding: NativeBinding, group: string | false, target: Target, port: number): { handle: TcpHandle; unregister: () => void } {
  const { socket, unregister } = bindWithAddon(binding, group, target, port, { caller: 'server.listen', explain: false });
  try {
    return { handle: tcpHandleFromFd(socket.fd, socket.address, socket.port), unregister };
  } catch (error) {
    unregister();
    fs.closeSync(socket.fd);
    throw error;
  }
}

/**
 * After a listen, for every front-end: a supervised worker's server is told to the supervisor (its
 * drain, its accept counts); a socket that node:cluster's primary did not make ('lent' or 'own') is
 * made known to node:cluster, which then sees the worker listen and closes the server on disconnect.
 */
export function afterListen(server: net.Server, supervision: Supervision | undefined, ownership: 'lent' | 'own' | 'cluster'): void {
  if (supervision) {
    registerWithSupervisor(server, supervision);
    trackSupervisedServer(server);
  }
  if (ownership !== 'cluster') joinCluster(server, ownership);
}
