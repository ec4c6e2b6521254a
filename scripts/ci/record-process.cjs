// Preloaded into every Node process of a CI run (NODE_OPTIONS=--require): appends one line per
// process ("node <version> <pid>") and one per native addon it loads ("addon <pid> <path>") to
// $REUSEPORT_CI_PROCESS_LOG, so check-processes.mjs can prove which Node and which addon build the
// tests really ran on (vitest forks, fixtures and cluster workers included). Never prints, never throws.
'use strict';
const fs = require('node:fs');

const log = process.env.REUSEPORT_CI_PROCESS_LOG;
if (log) {
  const append = (line) => {
    try {
      fs.appendFileSync(log, `${line}\n`);
    } catch {
      // A fixture that dropped privileges may not write here; the other processes still count.
    }
  };
  append(`node ${process.version} ${process.pid}`);
  const dlopen = process.dlopen;
  process.dlopen = function recordDlopen(module, filename, ...rest) {
    append(`addon ${process.pid} ${filename}`);
    return dlopen.call(this, module, filename, ...rest);
  };
}
