// binding.gyp (node-gyp, prebuildify, the install fallback) and CMakeLists.txt (cmake-js, the
// sanitizer build) must compile the same native sources on every OS, and every file in native/
// must be used by both: two build files that drift apart ship two different addons.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PLATFORMS, cmakeSources, gypSources } from '../scripts/ci/build-sources.mjs';

const root = path.join(__dirname, '..');
const gyp = fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8');
const cmake = fs.readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8');
const nativeFiles = fs
  .readdirSync(path.join(root, 'native'))
  .map((name) => `native/${name}`)
  .sort();

// Every native/ file a source list reaches through #include "..." (the headers it uses).
function reachedFrom(sources: string[]): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file) || !fs.existsSync(path.join(root, file))) return;
    seen.add(file);
    const text = fs.readFileSync(path.join(root, file), 'utf8');
    for (const [, included] of text.matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)) {
      visit(path.posix.join(path.posix.dirname(file), included));
    }
  };
  sources.forEach(visit);
  return seen;
}

describe('binding.gyp and CMakeLists.txt', () => {
  it.each(PLATFORMS)('compile the same sources on %s', (os) => {
    const fromGyp = gypSources(gyp, os);
    expect(fromGyp.length).toBeGreaterThan(0);
    expect(cmakeSources(cmake, os)).toEqual(fromGyp);
  });

  it.each(PLATFORMS)('list only files that exist, on %s', (os) => {
    for (const file of [...gypSources(gyp, os), ...cmakeSources(cmake, os)]) {
      expect(fs.existsSync(path.join(root, file)), file).toBe(true);
    }
  });

  it.each([
    ['binding.gyp', (os: string) => gypSources(gyp, os)],
    ['CMakeLists.txt', (os: string) => cmakeSources(cmake, os)],
  ])('%s uses every file in native/ on some platform', (_name, sourcesOn) => {
    const used = reachedFrom(PLATFORMS.flatMap((os) => sourcesOn(os)));
    expect(nativeFiles.filter((file) => !used.has(file))).toEqual([]);
  });

  it.each([
    ['linux', 'native/socket_posix.cc', 'native/socket_win.cc'],
    ['mac', 'native/socket_posix.cc', 'native/socket_win.cc'],
    ['freebsd', 'native/socket_posix.cc', 'native/socket_win.cc'],
    ['win', 'native/socket_win.cc', 'native/socket_posix.cc'],
  ])('on %s compile %s and never %s', (os, wanted, unwanted) => {
    for (const sources of [gypSources(gyp, os), cmakeSources(cmake, os)]) {
      expect(sources).toContain(wanted);
      expect(sources).not.toContain(unwanted);
    }
  });
});

describe('the build-file readers', () => {
  it('read gyp as Python literals: comments, single quotes, trailing commas, else branches', () => {
    const text = `{ # a comment
      'targets': [{ 'target_name': 'reuseport', 'sources': ['a.cc',],
        'conditions': [["OS=='win' or OS=='mac'", {'sources': ['w.cc']}, {'sources': ['p.cc']}],],
      }],
    }`;
    expect(gypSources(text, 'win')).toEqual(['a.cc', 'w.cc']);
    expect(gypSources(text, 'mac')).toEqual(['a.cc', 'w.cc']);
    expect(gypSources(text, 'linux')).toEqual(['a.cc', 'p.cc']);
  });

  it('read CMake if/elseif/else on platform variables and skip unrelated options', () => {
    const text = [
      'set(REUSEPORT_SOURCES a.cc) # base',
      'if(WIN32)',
      '  list(APPEND REUSEPORT_SOURCES w.cc)',
      'elseif(APPLE)',
      '  list(APPEND REUSEPORT_SOURCES m.cc)',
      'else()',
      '  list(APPEND REUSEPORT_SOURCES p.cc)',
      'endif()',
      'if(REUSEPORT_SANITIZE)',
      '  add_compile_options(-fsanitize=address)',
      'endif()',
    ].join('\n');
    expect(cmakeSources(text, 'win')).toEqual(['a.cc', 'w.cc']);
    expect(cmakeSources(text, 'mac')).toEqual(['a.cc', 'm.cc']);
    expect(cmakeSources(text, 'linux')).toEqual(['a.cc', 'p.cc']);
  });

  it.each([
    ['a source list changed under a non-platform option', 'if(FOO)\nlist(APPEND REUSEPORT_SOURCES x.cc)\nendif()'],
    ['a form the reader does not follow', 'set(REUSEPORT_SOURCES\n  a.cc)'],
  ])('refuse CMake they cannot follow: %s', (_name, text) => {
    expect(() => cmakeSources(text, 'linux')).toThrow(/CMakeLists.txt/);
  });

  it('refuse gyp conditions they cannot evaluate', () => {
    const text = `{'targets': [{'target_name': 'reuseport', 'conditions': [['target_arch=="x64"', {}]]}]}`;
    expect(() => gypSources(text, 'linux')).toThrow(/unsupported condition/);
  });
});
