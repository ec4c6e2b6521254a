// Resolves where to bind, the way server.listen() does: default "::" then "0.0.0.0", names by dns.lookup.
import dns from 'node:dns';
import net from 'node:net';
import type { SystemError } from './errors';

/** One numeric address to try binding, in order. */
export interface BindTarget {
  address: string;
  ipv6Only: boolean;
}

/** dns.lookup's promise form, injectable for tests. */
export type Lookup = (hostname: string) => Promise<{ address: string; family: number }>;

const defaultLookup: Lookup = (hostname) => dns.promises.lookup(hostname);

/** The addresses to try for a host: "::" with a "0.0.0.0" fallback when no host is given. */
export async function resolveBindTargets(
  host: string | undefined,
  ipv6Only: boolean,
  port: number,
  lookup: Lookup = defaultLookup,
): Promise<BindTarget[]> {
  if (host === undefined) {
    return [
      { address: '::', ipv6Only },
      { address: '0.0.0.0', ipv6Only: false },
    ];
  }
  if (net.isIP(host) !== 0) return [{ address: host, ipv6Only }];
  try {
    // server.listen(port, name) binds the first address dns.lookup returns; so do we.
    const { address } = await lookup(host);
    return [{ address, ipv6Only }];
  } catch (error) {
    const failure = error as SystemError;
    failure.address = host;
    failure.port = port;
    throw failure;
  }
}

const ipv6Missing = new Set(['EAFNOSUPPORT', 'EPROTONOSUPPORT', 'EADDRNOTAVAIL']);

/** Whether a failure on "::" means this host has no IPv6, so the IPv4 fallback should be tried. */
export function isIpv6Unavailable(error: unknown): boolean {
  const code = (error as Partial<SystemError> | undefined)?.code;
  return typeof code === 'string' && ipv6Missing.has(code);
}
