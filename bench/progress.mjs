// Progress display for a bench run: a cli-progress bar on a TTY, one plain line per step otherwise (CI logs, pipes).
import cliProgress from 'cli-progress';

function fmtDuration(sec) {
  if (!Number.isFinite(sec) || sec < 0) return '?';
  const s = Math.round(sec);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/**
 * `totalLoadSec` is the planned seconds under load. Time left is scaled by the wall time each
 * load second has really cost so far (server start-up, warm-up, settling), so the estimate
 * improves as the run goes.
 */
export function createProgress({ totalLoadSec, totalSteps, stream = process.stderr, tty = Boolean(stream.isTTY) }) {
  const startedAt = Date.now();
  let doneLoadSec = 0;
  let stepIndex = 0;
  let current = null; // { label, sec }
  let bar = null;

  const leftSec = (inStep = 0) => {
    const done = doneLoadSec + inStep;
    const remaining = totalLoadSec - done;
    const wallPerLoadSec = done > 0 ? (Date.now() - startedAt) / 1000 / done : 1.3;
    return remaining * wallPerLoadSec;
  };

  if (tty) {
    bar = new cliProgress.SingleBar(
      {
        stream,
        format: ' {bar} {percentage}% | step {step}/{steps} {label} | {left} left',
        barsize: 24,
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 1,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(Math.max(1, Math.round(totalLoadSec * 10)), 0, { step: 0, steps: totalSteps, label: 'starting', left: fmtDuration(leftSec()) });
  }

  return {
    /** A new measured step starts (a configuration x workload x round). */
    step(label, sec) {
      stepIndex++;
      current = { label, sec };
      if (bar) bar.update(Math.round(doneLoadSec * 10), { step: stepIndex, label, left: fmtDuration(leftSec()) });
      else stream.write(`[${stepIndex}/${totalSteps}] ${label}: ${sec} s under load, about ${fmtDuration(leftSec())} left\n`);
    },
    /** Seconds elapsed inside the current step (called by the load generator every 250 ms). */
    tick(elapsed) {
      if (!bar || !current) return;
      const inStep = Math.min(elapsed, current.sec);
      bar.update(Math.round((doneLoadSec + inStep) * 10), { left: fmtDuration(leftSec(inStep)) });
    },
    /** The current step finished its load time. */
    endStep() {
      if (current) doneLoadSec += current.sec;
      current = null;
      if (bar) bar.update(Math.round(doneLoadSec * 10), { left: fmtDuration(leftSec()) });
    },
    /** A message that must not be mangled by the bar. */
    log(msg) {
      if (bar) {
        // cli-progress has no "print above the bar": clear the line, write, redraw.
        stream.write(`\r\x1b[2K${msg}\n`);
        bar.render?.();
      } else {
        stream.write(`${msg}\n`);
      }
    },
    stop() {
      if (bar) bar.stop();
      bar = null;
    },
  };
}
