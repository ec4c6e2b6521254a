// Run with LIBC=musl, what node-gyp-build decides on Alpine (it reads /etc/alpine-release; LIBC is
// its documented override): the tarball's prebuilds are all tagged glibc, so none may load, and the
// library must work without the addon (a musl user compiles at install, or runs this fallback).
'use strict';
const fs = require('node:fs');
const { gatherFacts } = require('reuseport');

if (process.env.LIBC !== 'musl') throw new Error('run with LIBC=musl');

const facts = gatherFacts();
const mapped = fs
  .readFileSync('/proc/self/maps', 'utf8')
  .split('\n')
  .filter((line) => line.endsWith('.node'));
const problems = [];
if (facts.addon) problems.push('the addon was loaded');
if (!facts.addonError) problems.push('no addonError');
if (mapped.length > 0) problems.push(`mapped: ${mapped.join(', ')}`);
if (problems.length > 0) {
  console.error(`musl: ${problems.join('; ')}`);
  process.exit(1);
}
console.log(`musl: no prebuild loaded (${facts.addonError.split('\n')[0]})`);
