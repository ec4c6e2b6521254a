#!/usr/bin/env bash
# The vitest --exclude flags for the suite's repeat runs in CI (the cmake-js build, the sanitizer
# build, Node 22/24/26): files that `npm test` has already run and whose outcome depends on neither
# the addon's build nor Node's version, and that take long: the benchmark harness (bench.test.ts,
# also slow under ASan), the sticky program's tables in the project's own BPF interpreter
# (sticky.test.ts: pure), and socket.io over the sticky program (socketio.test.ts: socket.io's
# own code over the same kernel program that sticky-supervisor.test.ts checks on every run).
printf -- '--exclude %s ' test/bench.test.ts test/sticky.test.ts test/socketio.test.ts
