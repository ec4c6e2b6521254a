/** Why a command cannot run, said before anything is started (exit code 2). */
export class UsageError extends Error {}
