// Type declarations for bench/cpu-local.mjs (the parts test/bench.test.ts uses).
export const CPU_LOCAL_CONFIGURATIONS: ReadonlyArray<{ id: string; label: string; how: string }>;
export const CLIENT_LAYOUTS: ReadonlyArray<{ id: 'one-client' | 'client-per-cpu'; label: string }>;
export function allowedCpus(): number[] | null;
export function clientPlan(layout: 'one-client' | 'client-per-cpu', connections: number, cpus: number[]): { cpu: number | undefined; connections: number }[];
export interface CpuLocalMeasurement {
  requestsPerSecond: number;
  errors: number;
  p99Ms: number;
  requests: number;
  cpuMicrosPerRequest: number | null;
  primaryCpuMicrosPerRequest: number | null;
  jainIndex: number | null;
  shares: number[];
  pinnedTo: Array<number[] | null>;
}
export function summarizeMeasurement(
  clientResults: { requestsPerSecond: number; errors: { total: number }; latencyMs: { p99: number | null }; pinnedTo: number[] | null }[],
  report: { primary: { cpuMicros: number }; workers: { requests: number; cpuMicros: number }[] },
): CpuLocalMeasurement;
export interface CpuLocalSummary {
  rounds: number;
  requestsPerSecond: number | null;
  cpuMicrosPerRequest: number | null;
  primaryCpuMicrosPerRequest: number | null;
  jainIndex: number | null;
  p99Ms: number | null;
  errors: number;
  sharesByRound: number[][];
}
export function summarizeCpuLocal(records: CpuLocalMeasurement[]): CpuLocalSummary;
export function cpuLocalMarkdown(result: {
  configurations: ReadonlyArray<{ id: string; label: string }>;
  layouts: ReadonlyArray<{ id: string; label: string }>;
  summary: Record<string, CpuLocalSummary | null>;
}): string;
