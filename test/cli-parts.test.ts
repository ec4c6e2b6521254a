// The pure parts of the `reuseport` command (table-driven): worker counts as PM2's -i takes them,
// the command line's syntax an upgrade's successor reads its predecessor's line with, event lines,
// the output mode and a worker's output line, the reason read from a dead worker's stderr, the
// outcome log GET /status reports, and which second signal is the echo of the first.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { commandSyntaxFor, parseRestarts, parseWorkers } from '../lib/cli/args';
import { outcomeFields } from '../lib/cli/control';
import { formatEvent } from '../lib/cli/lines';
import { formatOutput, outputMode } from '../lib/cli/output';
import { stderrReason } from '../lib/cli/start';
import { OutcomeLog } from '../lib/supervisor/fleet/outcomes';
import { ECHO_MS, isEcho, shutdownExitCode } from '../lib/supervisor/fleet/shutdown';
import { HANDOVER_ENV } from '../lib/supervisor/deploy/handover';

describe('parseWorkers', () => {
  it.each<[string, number, number]>([
    ['4', 8, 4],
    ['max', 8, 8],
    ['0', 8, 8],
    ['-1', 8, 7],
    ['-2', 2, 1],
    ['-9', 2, 1],
    ['4096', 2, 4096],
  ])('%s on %s CPUs is %s', (value, cpus, count) => {
    expect(parseWorkers(value, cpus)).toBe(count);
  });

  it.each(['4097', 'many', '1.5', '', '+2', '--1'])('%j is refused', (value) => {
    expect(() => parseWorkers(value, 8)).toThrow(/a count is an integer from 1 to 4096, max \(every CPU\) or -N/);
  });
});

describe('commandSyntaxFor', () => {
  it.each<[string, NodeJS.ProcessEnv, string]>([
    ['no hand-over: this version', {}, 'options-anywhere'],
    ['a hand-over that names none (0.1)', { [HANDOVER_ENV]: JSON.stringify({ from: 1, ready: 3, sockets: [] }) }, 'options-before-script'],
    ["a hand-over that names 0.1's", { [HANDOVER_ENV]: JSON.stringify({ commandSyntax: 'options-before-script' }) }, 'options-before-script'],
    ['a hand-over that names this one', { [HANDOVER_ENV]: JSON.stringify({ commandSyntax: 'options-anywhere' }) }, 'options-anywhere'],
    ['a malformed hand-over (refused later by startCluster)', { [HANDOVER_ENV]: '{' }, 'options-anywhere'],
  ])('%s', (_name, env, syntax) => {
    expect(commandSyntaxFor(env)).toBe(syntax);
  });
});

describe('formatEvent', () => {
  it('words: lists comma-separated, none as -, strings with spaces quoted, undefined left out', () => {
    expect(formatEvent('reload', { pid: 1, pids: [2, 3], killed: [], error: 'a b', code: undefined }, false)).toBe(
      'reload pid=1 pids=2,3 killed=- error="a b"\n',
    );
  });

  it('JSON: the fields keep their types', () => {
    const line = JSON.parse(formatEvent('ready', { pid: 1, workers: [2, 3], ports: [80] }, true));
    expect(line).toMatchObject({ event: 'ready', pid: 1, workers: [2, 3], ports: [80], time: expect.any(String) });
  });
});

describe('outputMode and formatOutput', () => {
  it.each<[{ json?: boolean; prefixOutput?: boolean }, boolean, string]>([
    [{}, true, 'prefix'],
    [{}, false, 'raw'],
    [{ prefixOutput: true }, false, 'prefix'],
    [{ prefixOutput: false }, true, 'raw'],
    [{ json: true }, false, 'json'],
    [{ json: true }, true, 'json'],
    [{ json: true, prefixOutput: false }, false, 'raw'],
  ])('%j on a terminal: %s -> %s', (options, terminal, mode) => {
    expect(outputMode(options, terminal)).toBe(mode);
  });

  it('a line prefixed with [slot pid], or as an output object', () => {
    expect(formatOutput('prefix', 1, 12345, 'stdout', 'listening on 3000')).toBe('[1 12345] listening on 3000\n');
    expect(JSON.parse(formatOutput('json', 1, 12345, 'stderr', '{"level":30}'))).toMatchObject({
      event: 'output',
      slot: 1,
      pid: 12345,
      stream: 'stderr',
      line: '{"level":30}',
    });
  });
});

