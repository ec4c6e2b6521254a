// The slot lifecycle as a table: every state against every event, what comes next or that it cannot
// happen (ERR_REUSEPORT_SLOT_TRANSITION); timers that belong to states; the figures it keeps.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SlotLifecycle, type SlotEvent, type SlotState, nextSlotState } from '../lib/supervisor/slots/lifecycle';

const EVENTS: SlotEvent[] = ['fork', 'listen', 'exit', 'give-up', 'adopt', 'close'];

// Written out by hand (not read from the module's table), so a changed transition fails here.
const EXPECTED: Record<SlotState, Partial<Record<SlotEvent, SlotState>>> = {
  empty: { fork: 'starting', close: 'closed' },
  starting: { listen: 'serving', exit: 'restarting', 'give-up': 'stopped', adopt: 'serving', close: 'closed' },
  serving: { exit: 'restarting', 'give-up': 'stopped', adopt: 'serving', close: 'closed' },
  restarting: { fork: 'starting', adopt: 'serving', close: 'closed' },
  stopped: { adopt: 'serving', close: 'closed' },
  closed: {},
};

// A path of events from 'empty' to each state.
const PATHS: Record<SlotState, SlotEvent[]> = {
  empty: [],
  starting: ['fork'],
  serving: ['fork', 'listen'],
  restarting: ['fork', 'listen', 'exit'],
  stopped: ['fork', 'give-up'],
  closed: ['close'],
};

const cases = (Object.keys(EXPECTED) as SlotState[]).flatMap((state) => EVENTS.map((event) => [state, event, EXPECTED[state][event]] as const));

function at(state: SlotState): SlotLifecycle {
  const life = new SlotLifecycle(3);
  for (const event of PATHS[state]) life.fire(event);
  expect(life.state).toBe(state);
  return life;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('slot transitions', () => {
  it.each(cases)('%s + %s -> %s', (state, event, next) => {
    expect(nextSlotState(state, event)).toBe(next);
    const life = at(state);
    expect(life.can(event)).toBe(next !== undefined);
    if (next === undefined) {
      expect(() => life.fire(event)).toThrow(
        expect.objectContaining({ code: 'ERR_REUSEPORT_SLOT_TRANSITION', message: `reuseport: slot 3 cannot '${event}' while ${state}` }),
      );
      expect(life.state).toBe(state);
    } else {
      expect(life.fire(event)).toBe(next);
      expect(life.state).toBe(next);
    }
  });

  it('tells its listeners of every transition, after it is made', () => {
    const life = new SlotLifecycle(1);
    const seen: string[] = [];
    life.onTransition(({ slot, from, to, event }) => seen.push(`${slot}:${from}-${event}->${to}:${life.state}`));
    life.fire('fork');
    life.fire('listen');
    life.fire('exit');
    expect(seen).toEqual(['1:empty-fork->starting:starting', '1:starting-listen->serving:serving', '1:serving-exit->restarting:restarting']);
  });

  it('has served once a worker listened, and keeps saying so; an adoption resets the count of young deaths', () => {
    const life = new SlotLifecycle(0);
    expect(life.everServed).toBe(false);
    life.fire('fork');
    expect(life.everServed).toBe(false);
    life.fire('listen');
    life.fire('exit');
    expect(life.everServed).toBe(true);
    life.failures = 5;
    life.fire('fork');
    life.fire('give-up');
    expect(life.failures).toBe(5);
    life.fire('adopt');
    expect(life.failures).toBe(0);
    expect(life.state).toBe('serving');
  });
});

describe('timers of a state', () => {
  it('a timer of the current state fires while the slot stays there', () => {
    vi.useFakeTimers();
    const life = at('restarting');
    const fired = vi.fn();
    expect(life.startTimer('restart', 100, fired)).toBe(true);
    expect(life.hasTimer('restart')).toBe(true);
    vi.advanceTimersByTime(100);
    expect(fired).toHaveBeenCalledTimes(1);
    expect(life.hasTimer('restart')).toBe(false);
  });

  it('is cleared on leaving the state', () => {
    vi.useFakeTimers();
    const life = at('restarting');
    const fired = vi.fn();
    life.startTimer('restart', 100, fired);
    life.fire('close');
    vi.advanceTimersByTime(1_000);
    expect(fired).not.toHaveBeenCalled();
    expect(life.hasTimer('restart')).toBe(false);
  });

  it('one that spans several states lives through them and ends on entering another', () => {
    vi.useFakeTimers();
    const life = at('restarting');
    const closeSocket = vi.fn();
    life.startTimer('close-socket', 500, closeSocket, ['restarting', 'starting']);
    life.fire('fork');
    expect(life.hasTimer('close-socket')).toBe(true);
    life.fire('listen');
    expect(life.hasTimer('close-socket')).toBe(false);
    vi.advanceTimersByTime(1_000);
    expect(closeSocket).not.toHaveBeenCalled();
  });

  it('fires when the replacement never listens', () => {
    vi.useFakeTimers();
    const life = at('restarting');
    const closeSocket = vi.fn();
    life.startTimer('close-socket', 500, closeSocket, ['restarting', 'starting']);
    life.fire('fork');
    vi.advanceTimersByTime(500);
    expect(closeSocket).toHaveBeenCalledTimes(1);
  });

  it('is not started outside its states; one of the same name is replaced; clearTimer ends it', () => {
    vi.useFakeTimers();
    const life = at('serving');
    const fired = vi.fn();
    expect(life.startTimer('restart', 100, fired, ['restarting'])).toBe(false);
    expect(life.hasTimer('restart')).toBe(false);
    const first = vi.fn();
    life.startTimer('check', 100, first);
    life.startTimer('check', 200, fired);
    vi.advanceTimersByTime(150);
    expect(first).not.toHaveBeenCalled();
    life.clearTimer('check');
    vi.advanceTimersByTime(500);
    expect(fired).not.toHaveBeenCalled();
  });
});
