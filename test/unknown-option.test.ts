// Which option of a `reuseport start` command line commander would call unknown, found before it
// parses (table-driven): every answer is also checked against commander's own parse of the same line
// with the same options, which reports the unknown option, or stops first at help, a missing or
// refused value, or reports nothing.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { parseMode, parseNodeArgs, parseWorkers } from '../lib/cli/args';
import { firstUnknownOption } from '../lib/cli/unknown-option';

/** Options as `reuseport start` declares them (a sample of each kind it has). */
function startLike(): Command {
  return new Command('start')
    .argument('<script>')
    .argument('[args...]')
    .option('-i, --instances <n>', '', (value) => parseWorkers(value))
    .option('-w, --workers <n>', '', (value) => parseWorkers(value))
    .option('--mode <mode>', '', parseMode)
    .option('--pid-file <file>')
    .option('--node-args <flags>', '', parseNodeArgs)
    .option('--json')
    .option('--no-balance');
}

/** The kinds of option `reuseport start` has none of: a boolean short flag, an optional value, a variadic one. */
function otherKinds(): Command {
  const refuseBad = (value: string) => {
    if (value === 'bad') throw new InvalidArgumentError('bad');
    return value;
  };
  return new Command('other')
    .argument('[args...]')
    .option('-q, --quiet')
    .option('-c, --color [when]')
    .addOption(new Option('--tag <tags...>').argParser(refuseBad));
}

/** A short flag that is a digit: then `-5` is an option, not a negative number. */
function digitShort(): Command {
  return new Command('digits').argument('[args...]').option('-1, --one');
}

/** What commander itself says of the line: the unknown option it reports, or undefined. */
function commanderSays(command: Command, argv: string[]): string | undefined {
  command
    .exitOverride()
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined })
    .action(() => undefined);
  try {
    command.parse(argv, { from: 'user' });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    if (error.code === 'commander.unknownOption') return /^error: unknown option '(.*)'/.exec(error.message)?.[1];
  }
  return undefined;
}

const cases: [string, () => Command, string[], string | undefined][] = [
  ['an option after the script', startLike, ['app.js', '--port', '3000'], '--port'],
  ['an option before the script', startLike, ['--port', '3000', 'app.js'], '--port'],
  ['the first of two', startLike, ['app.js', '--foo', '--bar'], '--foo'],
  ['known options after the script', startLike, ['app.js', '--json', '-i', '2', '--pid-file', 'app.pid'], undefined],
  ['-i -1 (a value, not an option)', startLike, ['app.js', '-i', '-1'], undefined],
  ['-i4 (a short flag with its value)', startLike, ['app.js', '-i4'], undefined],
  ['--workers=2', startLike, ['app.js', '--workers=2'], undefined],
  ['--node-args "--import tsx" (a value that starts with -)', startLike, ['app.js', '--node-args', '--import tsx'], undefined],
  ['--node-args=--import', startLike, ['app.js', '--node-args=--import'], undefined],
  ['--pid-file -h (a value, not help)', startLike, ['app.js', '--pid-file', '-h', '--foo'], '--foo'],
  ['--no-balance', startLike, ['app.js', '--no-balance'], undefined],
  ['--balance (only its negation is an option)', startLike, ['app.js', '--balance'], '--balance'],
  ['=value on a flag that takes none', startLike, ['app.js', '--json=1'], '--json=1'],
  ['=value on an unknown flag', startLike, ['app.js', '--foo=bar'], '--foo=bar'],
  ['short flags with an unknown one first', startLike, ['app.js', '-xi4'], '-xi4'],
  ["the parent's -v", startLike, ['app.js', '-v'], '-v'],
  ['everything after --', startLike, ['app.js', '--', '--port', '3000', '-x'], undefined],
  ['-- alone', startLike, ['app.js', '--'], undefined],
  ['an unknown option before --', startLike, ['app.js', '--foo', '--', '--bar'], '--foo'],
  ['-h', startLike, ['app.js', '-h'], undefined],
  ['--help before the script', startLike, ['--help', 'app.js'], undefined],
  ['-h after an unknown option (help first)', startLike, ['app.js', '--foo', '-h'], undefined],
  ['-h after -- after an unknown option (help first)', startLike, ['app.js', '--foo', '--', '-h'], undefined],
  ['-h after -- alone (the script argument)', startLike, ['app.js', '--', '--foo', '-h'], undefined],
  ['-hx', startLike, ['app.js', '-hx'], '-hx'],
  ['--help=x', startLike, ['app.js', '--help=x'], '--help=x'],
  ['- (an operand)', startLike, ['-', '--port'], '--port'],
  ['- alone', startLike, ['-'], undefined],
  ['a negative number (an operand)', startLike, ['app.js', '-5', '-1.5', '-.5', '-1e3'], undefined],
  ['a missing value (commander reports it)', startLike, ['app.js', '-x', '-i'], undefined],
  ['a refused value after the unknown option', startLike, ['app.js', '--foo', '-i', 'many'], undefined],
  ['a refused value before it', startLike, ['app.js', '--mode=bogus', '--foo'], undefined],
  ['a refused short value', startLike, ['app.js', '-imany', '--foo'], undefined],
  ['-q then -c with its value', otherKinds, ['-qc', 'x'], undefined],
  ['-q then an unknown -z', otherKinds, ['-qz'], '-z'],
  ['-q then -h', otherKinds, ['-qh', '--foo'], undefined],
  ['-q then --', otherKinds, ['-q-', '--foo'], undefined],
  ['an optional value does not take an option', otherKinds, ['--color', '--foo'], '--foo'],
  ['an optional value takes a negative number', otherKinds, ['--color', '-5', '--foo'], '--foo'],
  ['an optional value takes a word', otherKinds, ['--color', 'always', 'x'], undefined],
  ['-c with its optional value', otherKinds, ['-cauto'], undefined],
  ['--color=x', otherKinds, ['--color=x'], undefined],
  ['=value on a boolean flag', otherKinds, ['--quiet=x'], '--quiet=x'],
  ['variadic values, then an unknown option', otherKinds, ['--tag', 'a', 'b', '--foo'], '--foo'],
  ['a variadic value refused', otherKinds, ['--foo', '--tag', 'a', 'bad'], undefined],
  ['a negative number with a digit short flag', digitShort, ['-1', '-5'], '-5'],
];

describe('firstUnknownOption', () => {
  it.each(cases)('%s', (_name, build, argv, unknown) => {
    expect(firstUnknownOption(argv, build().options)).toBe(unknown);
    expect(commanderSays(build(), argv)).toBe(unknown);
  });
});
