// The option of a `reuseport start` command line that commander would call unknown, found before
// commander parses the line, so that the runner can say where the script's own arguments go (which
// commander's message would not). A walk of the arguments up to `--` by commander's own rules
// (Command.parseOptions in commander 14), over the public fields of the command's options.

/** What the walk reads of an option: public fields of commander's Option. */
export interface KnownOption {
  readonly short?: string;
  readonly long?: string;
  /** It takes a value, which may start with `-` (`-i -1`, `--node-args "--import tsx"`). */
  readonly required: boolean;
  /** It takes the next argument as its value unless that looks like an option. */
  readonly optional: boolean;
  /** It takes every following argument that does not look like an option (`<values...>`). */
  readonly variadic?: boolean;
  /** The option's own check of its value; commander stops at a value it refuses. */
  readonly parseArg?: (value: string, previous: unknown) => unknown;
}

/** commander's default help option (not in a command's options). */
const HELP_FLAGS: readonly string[] = ['-h', '--help'];

const maybeOption = (arg: string): boolean => arg.length > 1 && arg.startsWith('-');

/**
 * The first argument before `--` that commander would report as an unknown option of the command
 * whose options are given, or undefined when it would report none, or would stop first at something
 * else it reports itself: a help flag (help is shown, exit 0), a value missing or refused by the
 * option's parser. Options and operands mix freely (the script is an operand); `--flag=value`; an
 * option that requires a value takes the next argument whatever it is; an optional value is the
 * next argument unless that looks like an option, a variadic option's values every argument up to
 * one that does; `-i4` is -i with the value 4, `-ab` two boolean
 * flags; `-` alone and negative numbers (`-5`, `-1.5`) are operands, unless some option's short
 * flag is a digit. A negated option (`--no-balance`) is known by its own long flag.
 */
export function firstUnknownOption(argv: readonly string[], options: readonly KnownOption[]): string | undefined {
  const find = (flag: string) => options.find((option) => option.short === flag || option.long === flag);
  const digitShort = options.some((option) => option.short !== undefined && /^-\d$/.test(option.short));
  const negativeNumber = (arg: string) => !digitShort && /^-(\d+|\d*\.\d+)(e[+-]?\d+)?$/.test(arg);
  const accepted = (option: KnownOption, value: string) => {
    try {
      option.parseArg?.(value, undefined);
      return true;
    } catch {
      return false;
    }
  };

  let unknown: string | undefined;
  let group: string | undefined; // the rest of `-abc` after a boolean short flag
  let variadic: KnownOption | undefined; // the last option, while it takes more values
  let i = 0;
  while (i < argv.length || group !== undefined) {
    const arg = group ?? (argv[i++] as string);
    group = undefined;
    if (arg === '--') {
      // After an unknown option commander keeps the arguments after `--` too, and a help flag there is a request for help.
      if (unknown !== undefined && argv.slice(i).some((rest) => HELP_FLAGS.includes(rest))) return undefined;
      break;
    }
    if (variadic && (!maybeOption(arg) || negativeNumber(arg))) {
      if (!accepted(variadic, arg)) return undefined;
      continue;
    }
    variadic = undefined;
    // commander shows the help before it checks for unknown options.
    if (HELP_FLAGS.includes(arg)) return undefined;

    const option = maybeOption(arg) ? find(arg) : undefined;
    if (option) {
      if (option.required) {
        const value = argv[i++];
        if (value === undefined || !accepted(option, value)) return undefined;
      } else if (option.optional) {
        const next = argv[i];
        const takesNext = next !== undefined && (!maybeOption(next) || negativeNumber(next));
        if (takesNext && !accepted(option, argv[i++] as string)) return undefined;
      }
      variadic = option.variadic ? option : undefined;
      continue;
    }

    const short = arg.length > 2 && arg[0] === '-' && arg[1] !== '-' ? find(arg.slice(0, 2)) : undefined;
    if (short?.required || short?.optional) {
      if (!accepted(short, arg.slice(2))) return undefined;
      continue;
    }
    if (short) {
      group = `-${arg.slice(2)}`;
      continue;
    }

    const equals = /^--[^=]+=/.test(arg) ? arg.indexOf('=') : -1;
    const long = equals > 0 ? find(arg.slice(0, equals)) : undefined;
    if (long?.required || long?.optional) {
      if (!accepted(long, arg.slice(equals + 1))) return undefined;
      continue;
    }

    if (unknown === undefined && maybeOption(arg) && !negativeNumber(arg)) unknown = arg;
  }
  return unknown;
}
