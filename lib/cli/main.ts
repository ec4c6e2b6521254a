#!/usr/bin/env node
// The `reuseport` command: `reuseport start [options] <script> [-- args...]` (PM2-style: options
// anywhere before `--`), `reuseport reload|stop|upgrade|status (--pid-file F | --pid N)`,
// `reuseport doctor [--port N] [--udp] [--json]`. Every usage error exits 2.
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import {
  COMMAND_SYNTAX,
  USAGE_EXIT,
  commandSyntaxFor,
  parseCount,
  parseEnvName,
  parseMemorySize,
  parseMode,
  parseNodeArgs,
  parseMs,
  parsePid,
  parsePort,
  parseRestarts,
  parseWorkers,
  unknownStartOption,
} from './args';
import { type ControlAction, type ControlOptions, runControl } from './control';
import { collectDoctorReport, formatDoctorReport } from './doctor';
import { HELP_AFTER } from './help';
import { EXIT_FLUSH_MS, runnerStdout } from './output';
import { type StartCommandOptions, UsageError, runStart, startFailure } from './start';
import { type StatusTarget, fetchStatus, formatStatus, readPidFile, withUptimes } from './status';
import { firstUnknownOption } from './unknown-option';

function packageVersion(): string {
  // dist/cli/main.js and lib/cli/main.ts both sit two folders below package.json.
  return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
}

const program = new Command('reuseport')
  .description('Serve one TCP port from many Node.js processes.')
  .version(packageVersion(), '-v, --version', "print reuseport's version")
  .enablePositionalOptions()
  // One exit code for every usage error, whichever layer finds it (commander's are 1 by default).
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : USAGE_EXIT))
  .addHelpText('after', HELP_AFTER);

program
  .command('doctor')
  .description('show what this system can do, the mode listenReusePort would pick and why, and who holds a port')
  .option('-p, --port <port>', 'also show which processes listen on this port, and whether we could share it', parsePort)
  .option('--udp', "bindReusePort's UDP plans, and with --port the UDP sockets bound to the port instead of TCP listeners")
  .option('--json', 'print the report as JSON')
  .action((options: { port?: number; udp?: boolean; json?: boolean }) => {
    const report = collectDoctorReport({ port: options.port, udp: options.udp });
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatDoctorReport(report));
  });

// An upgrade's successor reruns its predecessor's command line, in the syntax the hand-over names.
const syntax = commandSyntaxFor(process.env);
const start = program
  .command('start')
  .usage('[options] <script> [-- script args...]')
  .description(
    "run <script> (an ordinary app, or one that calls listenReusePort) in supervised workers: SIGHUP reloads them, SIGUSR2 upgrades the whole runner, SIGTERM/SIGINT shut down gracefully. Options go anywhere before `--`; the script's own arguments after it",
  )
  .argument('<script>', 'the worker script')
  .argument('[args...]', "the script's own arguments (after `--`)")
  .option('-i, --instances <n>', 'how many workers: N, max (every CPU), or -N (every CPU but N) (default: max)', (value) => parseWorkers(value))
  .option('-w, --workers <n>', 'the same as --instances', (value) => parseWorkers(value))
  .option('--mode <mode>', 'auto, reuseport, round-robin, shared or exclusive (default auto)', parseMode)
  .option('--cpu-local', 'pin each worker to a CPU and keep connections on the CPU that received them (Linux)')
  .option('--sticky <by>', "'ip': every connection from one client address goes to one worker (Linux; see docs/sticky.md)")
  .option('--health-port <port>', 'serve GET /ready, /live and /metrics on this port', parsePort)
  .option('--health-host <address>', "the health server's address (default 127.0.0.1)")
  .option('--pid-file <file>', "write the runner's pid here (an upgrade's successor rewrites it; removed on exit)")
  .option('--drain-timeout <ms>', 'how long a draining worker may take before its connections are cut (default 10000)', parseMs)
  .option(
    '--min-uptime <ms>',
    'a worker that dies sooner after its start is a crash; a reload waits this long on the canary, then on each wave of new workers, before their old ones drain (default 1000)',
    parseMs,
  )
  .option('--max-restarts <n>', 'stop restarting a slot after this many crashes in a row, lending its socket to the live workers (default 16)', parseRestarts)
  .option(
    '--max-draining <n>',
    'how many extra processes a reload keeps alive at once (new workers of a wave plus old ones draining; 1: one slot at a time; default: all)',
    parseCount,
  )
  .option('--shutdown-delay <ms>', 'keep serving this long after SIGTERM, with /ready failing (default 0; 5000 in Kubernetes)', parseMs)
  .option('--node-args <flags>', 'Node flags for every worker, as PM2\'s: "--import tsx", "--max-old-space-size=512 --enable-source-maps"', parseNodeArgs)
  .option(
    '--max-memory-restart <size>',
    "replace a worker whose RSS is over this (PM2's syntax: 200M, 1G) the way a reload does: the new one first, the old one drains",
    parseMemorySize,
  )
  .option('--subreaper', 'reap orphaned processes of the workers, as an init does (Linux; always on as PID 1)')
  .option('--instance-var <name>', "the variable that tells each worker its slot, 0..N-1, as PM2's instance_var (default NODE_APP_INSTANCE)", parseEnvName)
  .option('--json', 'one JSON object per event line (and per line of worker output)')
  .option('--prefix-output', 'prefix each line the workers write with [slot pid] (the default when stdout is a terminal)')
  .option('--no-prefix-output', "pass the workers' output through untouched (the default when stdout is not a terminal)")
  .option('--no-balance', "don't even out keep-alive connections over the workers (see docs/balance.md)")
  .option('--no-register', "don't preload reuseport/register in the workers (the app then calls listenReusePort itself)")
  .action((script: string, args: string[], options: StartCommandOptions & { instances?: number }) => {
    const { instances, ...rest } = options;
    if (instances !== undefined && rest.workers !== undefined && instances !== rest.workers) {
      process.stderr.write(`reuseport start: --instances ${instances} and --workers ${rest.workers} disagree: give one\n`);
      process.exit(USAGE_EXIT);
    }
    const workers = instances ?? rest.workers;
    runStart(script, args, { ...rest, ...(workers === undefined ? {} : { workers }), syntax }).catch(async (error: Error & { code?: string }) => {
      process.stderr.write(`${error instanceof UsageError ? error.message : startFailure(error)}\n`);
      // The workers' relayed lines first: a write still on the thread pool would be lost.
      await runnerStdout().whenIdle(EXIT_FLUSH_MS);
      process.exit(error instanceof UsageError ? USAGE_EXIT : 1);
    });
  });
