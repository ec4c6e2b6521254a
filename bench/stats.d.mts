// Type declarations for bench/stats.mjs, so test/bench.test.ts type-checks under strict TypeScript.
export function median(values: ReadonlyArray<number | null | undefined>): number | null;
export function percentileSorted(sorted: ArrayLike<number>, p: number): number | null;
export function percentiles(values: ArrayLike<number>, ps: readonly number[]): Record<string, number | null>;
export function jainIndex(counts: readonly number[]): number | null;
export function maxMinRatio(counts: readonly number[]): number | null;
export function medianByPosition(rows: ReadonlyArray<ReadonlyArray<number | null>>): Array<number | null>;
export function cpuMicrosPerRequest(cpuMicros: number, requests: number): number | null;
export interface RoundRecord {
  requestsPerSecond: number;
  latencyMs: { p50: number | null; p99: number | null };
  errors: { total: number };
  server: { requests: number; connections: number; requestsPerConnection: number | null; perWorker: Array<{ requests: number }> };
  fairness: { jainIndex: number | null; maxMinRatio: number | null };
  cpu: { microsPerRequest: number | null; primaryMicrosPerRequest: number | null };
}
export interface Summary {
  rounds: number;
  requestsPerSecond: number | null;
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  errors: number | null;
  serverRequests: number | null;
  serverConnections: number | null;
  requestsPerConnection: number | null;
  perWorkerRequests: Array<number | null>;
  jainIndex: number | null;
  maxMinRatio: number | null;
  cpuMicrosPerRequest: number | null;
  primaryCpuMicrosPerRequest: number | null;
}
export function summarizeRounds(rounds: readonly RoundRecord[]): Summary;
