// The acquisition core's two rules for moving on to the next address (lib/listen/acquire.ts):
// listenReusePort moves on only for want of IPv6; the hook, standing in for Node's listen, on anything
// but EADDRINUSE. Both must survive any refactor: each is right for its caller.
import { describe, expect, it } from 'vitest';
import { type TargetRule, movesOn, tryTargets, tryTargetsSync } from '../lib/listen/acquire';

const error = (code: string) => Object.assign(new Error(code), { code });
const targets = [
  { address: '::', ipv6Only: false },
  { address: '0.0.0.0', ipv6Only: false },
];

describe('movesOn', () => {
  it.each<[TargetRule, string, boolean]>([
    ['ipv6-unavailable', 'EAFNOSUPPORT', true],
    ['ipv6-unavailable', 'EADDRNOTAVAIL', true],
    ['ipv6-unavailable', 'EADDRINUSE', false],
    ['ipv6-unavailable', 'EACCES', false],
    ['unless-in-use', 'EADDRINUSE', false],
    ['unless-in-use', 'EAFNOSUPPORT', true],
    ['unless-in-use', 'EACCES', true],
    ['unless-in-use', 'EINVAL', true],
  ])('%s after %s: %s', (rule, code, next) => {
    expect(movesOn(rule, error(code))).toBe(next);
  });
});

describe('tryTargets and tryTargetsSync', () => {
  it.each<[TargetRule, string[], string | undefined, string]>([
    // [rule, the codes each target fails with ('' succeeds), what answers, the addresses tried]
    ['ipv6-unavailable', ['EAFNOSUPPORT', ''], '0.0.0.0', '::,0.0.0.0'],
    ['ipv6-unavailable', ['EACCES', ''], undefined, '::'],
    ['unless-in-use', ['EACCES', ''], '0.0.0.0', '::,0.0.0.0'],
    ['unless-in-use', ['EADDRINUSE', ''], undefined, '::'],
    ['unless-in-use', ['', 'EACCES'], '::', '::'],
    ['unless-in-use', ['EACCES', 'EINVAL'], undefined, '::,0.0.0.0'],
  ])('%s, failures %j: answered by %s, tried %s', async (rule, codes, answer, tried) => {
    for (const run of ['async', 'sync'] as const) {
      const seen: string[] = [];
      const attempt = (target: { address: string }) => {
        seen.push(target.address);
        const code = codes[seen.length - 1];
        if (code) throw error(code);
        return target.address;
      };
      const outcome = run === 'async' ? tryTargets(targets, rule, attempt) : Promise.resolve().then(() => tryTargetsSync(targets, rule, attempt));
      if (answer === undefined) {
        // The failure names the last target tried and carries its error.
        await expect(outcome).rejects.toMatchObject({ target: { address: tried.split(',').at(-1) }, error: { code: codes[tried.split(',').length - 1] } });
      } else {
        await expect(outcome).resolves.toMatchObject({ value: answer, target: { address: answer } });
      }
      expect(seen.join(',')).toBe(tried);
    }
  });
});
