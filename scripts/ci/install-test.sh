#!/usr/bin/env bash
# Installs the package as a user would: every prebuild (npm run prebuild:all, which leaves
# build/Release alone), pack, then `npm install <tarball>` in a new project outside the repo with no
# compiler, make or python on PATH, so the linux-x64 prebuild must be used.
# Then a require() user and an import user each listen and serve one HTTP request on 127.0.0.1,
# and tsc type-checks a .mts and a .cts consumer against the installed types.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

work=$(mktemp -d "${TMPDIR:-/tmp}/reuseport-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "install-test: npm run prebuild:all"
npm run prebuild:all --silent

echo "install-test: npm pack"
npm pack --json --pack-destination "$work" >"$work/pack.json"
node scripts/ci/check-pack.mjs "$work/pack.json"
tarball=$work/$(node -p "require('$work/pack.json')[0].filename")

echo "install-test: npm install the tarball, no compiler on PATH"
project=$work/project
mkdir -p "$project/bin"
for tool in node npm npx sh; do ln -s "$(command -v "$tool")" "$project/bin/$tool"; done
for tool in g++ c++ gcc cc make python3; do
  PATH=$project/bin command -v "$tool" >/dev/null && { echo "install-test: $tool still on PATH" >&2; exit 1; }
done
cp scripts/ci/consumer/* "$project/"
(
  cd "$project"
  echo '{ "name": "reuseport-install-test", "private": true, "version": "1.0.0" }' >package.json
  PATH=$project/bin npm_config_build_from_source=false \
    npm install --no-audit --no-fund --loglevel=error "$tarball"
)
installed=$project/node_modules/reuseport
[ ! -e "$installed/build" ] || { echo "install-test: a build/ dir appeared: something compiled" >&2; exit 1; }
# Exactly the shipped prebuilds arrived (check-pack checked the tarball's list; this is the install).
expected=$(node --input-type=module -e "import { prebuildPaths } from '$root/scripts/prebuild/targets.mjs'; console.log(prebuildPaths().sort().join(' '))")
found=$(cd "$installed" && find prebuilds -type f | sort | paste -sd' ')
[ "$found" = "$expected" ] || { echo "install-test: installed prebuilds \"$found\", expected \"$expected\"" >&2; exit 1; }
echo "install-test: installed $found"

echo "install-test: consumers"
limit=$(command -v timeout)
(
  cd "$project"
  PATH=$project/bin "$limit" 30 node require.cjs
  PATH=$project/bin "$limit" 30 node import.mjs
  PATH=$project/bin "$limit" 30 node --require reuseport/register hooked.cjs
  PATH=$project/bin "$limit" 30 node --import reuseport/register hooked.cjs
  PATH=$project/bin NODE_OPTIONS=--require=reuseport/register "$limit" 30 node hooked.cjs
  PATH=$project/bin LIBC=musl "$limit" 30 node musl.cjs
)

echo "install-test: tsc on consumer.mts and consumer.cts"
cat >"$project/tsconfig.json" <<JSON
{
  "compilerOptions": {
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "target": "es2022",
    "strict": true,
    "noEmit": true,
    "skipLibCheck": false,
    "types": ["node"],
    "typeRoots": ["$root/node_modules/@types"]
  },
  "files": ["consumer.mts", "consumer.cts"]
}
JSON
node "$root/node_modules/typescript/bin/tsc" -p "$project/tsconfig.json"
echo "install-test: passed"
