// The shape of lib/: a folder per role, imports one way from the top (the entry, the CLI) to the
// bottom (errors, the addon loader, the libuv handle helper, shared types), never back up.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const lib = path.join(__dirname, '..', 'lib');
// Top to bottom; a file may import from its own layer or any layer below it.
const layers = ['index', 'cli', 'supervisor', 'listen', 'worker', 'cluster', 'ports', 'plan', 'bottom'];

/** A file's layer: its top folder under lib/ (so all of lib/supervisor/** is 'supervisor'). */
function layerOf(file: string): string {
  const relative = path.relative(lib, file);
  const [folder, ...rest] = relative.split(path.sep);
  if (rest.length > 0) return folder;
  return relative === 'index.ts' ? 'index' : 'bottom';
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sources(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

const imports = sources(lib).flatMap((file) =>
  [...fs.readFileSync(file, 'utf8').matchAll(/from '(\.[^']+)'/g)].map((match) => {
    const target = path.resolve(path.dirname(file), `${match[1]}.ts`);
    return { from: path.relative(lib, file), to: path.relative(lib, target), fromLayer: layerOf(file), toLayer: layerOf(target) };
  }),
);

describe('lib/ layout', () => {
  it('has every source in a known layer, and every folder a README saying what it holds', () => {
    for (const file of sources(lib)) expect(layers, path.relative(lib, file)).toContain(layerOf(file));
    for (const layer of layers.filter((name) => name !== 'index' && name !== 'bottom')) {
      expect(fs.readFileSync(path.join(lib, layer, 'README.md'), 'utf8').trim().split('\n').length).toBeGreaterThanOrEqual(1);
    }
    expect(imports.length).toBeGreaterThan(50);
  });

  it('imports only sideways or down', () => {
    const upward = imports.filter(({ fromLayer, toLayer }) => layers.indexOf(toLayer) < layers.indexOf(fromLayer));
    expect(upward).toEqual([]);
  });

  it('names files that exist', () => {
    const missing = imports.filter(({ to }) => !fs.existsSync(path.join(lib, to)));
    expect(missing).toEqual([]);
  });
});
