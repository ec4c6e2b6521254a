// Public entry: re-exports only.
export { closeListener } from './close-listener';
export type { CloseListenerOptions, CloseListenerResult } from './close-listener';
export { gatherFacts } from './facts';
export type { ClusterRole, Facts, FactSources } from './facts';
export { listenReusePort } from './listen-reuseport';
export type { ListenReusePortOptions } from './options';
export { planListen } from './plan';
export { setupPrimary } from './setup-primary';
export { startCluster } from './start-cluster';
export type { ForeignSocketEvent, SlotStats, StallEvent, StartClusterOptions, Supervisor, WorkerExit } from './start-cluster';
export type { SteeringState } from './slots';
export type { SetupPrimaryOptions } from './setup-primary';
export type { ModeChoice, Plan, PlanOptions } from './plan';
export type { SystemError } from './errors';
export type { ListenBackend, ListenMode, ListenResult } from './types';
