// The deployment options as pure values: startCluster's checks and the runner's parsers.
import { describe, expect, it } from 'vitest';
import { parseEnvName } from '../lib/cli/args';
import { resolveSettings } from '../lib/supervisor/core/settings';

describe('instanceVar', () => {
  it.each([
    [undefined, 'NODE_APP_INSTANCE'],
    ['WORKER_NO', 'WORKER_NO'],
    ['_x1', '_x1'],
  ])('%s resolves to %s', (given, resolved) => {
    expect(resolveSettings({ exec: 'app.js', workers: 1, ...(given === undefined ? {} : { instanceVar: given }) }).instanceVar).toBe(resolved);
  });

  it.each([[''], ['1X'], ['A-B'], [3], ['A=B']])('%j is refused with ERR_INVALID_ARG_TYPE', (given) => {
    expect(() => resolveSettings({ exec: 'app.js', workers: 1, instanceVar: given as string })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it.each([['NODE_APP_INSTANCE', true], ['x_1', true], ['1X', false], ['A B', false], ['', false]])('--instance-var %j: accepted %s', (given, ok) => {
    if (ok) expect(parseEnvName(given)).toBe(given);
    else expect(() => parseEnvName(given)).toThrow(/variable name/);
  });
});
