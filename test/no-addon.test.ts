// Without the addon (no build, no prebuild) the library still serves, says why once, never crashes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { fetchOnce } from './helpers/http';
import { startFixture, stopAll } from './helpers/processes';

afterEach(() => stopAll());

it("listens through Node's reusePort or alone, with a reason and a single warning", async () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-no-addon-'));
  try {
    const child = startFixture('no-addon.js', [], { REUSEPORT_PREBUILD: empty });
    const result = await child.next<{
      info: { mode: string; backend: string; reasons: string[]; address: { port: number } };
      facts: { addon: boolean; nodeReusePort: boolean; addonError: string };
      warnings: { code: string }[];
    }>('result');
    expect(result.facts.addon).toBe(false);
    expect(result.facts.addonError).toMatch(/could not be loaded/);
    if (result.facts.nodeReusePort) {
      expect(result.info).toMatchObject({ mode: 'reuseport', backend: 'node' });
    } else {
      expect(result.info).toMatchObject({ mode: 'exclusive', backend: 'node' });
    }
    expect(result.info.reasons.join(' ')).toMatch(/could not be loaded/);
    expect(result.warnings.filter((w) => w.code === 'REUSEPORT_NO_ADDON')).toHaveLength(1);
    expect(await fetchOnce(result.info.address.port)).toBe('served without the addon');
  } finally {
    fs.rmSync(empty, { recursive: true, force: true });
  }
});

it('says nothing when the package is only imported: the warning waits for the first call', async () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-no-addon-'));
  try {
    const child = startFixture('no-addon.js', ['import-only'], { REUSEPORT_PREBUILD: empty });
    const result = await child.next<{ warnings: { code: string }[] }>('result');
    expect(result.warnings.filter((w) => w.code === 'REUSEPORT_NO_ADDON')).toEqual([]);
  } finally {
    fs.rmSync(empty, { recursive: true, force: true });
  }
});
