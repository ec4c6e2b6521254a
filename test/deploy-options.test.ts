// The deployment options as pure values: startCluster's checks and the runner's parsers.
import { describe, expect, it } from 'vitest';
import { parseEnvName, parseNodeArgs } from '../lib/cli/args';
import { launcherMessage, launcherOf, splitNodeArgs } from '../lib/cli/launchers';
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
    expect(() => resolveSettings({ exec: 'app.js', workers: 1, instanceVar: given as string })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }),
    );
  });

  it.each([
    ['NODE_APP_INSTANCE', true],
    ['x_1', true],
    ['1X', false],
    ['A B', false],
    ['', false],
  ])('--instance-var %j: accepted %s', (given, ok) => {
    if (ok) expect(parseEnvName(given)).toBe(given);
    else expect(() => parseEnvName(given)).toThrow(/variable name/);
  });
});

describe('--node-args and nodeArgs', () => {
  it.each([
    ['--import tsx', ['--import', 'tsx']],
    ['  --max-old-space-size=512   --enable-source-maps ', ['--max-old-space-size=512', '--enable-source-maps']],
    ['--title "my app" --x', ['--title', 'my app', '--x']],
    ['--title \'a "b"\'', ['--title', 'a "b"']],
    ['--title a\\ b', ['--title', 'a b']],
    ['--title ""', ['--title', '']],
    ['', []],
  ])('%j splits into %j', (text, words) => {
    expect(splitNodeArgs(text)).toEqual(words);
  });

  it.each([['--title "open'], ["--x 'open"]])('%j: an unclosed quote is refused', (text) => {
    expect(() => splitNodeArgs(text)).toThrow(/unclosed/);
    expect(() => parseNodeArgs(text)).toThrow(/unclosed/);
  });

  it.each([[''], ['tsx'], ['app.js --inspect']])('--node-args %j is refused: Node flags begin with one', (text) => {
    expect(() => parseNodeArgs(text)).toThrow(/Node flags/);
  });

  it.each([
    [undefined, []],
    [
      ['--import', 'tsx'],
      ['--import', 'tsx'],
    ],
  ])('nodeArgs %j resolves to %j', (given, resolved) => {
    expect(resolveSettings({ exec: 'app.js', workers: 1, ...(given === undefined ? {} : { nodeArgs: given }) }).nodeArgs).toEqual(resolved);
  });

  it.each([['--import tsx'], [['tsx']], [['--x', '']], [[1]]])('nodeArgs %j is refused', (given) => {
    expect(() => resolveSettings({ exec: 'app.js', workers: 1, nodeArgs: given as string[] })).toThrow(
      expect.objectContaining({ code: expect.stringMatching(/^ERR_INVALID_ARG_(TYPE|VALUE)$/) }),
    );
  });
});

describe('launchers', () => {
  it.each([
    ['node_modules/.bin/tsx', undefined, 'tsx'],
    ['./node_modules/.bin/tsx', '/app/node_modules/tsx/dist/cli.mjs', 'tsx'],
    ['bin/serve', '/app/node_modules/tsx/dist/cli.mjs', 'tsx'],
    ['node_modules/.bin/ts-node', '/app/node_modules/ts-node/dist/bin.js', 'ts-node'],
    ['node_modules/.bin/babel-node', '/app/node_modules/@babel/node/bin/babel-node.js', '@babel/node'],
    ['node_modules/.bin/nodemon', '/app/node_modules/nodemon/bin/nodemon.js', 'nodemon'],
    ['npm', undefined, 'npm'],
    ['/usr/bin/npx', '/usr/lib/node_modules/npm/bin/npx-cli.js', 'npx'],
    ['/usr/local/bin/node', undefined, 'node'],
    ['yarn', undefined, 'yarn'],
    ['server.js', '/app/server.js', undefined],
    ['node.js', '/app/node.js', undefined],
    ['npm/server.js', '/app/npm/server.js', undefined],
    ['node_modules/.bin/next', '/app/node_modules/next/dist/bin/next', undefined],
    ['/srv/node_modules/my-app/server.js', undefined, undefined],
    ['C:\\app\\node_modules\\.bin\\tsx', undefined, 'tsx'],
  ])('%s (leading to %s) is %s', (given, real, launcher) => {
    expect(launcherOf(given, real)).toBe(launcher);
    if (launcher === undefined) expect(launcherMessage(given, real)).toBeUndefined();
    else expect(launcherMessage(given, real)).toContain(`is ${launcher}, which starts the app in a process of its own`);
  });

  it.each([
    ['tsx', '--node-args "--import tsx"'],
    ['npm', 'reuseport start server.js'],
    ['nodemon', 'reuseport reload'],
    ['node', '--node-args'],
  ])('%s: the message says what to run instead (%s)', (name, advice) => {
    expect(launcherMessage(name)).toContain(advice);
  });
});
