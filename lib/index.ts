// Public entry: re-exports only.
export { closeListener } from './listen/close-listener';
export type { CloseListenerOptions, CloseListenerResult } from './listen/close-listener';
export { gatherFacts } from './plan/facts';
export type { ClusterRole, Facts, FactSources } from './plan/facts';
export { bindReusePort } from './listen/bind-reuseport';
export type { BindReusePortOptions } from './listen/bind-options';
export { listenReusePort } from './listen/listen-reuseport';
export { drainSignal } from './worker/drain-signal';
export type { ListenReusePortOptions } from './listen/options';
export { planListen } from './plan/plan';
export { planBind } from './plan/plan-datagram';
export type { DatagramPlan } from './plan/plan-datagram';
export { setupPrimary } from './cluster/setup-primary';
export { startCluster } from './supervisor/start-cluster';
export type {
  CrashLoopEvent,
  ForkEvent,
  ForkFailedEvent,
  ForeignSocketEvent,
  HealthOptions,
  ReloadFailure,
  ReloadResult,
  ShutdownOptions,
  ShutdownResult,
  SlotStats,
  StallEvent,
  StartClusterOptions,
  SteeringState,
  Supervisor,
  UpgradeEvent,
  UpgradeOptions,
  WorkerExit,
} from './supervisor/core/types';
export type {
  ListeningEvent,
  MemoryLimitEvent,
  RestartEvent,
  ShutdownEvent,
  SlotClosedEvent,
  StallDetectionOffEvent,
  SupervisorEventMap,
  SupervisorEventName,
  TicketKeysEvent,
} from './supervisor/core/events';
export type { SetupPrimaryOptions } from './cluster/setup-primary';
export type { ModeChoice, Plan, PlanOptions } from './plan/plan';
export type { SystemError } from './errors';
export type { BindResult, DatagramMode, ListenBackend, ListenMode, ListenResult } from './types';
