#!/usr/bin/env bash
# Compiles (syntax and warnings only; nothing is linked) the sources binding.gyp builds on Windows,
# with MinGW-w64 (Debian: g++-mingw-w64-x86-64). The -posix variant is used because the default
# win32 thread model has no std::mutex, which napi.h needs.
set -euo pipefail
cd "$(dirname "$0")/../.."

cxx=${MINGW_CXX:-$(command -v x86_64-w64-mingw32-g++-posix || command -v x86_64-w64-mingw32-g++)}
headers=$(node -p "require('node-api-headers').include_dir")
mapfile -t sources < <(node scripts/ci/build-sources.mjs gyp win)
echo "windows-syntax: $cxx on ${sources[*]}"
"$cxx" -fsyntax-only -std=c++17 -Wall -Wextra -Werror \
  -I node_modules/node-addon-api -I "$headers" \
  -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_DEPRECATED -DNODE_ADDON_API_DISABLE_CPP_EXCEPTIONS \
  "${sources[@]}"
echo "windows-syntax: clean"
