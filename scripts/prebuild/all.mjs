#!/usr/bin/env node
// npm run prebuild:all: every prebuild the release tarball ships (targets.mjs), each by its
// script, then a check that each file is there and is an ELF binary of its machine. A release is
// then `npm pack` (docs/packaging.md). Not a prepack step: npm runs prepack for git installs,
// where the cross compilers are missing. `node all.mjs linux-x64` builds only the ones named.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TARGETS } from './targets.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..', '..');
const named = process.argv.slice(2);
const unknown = named.filter((name) => !TARGETS.some((target) => target.name === name));
if (unknown.length > 0) {
  console.error(`prebuild:all: no target ${unknown.join(', ')} (targets: ${TARGETS.map((t) => t.name).join(', ')})`);
  process.exit(1);
}
for (const target of TARGETS) {
  if (named.length > 0 && !named.includes(target.name)) continue;
  const started = performance.now();
  console.log(`prebuild:all: ${target.name}`);
  execFileSync(path.join(here, target.script), { stdio: 'inherit' });
  const file = path.join(root, 'prebuilds', target.name, target.file);
  const header = Buffer.alloc(20);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, header, 0, 20, 0);
  fs.closeSync(fd);
  const machine = header.readUInt16LE(18);
  if (header.toString('latin1', 1, 4) !== 'ELF' || machine !== target.machine) {
    console.error(`prebuild:all: ${file} is not an ELF binary of machine ${target.machine} (e_machine ${machine})`);
    process.exit(1);
  }
  console.log(`prebuild:all: ${target.name}: ${path.relative(root, file)}, ${fs.statSync(file).size} bytes, ${Math.round(performance.now() - started)} ms`);
}
