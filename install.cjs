// The package's install step (npm runs it): node-gyp-build, which takes a matching prebuild or
// compiles the addon; on Windows nothing, as Windows has no SO_REUSEPORT and an addon there could
// only refuse. Never fails the install: without the addon the package runs its JavaScript path.
// One node program rather than a shell chain, so that it means the same under sh and cmd.exe.
'use strict';
const { spawnSync } = require('node:child_process');

if (process.platform === 'win32') {
  console.log(
    'reuseport: Windows has no SO_REUSEPORT, so there is no native addon to build; ' +
      "the package runs its JavaScript path (Node's listen, node:cluster's shared handle; npx reuseport doctor)",
  );
} else {
  const built = spawnSync(process.execPath, [require.resolve('node-gyp-build/bin.js')], { stdio: 'inherit' });
  if (built.status !== 0) {
    console.warn(
      "reuseport: the native addon was not built; listenReusePort will use Node's own reusePort or a cluster mode " + '(npx reuseport doctor says which)',
    );
  }
}
