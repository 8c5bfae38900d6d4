// @kaching/enforcer — licenses, quotas and budgets turned into decisions in real time.
export { loadConfig, type EnforcerConfig } from './config.js';
export { start, type EnforcerHandle } from './service.js';
// Limits, licenses and the limit vocabulary are in @kaching/contracts (policy/), shared with the API.
export { repriceLedger } from './reprice.js';
export { checkAdmission } from './admission.js';
export { decisionId, processBatch, reevaluate, LimitsCache, CHECKPOINT_KEY } from './engine.js';
export { suggestPlan } from './suggest.js';
export { addWebhook, Notifier, NOTIFIER_DEFAULTS, type NotifierOptions } from './notifier.js';
export { replayEnforcer, resetEnforcerState, type EnforcerReplayOptions, type ResetOptions } from './replay.js';
export { benchDecisionLatency, benchRecord, type BenchDecisionResult } from './bench/bench.js';
export { commands } from './cli/commands.js';
