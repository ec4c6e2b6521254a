#!/usr/bin/env node
// The `reuseport` command: `reuseport doctor [--port N] [--json]`.
import { Command, InvalidArgumentError } from 'commander';
import { collectDoctorReport, formatDoctorReport } from './doctor';

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) throw new InvalidArgumentError('a port is an integer from 0 to 65535.');
  return port;
}

const program = new Command('reuseport').description('Serve one TCP port from many Node.js processes.');
program
  .command('doctor')
  .description('show what this system can do, the mode listenReusePort would pick and why, and who holds a port')
  .option('-p, --port <port>', 'also show which processes listen on this port, and whether we could share it', parsePort)
  .option('--json', 'print the report as JSON')
  .action((options: { port?: number; json?: boolean }) => {
    const report = collectDoctorReport({ port: options.port });
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatDoctorReport(report));
  });

program.parse();
