// The sharing-group check of a socket of the process's own, once it is bound: every front-end runs it
// (listenReusePort, bindReusePort, the hook) before the socket serves.
import fs from 'node:fs';
import { defaultGroup, foreignHolderError, foreignHolders, registerSocket } from '../ports/ownership';
import type { PortProtocol } from '../ports/port-holders';

/**
 * Refuses a port that a socket of another sharing group holds, once our socket is bound (a holder
 * without SO_REUSEPORT already made the bind fail) and registered, so a process racing us sees ours.
 * With group false it only warns. Returns how to unregister our socket. `protocol` 'udp' looks at
 * the UDP sockets bound to the port instead of TCP listeners.
 */
export function guardPort(
  group: string | false,
  bound: { fd: number; address: string; port: number },
  protocol: PortProtocol = 'tcp',
  caller = 'listenReusePort',
): () => void {
  const ours = new Set([String(fs.fstatSync(bound.fd).ino)]);
  if (group === false) {
    const foreign = foreignHolders(bound.address, bound.port, defaultGroup(), ours, protocol);
    if (foreign.length > 0) {
      process.emitWarning(`${caller} with { group: false } shares ${bound.address}:${bound.port} with processes outside this app`, {
        code: 'REUSEPORT_GROUP_DISABLED',
        detail: foreignHolderError(foreign, bound.address, bound.port, defaultGroup()).message,
      });
    }
    return () => undefined;
  }
  const unregister = registerSocket(bound.fd, group);
  const foreign = foreignHolders(bound.address, bound.port, group, ours, protocol);
  if (foreign.length > 0) {
    unregister();
    throw foreignHolderError(foreign, bound.address, bound.port, group);
  }
  return unregister;
}
