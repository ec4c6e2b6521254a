// Starts test/fixtures/notify-receiver.py, a stand-in for systemd's notify socket, and reads what it received.
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

const script = path.join(__dirname, '..', 'fixtures', 'notify-receiver.py');

/** One datagram as the receiver got it: the text, and the fds that came with it (SCM_RIGHTS). */
export interface ReceivedNotification {
  message: string;
  fds: { fd: number; inode: string; kind: 'socket' | 'file' | 'fifo' | 'directory' | 'other' }[];
  truncated: boolean;
}

/** A bound receiver: its address, what it received, and a way to stop it early. */
export interface NotifyReceiver {
  address: string;
  /** Every datagram, once the receiver has had its count and exited 0 (else rejects). */
  received(): Promise<ReceivedNotification[]>;
  /** Kills it if it still runs; resolves once it has gone. */
  stop(): Promise<void>;
}

/**
 * Binds `address` ('/path' or '@abstract') and receives `count` datagrams (0: until stopped);
 * resolves once the socket is bound. `quiet`: receives and closes the fds, reports nothing.
 */
export async function startNotifyReceiver(address: string, options: { count?: number; quiet?: boolean } = {}): Promise<NotifyReceiver> {
  const { count = 1, quiet = false } = options;
  const child = spawn('python3', [script, address, String(count), ...(quiet ? ['--quiet'] : [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const datagrams: ReceivedNotification[] = [];
  let markBound: () => void = () => {};
  const bound = new Promise<void>((resolve, reject) => {
    markBound = resolve;
    child.once('error', reject);
    void closed.then((code) => reject(new Error(`notify-receiver exited (${code}) before binding ${address}: ${stderr}`)));
  });
  // One listener from the start: a datagram's line may arrive in the same chunk as "bound".
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    if (line === 'bound') markBound();
    else datagrams.push(JSON.parse(line) as ReceivedNotification);
  });
  await bound;
  return {
    address,
    async received() {
      const code = await closed;
      if (code !== 0) throw new Error(`notify-receiver on ${address} exited ${code}: ${stderr}`);
      return datagrams;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await closed;
    },
  };
}
