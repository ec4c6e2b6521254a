// Balance behind real proxies (Debian's nginx and haproxy packages): nginx with an upstream keep-alive
// pool of 4 (HTTP/1.1 upstream) and HAProxy with `http-reuse always`, in front of 2 supervised
// workers; a client keeps 4 requests in flight through the proxy. The proxy's 4 upstream connections
// that landed unevenly end 2/2, with no failed request at the client and (nginx, which retries an
// idempotent request that failed upstream) no upstream error in the proxy's log.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { proxyConfig } from '../../bench/proxies.mjs';
import { type Front, runUntilEven, unevenFront } from '../helpers/keepalive-pool';
import { startFixture, stopAll } from '../helpers/processes';
import { freePort } from '../helpers/ports';

const HOST = '127.0.0.1';

function which(name: string): string | undefined {
  return spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim() || undefined;
}

async function listens(port: number, boundMs = 10_000): Promise<void> {
  const deadline = performance.now() + boundMs;
  while (performance.now() < deadline) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, HOST);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing listened on ${port} within ${boundMs} ms`);
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await stopAll();
});

// A proxy of its own for each attempt (a fresh upstream pool), and a pool of 4 client connections to it.
function proxyFront(proxy: 'nginx' | 'haproxy', binary: string, upstream: number, dir: string): () => Promise<Front> {
  return async () => {
    const listen = await freePort();
    const config = proxyConfig(proxy, { dir, listen, upstream });
    fs.writeFileSync(config.file, config.text);
    const child = spawn(binary, config.args, { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const stopProxy = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    };
    cleanups.push(stopProxy);
    await listens(listen);
    const pool = new Pool(`http://${HOST}:${listen}`, { connections: 4, pipelining: 1 });
    const close = async () => {
      if (!pool.destroyed) await pool.destroy();
      await stopProxy();
    };
    cleanups.push(close);
    return { pool, close };
  };
}

describe.each(['nginx', 'haproxy'] as const)('behind %s (a keep-alive pool of 4 upstream connections)', (proxy) => {
  it('the upstream connections that landed unevenly on 2 workers end 2/2, with no failed request and no upstream error', async (context) => {
    const binary = which(proxy);
    if (!binary) {
      console.warn(`skipped: ${proxy} is not installed (Debian: apt-get install ${proxy})`);
      return context.skip();
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `reuseport-${proxy}-`));
    cleanups.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
    const fixture = startFixture('supervisor.js', [JSON.stringify({ exec: 'balance-worker.js', workers: 2 })]);
    const state = await fixture.next<{ ports: number[] }>('ready', 20_000);
    const [port] = state.ports as [number];
    const { front, first } = await unevenFront(proxyFront(proxy, binary, port, dir));
    // 5 s is the aim (here it takes under 1 s); the bound leaves room for a busy machine. Not much more:
    // nginx replaces an upstream connection now and then by itself (its cache holds 4 idle ones, and a
    // 5th is opened while all 4 are busy), so without shedding the pool evens out by chance too, later
    // (17 s once here).
    const result = await runUntilEven(front.pool, 8_000);
    console.log(`${proxy}: landed ${first.join('/')}, 2/2 after ${result.ms} ms, ${result.requests} requests, ${result.failed} failed`);
    expect(result).toMatchObject({ even: true, failed: 0 });
    await front.close();
    const log = proxy === 'nginx' && fs.existsSync(path.join(dir, 'error.log')) ? fs.readFileSync(path.join(dir, 'error.log'), 'utf8') : '';
    expect(log.split('\n').filter((line) => /upstream/.test(line))).toEqual([]);
  }, 120_000);
});
