// The advice a process in 'exclusive' mode gets with EADDRINUSE (pure, table-driven): the cause
// that made it exclusive, and its fix. The processes that print it are in runner-messages.test.ts.
import { describe, expect, it } from 'vitest';
import { exclusiveAdvice } from '../lib/listen/exclusive-advice';

const linux = { platform: 'linux', release: '6.8.0', addon: true, nodeReusePort: false, role: 'none' as const };

describe('exclusiveAdvice', () => {
  it.each<[string, Parameters<typeof exclusiveAdvice>[0], RegExp, RegExp]>([
    [
      "a worker whose primary chose 'exclusive' (reuseport start --mode exclusive -w 2)",
      { facts: { ...linux, role: 'worker' }, primaryPid: 42 },
      /'exclusive' mode, chosen by its primary \(pid 42\).*Run one worker \(reuseport start -i 1.*mode auto \(the default\), reuseport, round-robin or shared/,
      /setupPrimary|addon/,
    ],
    [
      "a worker that asked for 'exclusive' itself",
      { facts: { ...linux, role: 'worker' }, primaryPid: undefined },
      /chosen by this worker's mode option/,
      /setupPrimary/,
    ],
    [
      'a lone process on a kernel that balances, without the addon or reusePort in Node',
      { facts: { ...linux, addon: false }, primaryPid: undefined },
      /^the addon is missing: npm rebuild reuseport/,
      /spreads|kernel balanc/,
    ],
    [
      'a lone process on a kernel that cannot balance',
      { facts: { ...linux, platform: 'darwin', release: '23.1.0' }, primaryPid: undefined },
      /'exclusive' mode, so it cannot share the port: .*Darwin 23\.1\.0.*reuseport start, or startCluster/,
      /npm rebuild/,
    ],
  ])('%s', (_name, context, says, never) => {
    const advice = exclusiveAdvice(context);
    expect(advice).toMatch(says);
    expect(advice).not.toMatch(never);
  });
});