describe('stderrReason', () => {
  it.each<[string[], string]>([
    [
      [
        'node:internal/errors:541',
        '      throw error;',
        '',
        'RangeError [ERR_SOCKET_BAD_PORT]: options.port should be >= 0 and < 65536. Received type number (99999).',
        '    at Server.listen (node:net:2059:5)',
        '',
        'Node.js v20.20.2',
      ],
      'its error: RangeError [ERR_SOCKET_BAD_PORT]: options.port should be >= 0 and < 65536. Received type number (99999).',
    ],
    [["Error: Cannot find module './config'", '    at Module._resolveFilename'], "its error: Error: Cannot find module './config'"],
    [['config missing', 'giving up', ''], 'its stderr ended with: config missing | giving up'],
    [[], 'it wrote nothing to stderr'],
  ])('%j', (tail, reason) => {
    expect(stderrReason(tail)).toBe(reason);
  });
});

describe('OutcomeLog', () => {
  it("keeps the last reload's and upgrade's outcome with every field of the event, numbered in order", () => {
    const emitter = new EventEmitter();
    const log = new OutcomeLog();
    log.watch(emitter);
    expect(log.last).toEqual({});
    emitter.emit('reload', { pids: [1, 2], cut: 3, killed: [] });
    emitter.emit('upgrade-failed', Object.assign(new Error('no'), { code: 'ERR_X' }));
    expect(log.last.reload).toMatchObject({ seq: 1, ok: true, pids: [1, 2], cut: 3 });
    expect(log.last.upgrade).toMatchObject({ seq: 2, ok: false, error: 'no', code: 'ERR_X' });
    emitter.emit('reload-failed', new Error('broken'));
    expect(log.last.reload).toMatchObject({ seq: 3, ok: false, error: 'broken' });
    expect(outcomeFields(log.last.upgrade as never)).toEqual({ error: 'no', code: 'ERR_X' });
    emitter.emit('reload', { pids: [4], cut: 0, killed: [] });
    expect(outcomeFields(log.last.reload as never)).toEqual({ pids: [4], cut: 0 });
  });
});

describe('isEcho and shutdownExitCode', () => {
  const first: { signal: NodeJS.Signals; at: number } = { signal: 'SIGINT', at: 1_000 };
  it.each<[typeof first | undefined, NodeJS.Signals, number, boolean]>([
    [undefined, 'SIGINT', 1_000, false],
    [first, 'SIGINT', 1_003, true],
    [first, 'SIGINT', 1_000 + ECHO_MS - 1, true],
    [first, 'SIGINT', 1_000 + ECHO_MS, false],
    [first, 'SIGTERM', 1_003, false],
    [{ signal: 'SIGTERM', at: 1_000 }, 'SIGTERM', 1_002, true],
  ])('after %j, %s at %s is an echo: %s', (before, signal, at, echo) => {
    expect(isEcho(before, signal, at)).toBe(echo);
  });

  it.each([
    [{ cut: 0, killed: [] }, 0],
    [{ cut: 2, killed: [] }, 1],
    [{ cut: 0, killed: [5] }, 1],
  ])('%j exits %s', (result, code) => {
    expect(shutdownExitCode(result)).toBe(code);
  });
});

describe('parseRestarts (--max-restarts)', () => {
  it.each([
    ['0', 0],
    ['16', 16],
    ['2147483647', 2_147_483_647],
  ])('%s is %d', (text, count) => {
    expect(parseRestarts(text)).toBe(count);
  });

  it.each(['abc', '-1', '1.5', '', '2147483648'])('%j is refused, saying what a number of restarts is (not a duration)', (text) => {
    expect(() => parseRestarts(text)).toThrow(/a number of restarts is a whole number/);
  });
});
