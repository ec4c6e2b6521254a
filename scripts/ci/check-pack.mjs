// Checks `npm pack --json` output: the tarball holds exactly what a user needs (package.json,
// README, licence, dist/, native/ sources, the two build files, install.cjs and one prebuild for each
// platform of scripts/prebuild/targets.mjs, no other), nothing else (no tests, bench, examples, scripts,
// lib/ sources, build outputs).
// Usage: node check-pack.mjs <pack.json>
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { prebuildPaths } from '../prebuild/targets.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const [report] = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const files = report.files.map((file) => file.path).sort();

const allowed = [
  /^package\.json$/,
  /^README(\.md)?$/i,
  /^(LICEN[CS]E|COPYING|NOTICE)(\.\w+)?$/i,
  /^binding\.gyp$/,
  /^CMakeLists\.txt$/,
  /^install\.cjs$/,
  // dist/ and its folders by role, two levels at most (lib/ mirrored: cli/, listen/, supervisor/ and
  // its sub-folders supervisor/slots/, supervisor/deploy/, ...).
  /^dist\/([a-z-]+\/){0,2}[^/]+\.(js|mjs|d\.ts|d\.mts|js\.map)$/,
  /^native\/[^/]+\.(cc|h)$/,
];
const nativeSources = fs.readdirSync(path.join(root, 'native')).map((name) => `native/${name}`);
const required = [
  'package.json',
  'README.md',
  'binding.gyp',
  'CMakeLists.txt',
  'install.cjs',
  'dist/index.js',
  'dist/index.mjs',
  'dist/index.d.ts',
  'dist/index.d.mts',
  'dist/register/index.js',
  'dist/register/index.mjs',
  'dist/register/index.d.ts',
  'dist/register/index.d.mts',
  ...nativeSources,
  ...prebuildPaths(),
];

const problems = [];
const shipped = new Set(prebuildPaths());
const unexpected = files.filter((file) => !shipped.has(file) && !allowed.some((pattern) => pattern.test(file)));
if (unexpected.length > 0) problems.push(`unexpected files: ${unexpected.join(', ')}`);
const missing = required.filter((file) => !files.includes(file));
if (missing.length > 0) problems.push(`missing files: ${missing.join(', ')}`);
const bin = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).bin ?? {};
for (const target of Object.values(bin)) {
  if (!files.includes(path.posix.normalize(target))) problems.push(`bin ${target} is not in the tarball`);
}

if (problems.length > 0) {
  console.error(`check-pack: ${report.filename}: ${problems.join('; ')}`);
  process.exit(1);
}
const licence = files.some((file) => /^(LICEN[CS]E|COPYING)/i.test(file)) ? '' : ' (no licence file in the repo)';
console.log(`check-pack: ${report.filename}: ${files.length} files, ${report.size} bytes packed, prebuilds ${[...shipped].join(' ')}${licence}`);
