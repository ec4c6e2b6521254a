// Where a hooked listen binds, as Node's own listen would: with no host, "::" and, if binding it fails,
// "0.0.0.0" (net.js setupListenHandle); with a host, the one address Node resolved. libuv reports
// EADDRINUSE only at listen(2), after Node chose "::", so Node gives that one with the "::" address.
import { type TargetFailure as CoreTargetFailure, tryTargetsSync } from '../listen/acquire';

/** One address to try, with the address type Node's bookkeeping (`_connectionKey`) records for it. */
export interface HookTarget {
  address: string;
  addressType: 4 | 6;
  ipv6Only: boolean;
}

// libuv's uv_tcp_flags, which Node passes down as `flags`.
export const UV_TCP_IPV6ONLY = 1;
export const UV_TCP_REUSEPORT = 2;

/** The addresses to try for what Node passed down (`address` null: no host was given). */
export function hookTargets(address: string | null, addressType: 4 | 6, flags: number | undefined): HookTarget[] {
  if (!address) {
    // Node ignores ipv6Only without a host, and so does this.
    return [
      { address: '::', addressType: 6, ipv6Only: false },
      { address: '0.0.0.0', addressType: 4, ipv6Only: false },
    ];
  }
  return [{ address, addressType, ipv6Only: ((flags ?? 0) & UV_TCP_IPV6ONLY) !== 0 }];
}

/** A failure and the target it happened on. */
export type TargetFailure = CoreTargetFailure<HookTarget>;

/**
 * Tries each target in order, the next one after a failure other than EADDRINUSE (as Node does);
 * throws a TargetFailure.
 */
export function firstTarget<T>(targets: HookTarget[], attempt: (target: HookTarget) => T): { target: HookTarget; value: T } {
  return tryTargetsSync(targets, 'unless-in-use', attempt);
}
