// Runs in each test worker before its test file (vitest `setupFiles`): the file gets a temporary
// directory of its own, so files running side by side share nothing through the machine's /tmp.
// Every process the file starts inherits it (TMPDIR), and with it the per-user port registry that
// lib/ports/ownership.ts keeps at <tmp>/reuseport-<uid> (or under XDG_RUNTIME_DIR, when set).
//
// The directory is made like /tmp itself (mode 1777): a fixture that drops from root to nobody must
// still make its own registry directory there, as it does in /tmp. XDG_RUNTIME_DIR is the user's own
// (mode 0700, never enterable by the nobody a root run drops to), so for root it is unset and the
// registry follows TMPDIR; for anyone else it points at a private directory inside this file's one.
// Should the registry's location ever take an override of its own, set it here as well.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

// The machine's temporary directory before this file changes it (a short path: unix socket names
// made under it must stay under 108 bytes).
const base = os.tmpdir();
const own = fs.mkdtempSync(path.join(base, 'rp-test-'));
fs.chmodSync(own, 0o1777);
process.env.TMPDIR = own;
if (process.getuid?.() === 0) {
  delete process.env.XDG_RUNTIME_DIR;
} else {
  const runtime = path.join(own, 'run');
  fs.mkdirSync(runtime, { mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = runtime;
}

afterAll(() => {
  // A process a test left running may still write here; what it leaves is removed with the rest.
  fs.rmSync(own, { recursive: true, force: true, maxRetries: 3 });
});
