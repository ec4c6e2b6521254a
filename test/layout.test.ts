// The shape of lib/: a folder per role, imports one way from the top (the entry, the CLI) to the
// bottom (errors, the addon loader, the libuv handle helper, shared types), never back up. Inside
// lib/supervisor/ the same again: a folder per concern under the composition root (start-cluster.ts).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const lib = path.join(__dirname, '..', 'lib');
// Top to bottom; a file may import from its own layer or any layer below it.
const layers = ['index', 'register', 'cli', 'supervisor', 'listen', 'worker', 'cluster', 'ports', 'plan', 'bottom'];
// lib/supervisor/'s own layers, top to bottom; 'root' is the files directly in it (start-cluster.ts).
const supervisor = path.join(lib, 'supervisor');
const supervisorLayers = ['root', 'deploy', 'liveness', 'fleet', 'slots', 'core'];

/** A file's layer: its top folder under lib/ (so all of lib/supervisor/** is 'supervisor'). */
function layerOf(file: string): string {
  const relative = path.relative(lib, file);
  const [folder, ...rest] = relative.split(path.sep);
  if (rest.length > 0) return folder;
  return relative === 'index.ts' ? 'index' : 'bottom';
}

/** A supervisor file's layer inside lib/supervisor/: its folder there, or 'root'. */
function supervisorLayerOf(file: string): string {
  const [folder, ...rest] = path.relative(supervisor, file).split(path.sep);
  return rest.length > 0 ? folder : 'root';
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sources(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

interface Import {
  from: string;
  to: string;
  fromLayer: string;
  toLayer: string;
}

/** Every relative import of the sources under dir, with both ends' layers. */
function importsOf(dir: string, layer: (file: string) => string): Import[] {
  return sources(dir).flatMap((file) =>
    [...fs.readFileSync(file, 'utf8').matchAll(/from '(\.[^']+)'/g)].map((match) => {
      const target = path.resolve(path.dirname(file), `${match[1]}.ts`);
      return { from: path.relative(lib, file), to: path.relative(lib, target), fromLayer: layer(file), toLayer: layer(target) };
    }),
  );
}

/** The loops that imports make between distinct layers, each as its layers in order ([] if none). */
function cycles(imports: Import[]): string[][] {
  const next = new Map<string, Set<string>>();
  for (const { fromLayer, toLayer } of imports) {
    if (fromLayer !== toLayer) next.set(fromLayer, (next.get(fromLayer) ?? new Set<string>()).add(toLayer));
  }
  const found: string[][] = [];
  const done = new Set<string>();
  const visit = (layer: string, trail: string[]): void => {
    const at = trail.indexOf(layer);
    if (at >= 0) {
      found.push([...trail.slice(at), layer]);
      return;
    }
    if (done.has(layer)) return;
    for (const target of next.get(layer) ?? []) visit(target, [...trail, layer]);
    done.add(layer);
  };
  for (const layer of next.keys()) visit(layer, []);
  return found;
}

/** The checks of one level: `order` top to bottom, `folders` those of its layers that are folders of dir. */
function checkLayers(dir: string, order: string[], folders: string[], layer: (file: string) => string, imports: Import[], atLeast: number): void {
  it('has every source in a known layer, and every folder a README saying what it holds', () => {
    for (const file of sources(dir)) expect(order, path.relative(lib, file)).toContain(layer(file));
    for (const folder of folders) {
      expect(
        fs
          .readFileSync(path.join(dir, folder, 'README.md'), 'utf8')
          .trim()
          .split('\n').length,
      ).toBeGreaterThanOrEqual(1);
    }
    expect(imports.length).toBeGreaterThan(atLeast);
  });

  it('imports only sideways or down', () => {
    const upward = imports.filter(({ fromLayer, toLayer }) => order.indexOf(toLayer) < order.indexOf(fromLayer));
    expect(upward).toEqual([]);
  });

  it('has no import cycle between layers', () => {
    expect(cycles(imports)).toEqual([]);
  });
}

const imports = importsOf(lib, layerOf);

describe('lib/ file sizes', () => {
  // A file a newcomer can read in one sitting: split a part out rather than grow one past this.
  it('has no source over 350 lines', () => {
    const long = sources(lib)
      .map((file) => ({ file: path.relative(lib, file), lines: fs.readFileSync(file, 'utf8').split('\n').length - 1 }))
      .filter(({ lines }) => lines > 350);
    expect(long).toEqual([]);
  });
});

describe('lib/ layout', () => {
  checkLayers(
    lib,
    layers,
    layers.filter((name) => name !== 'index' && name !== 'bottom'),
    layerOf,
    imports,
    50,
  );

  it('names files that exist', () => {
    const missing = imports.filter(({ to }) => !fs.existsSync(path.join(lib, to)));
    expect(missing).toEqual([]);
  });
});

describe('lib/supervisor/ layout', () => {
  // Only the imports from one supervisor file to another; those to and from the rest of lib/ are checked above.
  const inside = importsOf(supervisor, supervisorLayerOf).filter(({ to }) => layerOf(path.join(lib, to)) === 'supervisor');
  checkLayers(
    supervisor,
    supervisorLayers,
    supervisorLayers.filter((name) => name !== 'root'),
    supervisorLayerOf,
    inside,
    30,
  );
});
