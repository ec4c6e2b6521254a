#!/usr/bin/env bash
# build.sh <arch>: prebuildify for linux-<arch> in a staging copy of the sources (binding.gyp,
# native/, package.json, node_modules linked), so the checkout's build/Release is never rebuilt
# nor removed (prebuildify runs `node-gyp rebuild` in its cwd and moves the binary out). The
# result goes to <repo>/prebuilds/linux-<arch>/reuseport.glibc.node. A cross build passes CC, CXX,
# LINK, AR, PREBUILD_STRIP_BIN and npm_config_nodedir (the target Node's headers) in the
# environment; without npm_config_nodedir, the running Node's own headers (<prefix>/include/node)
# are used, so node-gyp downloads nothing.
set -euo pipefail
arch=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
stage=$(mktemp -d "${TMPDIR:-/tmp}/reuseport-prebuild.XXXXXX")
trap 'rm -rf "$stage"' EXIT
cp -r "$root/binding.gyp" "$root/package.json" "$root/native" "$stage/"
ln -s "$root/node_modules" "$stage/node_modules"
if [ -z "${npm_config_nodedir:-}" ]; then
  npm_config_nodedir=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  export npm_config_nodedir
fi
[ -f "$npm_config_nodedir/include/node/node_api.h" ] || { echo "prebuild: no Node headers in $npm_config_nodedir/include/node" >&2; exit 1; }
# The headers' version: with --napi the binary is version-independent, the target only names them.
version=$(sed -n 's/^#define NODE_\(MAJOR\|MINOR\|PATCH\)_VERSION \([0-9]*\)$/\2/p' "$npm_config_nodedir/include/node/node_version.h" | paste -sd.)
rm -rf "$root/prebuilds/linux-$arch"
"$root/node_modules/.bin/prebuildify" --napi --strip --tag-libc --arch "$arch" --platform linux --target "node@$version" \
  --cwd "$stage" --out "$root" >"$stage/prebuildify.log" 2>&1 || { cat "$stage/prebuildify.log" >&2; exit 1; }
ls -l "$root/prebuilds/linux-$arch/"
