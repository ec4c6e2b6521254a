#!/usr/bin/env bash
# Runs the vitest suite once under a chosen Node and addon build, and proves both were used:
# every Node process the run starts (vitest's forks, fixtures, cluster workers) records its version
# and the addon files it loads (record-process.cjs), and check-processes.mjs checks that log.
#
#   scripts/ci/run-suite.sh [--node <dir holding bin/node>] [--addon-build <dir holding Release/reuseport.node>]
#                           [--sanitize] [-- <vitest args>]
#
# --addon-build points node-gyp-build at another build with its REUSEPORT_PREBUILD override (a temp
# dir whose build/ links to it), so build/Release is never touched (others may be using it).
# --sanitize preloads gcc's ASan runtime (Node is not built with it; the addon is) and fails the run
# if ASan or UBSan wrote any report, even one a test would have swallowed.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

node_dir='' addon_build='' sanitize=0
while [ $# -gt 0 ]; do
  case "$1" in
    --node) node_dir=$2; shift 2 ;;
    --addon-build) addon_build=$2; shift 2 ;;
    --sanitize) sanitize=1; shift ;;
    --) shift; break ;;
    *) echo "run-suite: unknown argument $1" >&2; exit 2 ;;
  esac
done

node_bin=$(command -v node)
if [ -n "$node_dir" ]; then
  node_bin=$node_dir/bin/node
  export PATH="$node_dir/bin:$PATH" # anything that runs `node` by name gets this one too
fi
version=$("$node_bin" --version)
echo "run-suite: $node_bin $version ($(command -v node) on PATH)"
[ "$(node --version)" = "$version" ] || { echo "run-suite: node on PATH is not $version" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/reuseport-suite.XXXXXX")
trap 'rm -rf "$work"' EXIT
# A fixture that drops to an unprivileged user still loads the addon and may write the log.
chmod 755 "$work"
: >"$work/processes.log"
chmod 666 "$work/processes.log"

addon=$root/build/Release/reuseport.node
if [ -n "$addon_build" ]; then
  addon_build=$(cd "$addon_build" && pwd)
  addon=$addon_build/Release/reuseport.node
  ln -s "$addon_build" "$work/build"
  export REUSEPORT_PREBUILD=$work
fi
[ -f "$addon" ] || { echo "run-suite: no addon at $addon" >&2; exit 1; }

export REUSEPORT_CI_PROCESS_LOG=$work/processes.log
export NODE_OPTIONS="--require $root/scripts/ci/record-process.cjs${NODE_OPTIONS:+ $NODE_OPTIONS}"

if [ "$sanitize" = 1 ]; then
  mkdir -m 777 "$work/reports"
  LD_PRELOAD=$(g++ -print-file-name=libasan.so)
  [ -f "$LD_PRELOAD" ] || { echo "run-suite: no libasan.so from g++" >&2; exit 1; }
  export LD_PRELOAD
  # V8 keeps memory until exit on purpose: leak reports would be all V8's, so leaks are off.
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$work/reports/asan"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$work/reports/ubsan"
fi

status=0
"$node_bin" "$root/node_modules/vitest/vitest.mjs" run "$@" || status=$?

if [ "$sanitize" = 1 ] && [ -n "$(ls -A "$work/reports")" ]; then
  echo "run-suite: sanitizer reports:" >&2
  for report in "$work/reports"/*; do echo "--- $report" >&2; head -60 "$report" >&2; done
  status=1
fi
unset LD_PRELOAD NODE_OPTIONS
"$node_bin" "$root/scripts/ci/check-processes.mjs" "$work/processes.log" --node "$version" --addon "$addon" || status=1
exit "$status"
