// @kaching/enforcer — licenses, quotas and budgets turned into decisions in real time.
export { loadConfig, type EnforcerConfig } from './config.js';
export { start, type EnforcerHandle } from './service.js';
export { effectiveLimits, loadLimits, LIMITABLE_METRICS, type EffectiveLimits, type DeploymentLimits } from './limits.js';
export { issueLicense, verifyLicense, activateLicense, licenseKeygen, LICENSE_FORMAT, type LicensePayload, type VerifiedLicense } from './license.js';
export { repriceLedger } from './reprice.js';
export { checkAdmission } from './admission.js';
export { decisionId, processBatch, reevaluate, LimitsCache, CHECKPOINT_KEY } from './engine.js';
export { suggestPlan } from './suggest.js';
export { addWebhook, Notifier, NOTIFIER_DEFAULTS, type NotifierOptions } from './notifier.js';
export { resetEnforcerState } from './replay.js';
export { benchDecisionLatency, benchRecord, type BenchDecisionResult } from './bench/bench.js';
export { commands } from './cli/commands.js';
