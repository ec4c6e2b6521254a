// What the bench's server scripts share: reporting a failure to the bench over IPC before exiting.
'use strict';

/** Tells the bench why this process failed, lets the message flush, then exits 1. */
function fail(error) {
  try {
    process.send({ type: 'failed', error: { message: error.message, code: error.code } });
  } catch {
    // The bench is gone; nothing left to tell.
  }
  setTimeout(() => process.exit(1), 200).unref();
}

module.exports = { fail };
