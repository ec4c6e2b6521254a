// Type declarations for bench/stall.mjs (the parts test/bench.test.ts uses).
export const STALL_CONFIGURATIONS: ReadonlyArray<{ id: string; label: string; how: string }>;
export interface StallSettings {
  workers: number;
  rate: number;
  durationSec: number;
  blockAtSec: number;
  blockSec: number;
  maxInFlight: number;
  timeoutMs: number;
}
export function stallDefaults(quick: boolean): StallSettings;
export interface StallSummary {
  rounds: number;
  sent: number | null;
  ok: number | null;
  over500ms: number | null;
  over500msPercent: number | null;
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  latencyMaxMs: number | null;
  failures: number | null;
  blockedWorkerShare: number | null;
  blockMs: number | null;
  cpuMicrosPerConnection: number | null;
  primaryCpuMicrosPerConnection: number | null;
  stalls: number | null;
  perWorkerConnections: Array<number | null>;
  over500msByRound: number[];
  latencyP99MsByRound: Array<number | null>;
}
// biome-ignore lint/suspicious/noExplicitAny: round records are plain JSON from run.mjs.
export function summarizeStallRounds(records: readonly any[]): StallSummary;