if (syntax === COMMAND_SYNTAX) {
  // commander's own message would not say where the script's arguments go: find the option it would
  // call unknown before it parses the line (its own check stays behind this one).
  const [command, ...args] = process.argv.slice(2);
  const flag = command === start.name() ? firstUnknownOption(args, start.options) : undefined;
  if (flag !== undefined) start.error(unknownStartOption(flag), { code: 'commander.unknownOption', exitCode: USAGE_EXIT });
} else {
  // 0.1's syntax: options before the script; everything after it is the script's.
  start.passThroughOptions();
}

interface TargetOptions {
  pidFile?: string;
  pid?: number;
  healthPort?: number;
  healthHost?: string;
  json?: boolean;
}

const targetOf = (command: string, options: TargetOptions, healthPort: boolean): StatusTarget => {
  const given = [options.pidFile, options.pid, ...(healthPort ? [options.healthPort] : [])].filter((value) => value !== undefined).length;
  if (given !== 1) throw new UsageError(`reuseport ${command}: give one of --pid-file, --pid${healthPort ? ' or --health-port' : ''}`);
  return options.healthPort !== undefined
    ? { healthPort: options.healthPort, healthHost: options.healthHost ?? '127.0.0.1' }
    : { pid: options.pid ?? readPidFile(options.pidFile as string, command) };
};

const fail = (error: unknown) => {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(error instanceof UsageError ? USAGE_EXIT : 1);
};

program
  .command('status')
  .description('show a running supervisor: its plan, and every slot with pid, uptime, accepted, queue depth and stalls')
  .option('--pid-file <file>', 'the pid file given to reuseport start')
  .option('--pid <pid>', "the supervisor's pid", parsePid)
  .option('--health-port <port>', 'its health port, instead of a pid', parsePort)
  .option('--health-host <address>', "its health server's address (default 127.0.0.1)")
  .option('--json', 'print the status as JSON')
  .action(async (options: TargetOptions) => {
    try {
      const status = withUptimes(await fetchStatus(targetOf('status', options, true)));
      process.stdout.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
    } catch (error) {
      fail(error);
    }
  });

const controls: [ControlAction, string][] = [
  ['reload', 'reload the workers (SIGHUP) and wait for the outcome: exits 0 once every slot runs a new worker, 1 if the reload failed'],
  ['stop', "stop gracefully (SIGTERM) and wait until the runner has exited: exits with the runner's own status (1 when its drain cut connections)"],
  ['upgrade', 'upgrade the whole runner in place (SIGUSR2) and wait: exits 0 once the successor serves and the old runner has exited, 1 if the upgrade failed'],
];
for (const [action, description] of controls) {
  program
    .command(action)
    .description(description)
    .option('--pid-file <file>', 'the pid file given to reuseport start')
    .option('--pid <pid>', "the runner's pid", parsePid)
    .option('--timeout <ms>', 'how long to wait for the outcome (default 120000)', parseMs)
    .option('--json', 'print the outcome as one JSON object')
    .action(async (options: TargetOptions & { timeout?: number }) => {
      try {
        const target = targetOf(action, options, false) as { pid: number };
        const control: ControlOptions = { pid: target.pid, timeoutMs: options.timeout ?? 120_000, json: options.json === true };
        process.exitCode = await runControl(action, control);
      } catch (error) {
        fail(error);
      }
    });
}

program.parse();
