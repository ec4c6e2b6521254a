// Scripts that are launchers, not apps: tsx, ts-node, nodemon, npm and the like start the app in a
// child process of their own (or are Node itself), which the workers' hook never reaches, so the app
// would listen on its own and fail with EADDRINUSE. Found by name before anything starts, with what
// to run instead; and `--node-args` split into Node's flags. Pure functions.
import path from 'node:path';

/** What to run instead of a launcher, by its package or command name. */
export const LAUNCHERS: Record<string, string> = {
  tsx: 'load tsx into the workers instead: reuseport start --node-args "--import tsx" app.ts',
  'ts-node': 'load ts-node into the workers instead: reuseport start --node-args "--require ts-node/register" app.ts (ES modules: "--loader ts-node/esm")',
  'ts-node-dev':
    'load ts-node into the workers instead: reuseport start --node-args "--require ts-node/register" app.ts, and `reuseport reload` after a change',
  '@babel/node': 'load Babel into the workers instead: reuseport start --node-args "--require @babel/register" app.js',
  nodemon: 'start the app itself: reuseport start app.js, and run `reuseport reload --pid-file F` after a change (every worker replaced, nothing lost)',
  'node-dev': 'start the app itself: reuseport start app.js, and run `reuseport reload --pid-file F` after a change',
  npm: "start the file the package's start script runs: reuseport start server.js (its Node flags in --node-args)",
  npx: 'start the file the command runs: reuseport start server.js (its Node flags in --node-args)',
  pnpm: "start the file the package's start script runs: reuseport start server.js (its Node flags in --node-args)",
  yarn: "start the file the package's start script runs: reuseport start server.js (its Node flags in --node-args)",
  node: 'give the script, not Node: reuseport start app.js, and Node\'s own flags in --node-args "..."',
  pm2: 'pm2 is a process manager of its own: reuseport start app.js takes its place (docs/deploy.md has the PM2 equivalents)',
};

// The package a path is in (node_modules/<name>, node_modules/@scope/<name>), or a .bin entry's name.
function packageIn(file: string): string | undefined {
  const parts = file.split(/[\\/]+/);
  for (let i = parts.length - 2; i >= 0; i -= 1) {
    if (parts[i] !== 'node_modules') continue;
    const next = parts[i + 1] ?? '';
    if (next === '.bin') return parts[i + 2];
    return next.startsWith('@') ? `${next}/${parts[i + 2] ?? ''}` : next;
  }
  return undefined;
}

/**
 * The launcher a script is (its name in LAUNCHERS), from the path as given and where it leads (a
 * .bin link's target): a package of the table, or a bare command of its name (`npm`, /usr/bin/node).
 */
export function launcherOf(given: string, real?: string): string | undefined {
  for (const file of [given, ...(real === undefined ? [] : [real])]) {
    const name = packageIn(file) ?? path.basename(file);
    if (Object.hasOwn(LAUNCHERS, name)) return name;
  }
  return undefined;
}

/** Why the runner will not start a launcher, and what to run instead; undefined for an app. */
export function launcherMessage(given: string, real?: string): string | undefined {
  const name = launcherOf(given, real);
  if (name === undefined) return undefined;
  return (
    `reuseport start: ${given} is ${name}, which starts the app in a process of its own (or is Node itself), ` +
    `where the workers' hook cannot reach it (its listen would fail with EADDRINUSE): ${LAUNCHERS[name]}`
  );
}

/**
 * `--node-args "<flags>"` as a list, split as a shell splits words: on spaces, with '...' and "..."
 * keeping spaces and a backslash escaping the next character. Throws on an unclosed quote.
 */
export function splitNodeArgs(text: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i] as string;
    if (quote) {
      if (char === quote) quote = undefined;
      else if (char === '\\' && quote === '"' && i + 1 < text.length) {
        i += 1;
        word = (word ?? '') + text[i];
      } else word = (word ?? '') + char;
    } else if (char === '"' || char === "'") {
      quote = char;
      word ??= '';
    } else if (char === '\\' && i + 1 < text.length) {
      i += 1;
      word = (word ?? '') + text[i];
    } else if (/\s/.test(char)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? '') + char;
    }
  }
  if (quote) throw new Error(`an unclosed ${quote} in ${JSON.stringify(text)}`);
  if (word !== undefined) words.push(word);
  return words;
}
