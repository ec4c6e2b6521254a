// A child's exit as a test can read it: after 'exit', its stdout and stderr read to their end.
// Node gives 'exit' as soon as the process ends, possibly before the last bytes of its pipes have
// been read (stdout and stderr are separate pipes, read in any order), so a test that checks
// stderr right after the exit could see it short. A pipe some grandchild still holds open never
// ends, so the wait for the ends is bounded.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Readable } from 'node:stream';

const ended = (stream: Readable | null | undefined): Promise<unknown> =>
  !stream || stream.readableEnded || stream.destroyed ? Promise.resolve() : Promise.race([once(stream, 'end'), once(stream, 'close')]);

/** Resolves with the exit's code and signal once the child exited and its stdout and stderr ended (those waited for at most `boundMs`). */
export function exitAfterOutput(child: ChildProcess, boundMs = 5_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      const timer = setTimeout(() => resolve({ code, signal }), boundMs);
      void Promise.all([ended(child.stdout), ended(child.stderr)]).then(() => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
    });
  });
}

/** Waits (bounded) until `read()` matches `pattern`, then returns what it read; a line on stdout does not order the bytes on stderr. */
export async function untilOutput(read: () => string, pattern: string | RegExp, timeoutMs = 10_000): Promise<string> {
  const matches = () => (typeof pattern === 'string' ? read().includes(pattern) : pattern.test(read()));
  const deadline = Date.now() + timeoutMs;
  while (!matches() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  return read();
}
