// Resolves where to bind, the way server.listen() does: default "::" then "0.0.0.0", names by dns.lookup.
import dns from 'node:dns';
import net from 'node:net';
import type { SystemError } from '../errors';

/** One numeric address to try binding, in order. */
export interface BindTarget {
  address: string;
  ipv6Only: boolean;
}

/** dns.lookup's promise form, injectable for tests. */
export type Lookup = (hostname: string) => Promise<{ address: string; family: number }>;

const defaultLookup: Lookup = (hostname) => dns.promises.lookup(hostname);

/** The addresses to try for a host: "::" with a "0.0.0.0" fallback when no host is given. */
export async function resolveBindTargets(host: string | undefined, ipv6Only: boolean, port: number, lookup: Lookup = defaultLookup): Promise<BindTarget[]> {
  if (host === undefined) {
    return [
      { address: '::', ipv6Only },
      { address: '0.0.0.0', ipv6Only: false },
    ];
  }
  if (net.isIP(host) !== 0) return [{ address: host, ipv6Only }];
  try {
    // RFC 6761: names under .invalid never exist; say so without asking a DNS server.
    if (/\.invalid\.?$/i.test(host) || host.toLowerCase() === 'invalid') throw notFound(host);
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

// The error dns.lookup gives for a name that does not exist.
function notFound(host: string): SystemError {
  return Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), {
    errno: -3008,
    code: 'ENOTFOUND',
    syscall: 'getaddrinfo',
    hostname: host,
  });
}

const ipv6Missing = new Set(['EAFNOSUPPORT', 'EPROTONOSUPPORT', 'EADDRNOTAVAIL']);

/** Whether a failure on "::" means this host has no IPv6, so the IPv4 fallback should be tried. */
export function isIpv6Unavailable(error: unknown): boolean {
  const code = (error as Partial<SystemError> | undefined)?.code;
  return typeof code === 'string' && ipv6Missing.has(code);
}
