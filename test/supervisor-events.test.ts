// The supervisor's events are typed: every name it emits is in SupervisorEventMap with its payload, and a
// misspelt name or a listener of the wrong shape does not compile (checked by `npm run typecheck`, which
// compiles this file; the @ts-expect-error lines fail it if they ever compile).
import { describe, expectTypeOf, it } from 'vitest';
import type { ReloadResult, Supervisor, SupervisorEventMap, SupervisorEventName, WorkerExit } from '../lib';

// Listeners attached the way an app would; never called here.
function attach(supervisor: Supervisor): void {
  supervisor.on('reload', (result) => result.cut.toFixed());
  supervisor.on('exit', (exit) => exit.expected);
  supervisor.once('crash-loop', (event) => event.serving);
  // @ts-expect-error a misspelt event name
  supervisor.on('reloaded', () => undefined);
  // @ts-expect-error a listener of another event's payload
  supervisor.on('exit', (result: ReloadResult) => result.cut);
}

describe('supervisor events', () => {
  it('names every event the supervisor emits, with its payload', () => {
    expectTypeOf(attach).toBeFunction();
    expectTypeOf<SupervisorEventName>().toEqualTypeOf<
      | 'fork'
      | 'fork-failed'
      | 'listening'
      | 'exit'
      | 'slot-closed'
      | 'crash-loop'
      | 'stall'
      | 'recover'
      | 'stall-replace'
      | 'stall-detection-off'
      | 'foreign'
      | 'reload'
      | 'reload-failed'
      | 'upgrade'
      | 'upgrade-failed'
      | 'shutdown'
      | 'ticket-keys'
      | 'restart'
      | 'memory-limit-too-low'
    >();
    expectTypeOf<SupervisorEventMap['exit']>().toEqualTypeOf<[WorkerExit]>();
    expectTypeOf<SupervisorEventMap['reload']>().toEqualTypeOf<[ReloadResult]>();
  });
});
