// Which native sources binding.gyp and CMakeLists.txt compile on a given OS, read from the files
// themselves (for test/build-files.test.ts and the Windows syntax check in CI).
// CLI: node scripts/ci/build-sources.mjs <gyp|cmake> <linux|mac|win|freebsd>
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** gyp's names for the platforms we care about. */
export const PLATFORMS = ['linux', 'mac', 'win', 'freebsd'];

// gyp files are Python literals: drop comments, turn '...' strings into "...", drop trailing commas.
function parseGyp(text) {
  let json = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      json += '\n';
    } else if (c === '"' || c === "'") {
      let value = '';
      for (i++; text[i] !== c; i++) {
        if (i >= text.length) throw new Error('binding.gyp: unterminated string');
        if (text[i] === '\\') value += text[++i] === 'n' ? '\n' : text[i];
        else value += text[i];
      }
      json += JSON.stringify(value);
    } else {
      json += c;
    }
  }
  return JSON.parse(json.replace(/,(\s*[\]}])/g, '$1'));
}

// A gyp condition such as OS=="win", OS!='win' or OS=="linux" or OS=="mac"; nothing else.
function gypCondition(expression, os) {
  return expression.split(/\s+or\s+/).some((alternative) =>
    alternative.split(/\s+and\s+/).every((term) => {
      const match = /^\s*OS\s*(==|!=)\s*"([^"]*)"\s*$/.exec(term.replace(/'/g, '"'));
      if (!match) throw new Error(`binding.gyp: unsupported condition ${JSON.stringify(expression)}`);
      return match[1] === '==' ? os === match[2] : os !== match[2];
    }),
  );
}

function gypTargetSources(target, os) {
  const sources = [...(target.sources ?? [])];
  for (const [expression, then, otherwise] of target.conditions ?? []) {
    const chosen = gypCondition(expression, os) ? then : otherwise;
    if (chosen) sources.push(...gypTargetSources(chosen, os));
  }
  return sources;
}

/** The sources binding.gyp compiles for target `name` on `os`, sorted. */
export function gypSources(text, os, name = 'reuseport') {
  const target = parseGyp(text).targets.find((t) => t.target_name === name);
  if (!target) throw new Error(`binding.gyp: no target ${name}`);
  return gypTargetSources(target, os).sort();
}

// CMake's platform variables as they are on each OS.
function cmakeVariables(os) {
  return { WIN32: os === 'win', APPLE: os === 'mac', UNIX: os !== 'win', MSVC: false, MINGW: false };
}

// if() arguments built from the platform variables with NOT, AND, OR (no parentheses); undefined
// when the condition is about something else (an option such as REUSEPORT_SANITIZE).
function cmakeCondition(expression, os) {
  const variables = cmakeVariables(os);
  const terms = expression.split(/\s+(?:OR|AND)\s+/).map((term) => /^\s*(NOT\s+)?(\w+)\s*$/.exec(term));
  if (terms.some((match) => !match || !(match[2] in variables))) return undefined;
  return expression.split(/\s+OR\s+/).some((alternative) =>
    alternative.split(/\s+AND\s+/).every((term) => {
      const match = /^\s*(NOT\s+)?(\w+)\s*$/.exec(term);
      return Boolean(match[1]) !== variables[match[2]];
    }),
  );
}

/**
 * The sources CMakeLists.txt gives `variable` on `os`, sorted: set(...) and list(APPEND ...) of it,
 * inside if/elseif/else/endif blocks on platform variables. Throws on anything it cannot follow
 * (a change to the list under another kind of condition, or a form it does not know).
 */
export function cmakeSources(text, os, variable = 'REUSEPORT_SOURCES') {
  const lines = text.replace(/#[^\n]*/g, '').split('\n');
  // One frame per open if(): `branch` is true/false for the branch being read, undefined when the
  // condition is not about the platform; `taken` says an earlier branch was chosen.
  const stack = [];
  const state = () =>
    stack.some((f) => f.branch === false) ? false : stack.some((f) => f.branch === undefined) ? undefined : true;
  let sources = [];
  for (const raw of lines) {
    const line = raw.trim();
    let match;
    if ((match = /^if\s*\((.*)\)$/i.exec(line))) {
      const branch = cmakeCondition(match[1], os);
      stack.push({ branch, taken: branch === true });
    } else if ((match = /^elseif\s*\((.*)\)$/i.exec(line))) {
      const frame = stack.at(-1);
      const branch = cmakeCondition(match[1], os);
      frame.branch = frame.taken ? false : branch === undefined || frame.branch === undefined ? undefined : branch;
      frame.taken ||= frame.branch === true;
    } else if (/^else\s*\(\s*\)$/i.test(line)) {
      const frame = stack.at(-1);
      frame.branch = frame.taken ? false : frame.branch === undefined ? undefined : true;
      frame.taken = true;
    } else if (/^endif\s*\(\s*\)$/i.test(line)) {
      stack.pop();
    } else if (line.includes(variable) && !line.includes(`\${${variable}}`)) {
      const set = /^set\s*\(\s*(\w+)\s+([^)]*)\)$/i.exec(line);
      const append = /^list\s*\(\s*APPEND\s+(\w+)\s+([^)]*)\)$/i.exec(line);
      const found = set ?? append;
      if (!found || found[1] !== variable) throw new Error(`CMakeLists.txt: cannot read ${JSON.stringify(line)}`);
      const now = state();
      if (now === undefined) {
        throw new Error(`CMakeLists.txt: ${variable} changes under a condition that is not the platform`);
      }
      if (!now) continue;
      const items = found[2].split(/\s+/).filter(Boolean);
      sources = set ? items : [...sources, ...items];
    }
  }
  if (stack.length > 0) throw new Error('CMakeLists.txt: unclosed if()');
  return sources.sort();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [kind, os] = process.argv.slice(2);
  const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  if (!['gyp', 'cmake'].includes(kind) || !PLATFORMS.includes(os)) {
    console.error(`usage: build-sources.mjs <gyp|cmake> <${PLATFORMS.join('|')}>`);
    process.exit(2);
  }
  const file = kind === 'gyp' ? 'binding.gyp' : 'CMakeLists.txt';
  const text = fs.readFileSync(path.join(root, file), 'utf8');
  const list = kind === 'gyp' ? gypSources(text, os) : cmakeSources(text, os);
  console.log(list.join('\n'));
}
