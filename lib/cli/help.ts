// The text `reuseport --help` ends with: the PM2-style usage, the exit codes, and PM2's commands
// with their reuseport equivalents (the README's runner section shows the same table).

/** PM2's command -> reuseport's. */
export const PM2_EQUIVALENTS: [string, string][] = [
  ['pm2 start app.js -i max', 'reuseport start app.js -i max'],
  ['pm2 start app.js -i 4 -- --port 3000', 'reuseport start app.js -i 4 -- --port 3000'],
  ['pm2 start app.js -i -1', 'reuseport start app.js -i -1'],
  ['pm2 reload app', 'reuseport reload --pid-file app.pid'],
  ['pm2 stop app', 'reuseport stop --pid-file app.pid'],
  ['pm2 update / pm2 reload after npm i -g', 'reuseport upgrade --pid-file app.pid'],
  ['pm2 status / pm2 show app', 'reuseport status --pid-file app.pid'],
  ['pm2 logs app', "the runner's own stdout: [slot pid] prefixed on a terminal, raw otherwise, --json objects"],
  ['pm2 start app.ts --node-args="--import tsx"', 'reuseport start app.ts --node-args "--import tsx"'],
  ['pm2 start app.js --max-memory-restart 200M', 'reuseport start app.js --max-memory-restart 200M (new worker first)'],
  ['pm2 start app.js -i 4 --instance-var ID', 'reuseport start app.js -i 4 --instance-var ID'],
  ['pm2 --version', 'reuseport --version'],
];

function table(rows: [string, string][]): string {
  const width = Math.max('PM2 command'.length, ...rows.map(([pm2]) => pm2.length));
  return [['PM2 command', 'reuseport command'] as [string, string], ...rows].map(([pm2, ours]) => `  ${pm2.padEnd(width)}  ${ours}`).join('\n');
}

export const HELP_AFTER = `
Usage as with PM2: runner options anywhere before \`--\`, the script's own arguments after it:
  reuseport start app.js -i max --pid-file app.pid -- --port 3000
  reuseport reload --pid-file app.pid      (SIGHUP; waits for the new workers)
  reuseport upgrade --pid-file app.pid     (SIGUSR2; waits for the successor)
  reuseport stop --pid-file app.pid        (SIGTERM; waits for the exit)

Exit codes: 0 done; 1 it failed (a reload, an upgrade, a start, a drain that cut connections);
2 a usage error (an unknown option, a bad value, a missing script or target).

${table(PM2_EQUIVALENTS)}
`;
