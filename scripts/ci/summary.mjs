// Prints one line, "N passed, N failed", from vitest's JSON report of the main `npm test` run.
// A test file that failed without any failed test (it did not load, or threw outside a test)
// counts as one failure, so a broken file can never hide behind "0 failed".
// Usage: node summary.mjs <vitest.json>
import fs from 'node:fs';

const report = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const brokenFiles = (report.testResults ?? []).filter(
  (file) => file.status === 'failed' && !(file.assertionResults ?? []).some((test) => test.status === 'failed'),
).length;
console.log(`${report.numPassedTests} passed, ${report.numFailedTests + brokenFiles} failed`);
