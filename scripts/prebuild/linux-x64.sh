#!/usr/bin/env bash
# The linux-x64 prebuild, with the machine's g++ (glibc).
set -euo pipefail
exec "$(dirname "$0")/build.sh" x64
