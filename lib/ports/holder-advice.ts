// Who holds a port that a listen found taken (EADDRINUSE), in the words of the error's advice: the
// holders' pids and commands, as `reuseport doctor --port` shows them.
import { type SystemError, explainListenError } from '../errors';
import { type PortHolder, type PortProtocol, findPortHolders } from './port-holders';

// Whether a socket on `held` takes `wanted` from a bind (the same address, or either is a wildcard).
function collides(held: string, wanted: string | null | undefined): boolean {
  if (typeof wanted !== 'string') return true;
  const plain = (address: string) => (address.startsWith('::ffff:') ? address.slice(7) : address);
  const [x, y] = [plain(held), plain(wanted)];
  return x === y || ['0.0.0.0', '::'].includes(x) || ['0.0.0.0', '::'].includes(y);
}

/** The holders in words (pure): "pid 12 (python3 -m http.server 3803) on :::3803; a process of uid 1000 on 0.0.0.0:3803". */
export function describeHolders(holders: PortHolder[]): string {
  return holders
    .map((holder) => {
      const owners = holder.processes.map((p) => `pid ${p.pid} (${p.command || '?'})`).join(', ');
      return `${owners || `a process of uid ${holder.uid} (not visible to this user)`} on ${holder.address}:${holder.port}`;
    })
    .join('; ');
}

/** How long a port's holders, once looked up, are reused: a listen retried in a loop scans /proc once, not every time. */
export const HOLDERS_REUSED_MS = 1_000;
const recent = new Map<string, { at: number; holders: PortHolder[] }>();

/** Who holds `port` where a bind to `address` collides, in words; undefined when none is found (or /proc cannot tell). */
export function portHeldBy(port: number, address: string | null | undefined, protocol: PortProtocol = 'tcp'): string | undefined {
  const key = `${protocol} ${port}`;
  const now = performance.now();
  let found = recent.get(key);
  if (!found || now - found.at > HOLDERS_REUSED_MS) {
    try {
      found = { at: now, holders: findPortHolders(port, '/proc', protocol) };
    } catch {
      // who holds it is advice; the error stands without it
      found = { at: now, holders: [] };
    }
    for (const [old, { at }] of recent) if (now - at > HOLDERS_REUSED_MS) recent.delete(old);
    recent.set(key, found);
  }
  const holders = found.holders.filter((holder) => collides(holder.address, address));
  return holders.length > 0 ? describeHolders(holders) : undefined;
}

/** explainListenError, with an EADDRINUSE's holders named (pid and command) where /proc shows them. */
export function explainTaken<T extends Error>(error: T, protocol: PortProtocol = 'tcp'): T {
  const { code, port, address } = error as Partial<SystemError>;
  const holders = code === 'EADDRINUSE' && typeof port === 'number' && port > 0 ? portHeldBy(port, address, protocol) : undefined;
  return explainListenError(error, holders);
}
