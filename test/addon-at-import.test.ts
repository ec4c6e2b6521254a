// The addon is loaded when the package is imported: losing the file afterwards (dropped privileges,
// a private checkout, a moved build) leaves the process with the addon it had.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { fetchOnce } from './helpers/http';
import { startFixture, stopAll } from './helpers/processes';

afterEach(() => stopAll());

it.each([
  ['require', 'dist/index.js'],
  ['import', 'dist/index.mjs'],
])('through %s (%s): loaded at import, kept after the file is out of reach', async (how) => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-after-import-'));
  try {
    const child = startFixture('addon-after-import.js', [how, empty]);
    const result = await child.next<{
      uid: number;
      loadedAtImport: string[];
      facts: { addon: boolean; addonError?: string };
      info: { mode: string; backend: string; address: { port: number } };
      warnings: { code: string }[];
      error?: unknown;
    }>('result');
    expect(result.error).toBeUndefined();
    // As root the fixture ran on as nobody; either way node-gyp-build could no longer find the file.
    if (process.getuid?.() === 0) expect(result.uid).toBe(65534);
    expect(result.loadedAtImport).toHaveLength(1);
    expect(result.facts).toMatchObject({ addon: true });
    expect(result.info).toMatchObject({ mode: 'reuseport', backend: 'addon' });
    expect(result.warnings.filter((w) => w.code === 'REUSEPORT_NO_ADDON')).toEqual([]);
    expect(await fetchOnce(result.info.address.port)).toBe('kept the addon');
  } finally {
    fs.rmSync(empty, { recursive: true, force: true });
  }
});
