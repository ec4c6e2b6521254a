// Pure statistics for the benchmark: median, percentiles, fairness (Jain's index, max/min) and per-run summaries.

/**
 * Median of numbers (Infinity allowed: a max/min ratio with an idle worker); null and NaN are
 * skipped; null for an empty list (a configuration that did not run).
 */
export function median(values) {
  const xs = values.filter((v) => typeof v === 'number' && !Number.isNaN(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mid = xs.length >> 1;
  if (xs.length % 2 === 1) return xs[mid];
  // Infinity + Infinity / 2 is fine, but Infinity - Infinity is not: keep the upper value then.
  return xs[mid] === Infinity ? Infinity : (xs[mid - 1] + xs[mid]) / 2;
}

/**
 * Percentile by nearest rank on ascending-sorted data (p in 0..100). Nearest rank, not
 * interpolation, so a reported p99 is always a latency that some request really had.
 */
export function percentileSorted(sorted, p) {
  if (sorted.length === 0) return null;
  if (p <= 0) return sorted[0];
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, rank) - 1];
}

/** Several percentiles of an unsorted array or typed array, sorting a copy once. */
export function percentiles(values, ps) {
  const sorted = Float64Array.from(values).sort();
  const out = {};
  for (const p of ps) out[`p${p}`] = percentileSorted(sorted, p);
  return out;
}

/**
 * Jain's fairness index (sum x)^2 / (n * sum x^2): 1 when every worker got the same share,
 * 1/n when one worker got everything. Null when there is nothing to judge.
 */
export function jainIndex(counts) {
  if (counts.length === 0) return null;
  let sum = 0;
  let sumSq = 0;
  for (const x of counts) {
    sum += x;
    sumSq += x * x;
  }
  if (sumSq === 0) return null;
  return (sum * sum) / (counts.length * sumSq);
}

/** Busiest worker's count over the idlest's; Infinity when a worker served nothing. */
export function maxMinRatio(counts) {
  if (counts.length === 0) return null;
  const max = Math.max(...counts);
  const min = Math.min(...counts);
  if (max === 0) return null;
  return min === 0 ? Infinity : max / min;
}

/** Element-wise median of equal-length rows (e.g. per-worker counts ranked busiest first, one row per round). */
export function medianByPosition(rows) {
  if (rows.length === 0) return [];
  const width = Math.max(...rows.map((r) => r.length));
  const out = [];
  for (let i = 0; i < width; i++) out.push(median(rows.map((r) => r[i])));
  return out;
}

/** CPU microseconds per request; null when no request was served (avoids a misleading 0 or Infinity). */
export function cpuMicrosPerRequest(cpuMicros, requests) {
  return requests > 0 ? cpuMicros / requests : null;
}

/**
 * Medians over rounds of one configuration x workload. Each round is the record written by run.mjs;
 * per-worker counts are ranked busiest first before taking medians, because worker k of one round
 * and worker k of the next are different processes: the shape of the distribution is what compares.
 */
export function summarizeRounds(rounds) {
  const pick = (f) => median(rounds.map(f));
  return {
    rounds: rounds.length,
    requestsPerSecond: pick((r) => r.requestsPerSecond),
    latencyP50Ms: pick((r) => r.latencyMs.p50),
    latencyP99Ms: pick((r) => r.latencyMs.p99),
    errors: pick((r) => r.errors.total),
    serverRequests: pick((r) => r.server.requests),
    serverConnections: pick((r) => r.server.connections),
    requestsPerConnection: pick((r) => r.server.requestsPerConnection),
    perWorkerRequests: medianByPosition(rounds.map((r) => [...r.server.perWorker.map((w) => w.requests)].sort((a, b) => b - a))),
    jainIndex: pick((r) => r.fairness.jainIndex),
    maxMinRatio: pick((r) => r.fairness.maxMinRatio),
    cpuMicrosPerRequest: pick((r) => r.cpu.microsPerRequest),
    primaryCpuMicrosPerRequest: pick((r) => r.cpu.primaryMicrosPerRequest),
  };
}
