#!/usr/bin/env node
// The `reuseport` command: `reuseport doctor [--port N] [--udp] [--json]`, `reuseport start <script> [args...]`,
// `reuseport status (--pid-file F | --pid N | --health-port P) [--json]`.
import { Command, InvalidArgumentError } from 'commander';
import { collectDoctorReport, formatDoctorReport } from './doctor';
import { type StartCommandOptions, UsageError, runStart } from './start';
import { type StatusTarget, fetchStatus, formatStatus, readPidFile, withUptimes } from './status';

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) throw new InvalidArgumentError('a port is an integer from 0 to 65535.');
  return port;
}

function parseCount(value: string): number {
  const count = Number(value);
  if (!/^\d+$/.test(value) || count < 1 || count > 4096) throw new InvalidArgumentError('a count is an integer from 1 to 4096.');
  return count;
}

function parseMs(value: string): number {
  const ms = Number(value);
  if (!/^\d+$/.test(value) || ms > 2_147_483_647) throw new InvalidArgumentError('a duration is a whole number of milliseconds.');
  return ms;
}

function parseMode(value: string): StartCommandOptions['mode'] {
  if (!['auto', 'reuseport', 'round-robin', 'shared', 'exclusive'].includes(value)) throw new InvalidArgumentError('one of auto, reuseport, round-robin, shared, exclusive.');
  return value as StartCommandOptions['mode'];
}

const program = new Command('reuseport').description('Serve one TCP port from many Node.js processes.').enablePositionalOptions();
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

program
  .command('start')
  .description('run <script> (an ordinary app, or one that calls listenReusePort) in supervised workers: SIGHUP reloads them, SIGUSR2 upgrades the whole runner, SIGTERM/SIGINT shut down gracefully')
  .argument('<script>', 'the worker script')
  .argument('[args...]', "the script's own arguments (after the script, options are the script's)")
  .passThroughOptions()
  .option('-w, --workers <n>', 'how many workers (default: available parallelism)', parseCount)
  .option('--mode <mode>', 'auto, reuseport, round-robin, shared or exclusive (default auto)', parseMode)
  .option('--cpu-local', 'pin each worker to a CPU and keep connections on the CPU that received them (Linux)')
  .option('--sticky <by>', "'ip': every connection from one client address goes to one worker (Linux; see docs/sticky.md)")
  .option('--health-port <port>', 'serve GET /ready, /live and /metrics on this port', parsePort)
  .option('--health-host <address>', 'the health server\'s address (default 127.0.0.1)')
  .option('--pid-file <file>', "write the runner's pid here (an upgrade's successor rewrites it; removed on exit)")
  .option('--drain-timeout <ms>', 'how long a draining worker may take before its connections are cut (default 10000)', parseMs)
  .option('--min-uptime <ms>', 'a worker that dies sooner after its start is a crash; a reload waits this long on each new worker before its old one drains (default 1000)', parseMs)
  .option('--max-restarts <n>', 'stop restarting a slot after this many crashes in a row, lending its socket to the live workers (default 16)', parseMs)
  .option('--max-draining <n>', 'how many old workers a reload lets drain at once (default: all)', parseCount)
  .option('--shutdown-delay <ms>', 'keep serving this long after SIGTERM, with /ready failing (default 0; 5000 in Kubernetes)', parseMs)
  .option('--json', 'one JSON object per event line')
  .option('--no-register', "don't preload reuseport/register in the workers (the app then calls listenReusePort itself)")
  .action((script: string, args: string[], options: StartCommandOptions) => {
    runStart(script, args, options).catch((error: Error & { code?: string }) => {
      process.stderr.write(`${error instanceof UsageError ? error.message : `reuseport start: ${error.message}${error.code ? ` (${error.code})` : ''}`}\n`);
      process.exit(error instanceof UsageError ? 2 : 1);
    });
  });

function parsePid(value: string): number {
  const pid = Number(value);
  if (!/^\d+$/.test(value) || pid < 1 || pid > 4_194_304) throw new InvalidArgumentError('a pid is a positive integer.');
  return pid;
}

program
  .command('status')
  .description('show a running supervisor: its plan, and every slot with pid, uptime, accepted, queue depth and stalls')
  .option('--pid-file <file>', 'the pid file given to reuseport start')
  .option('--pid <pid>', 'the supervisor\'s pid', parsePid)
  .option('--health-port <port>', 'its health port, instead of a pid', parsePort)
  .option('--health-host <address>', 'its health server\'s address (default 127.0.0.1)')
  .option('--json', 'print the status as JSON')
  .action(async (options: { pidFile?: string; pid?: number; healthPort?: number; healthHost?: string; json?: boolean }) => {
    try {
      const given = [options.pidFile, options.pid, options.healthPort].filter((value) => value !== undefined).length;
      if (given !== 1) throw new UsageError('reuseport status: give one of --pid-file, --pid or --health-port');
      const target: StatusTarget =
        options.healthPort !== undefined
          ? { healthPort: options.healthPort, healthHost: options.healthHost ?? '127.0.0.1' }
          : { pid: options.pid ?? readPidFile(options.pidFile as string) };
      const status = withUptimes(await fetchStatus(target));
      process.stdout.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
    } catch (error) {
      process.stderr.write(`${(error as Error).message}\n`);
      process.exit(error instanceof UsageError ? 2 : 1);
    }
  });

program.parse();
