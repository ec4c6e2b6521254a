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

// The machine a shared library is built for: ELF's e_machine, or PE/COFF's Machine (a Windows DLL).
function binaryMachine(file) {
  const data = fs.readFileSync(file);
  if (data.length >= 20 && data.toString('latin1', 0, 4) === '\x7fELF') return { format: 'ELF', machine: data.readUInt16LE(18) };
  if (data.length >= 0x40 && data.toString('latin1', 0, 2) === 'MZ') {
    const pe = data.readUInt32LE(0x3c);
    if (data.length >= pe + 6 && data.toString('latin1', pe, pe + 4) === 'PE\0\0') return { format: 'PE', machine: data.readUInt16LE(pe + 4) };
  }
  return { format: 'unknown', machine: undefined };
}

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
  const { format, machine } = binaryMachine(file);
  if (machine !== target.machine) {
    console.error(`prebuild:all: ${file} is not a binary of machine ${target.machine} (${format}, machine ${machine})`);
    process.exit(1);
  }
  console.log(`prebuild:all: ${target.name}: ${path.relative(root, file)}, ${fs.statSync(file).size} bytes, ${Math.round(performance.now() - started)} ms`);
}
