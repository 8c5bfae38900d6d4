// @kaching/projector — durable consumers that project the events stream into Postgres; replay and verify.
export { loadConfig, type ProjectorConfig } from './config.js';
export { start, type ProjectorHandle } from './service.js';
export { replay, replayLockKey, replayPhaseText, type ReplayOptions, type ReplayResult, type ReplayProgress } from './replay.js';
export { verifyProjections, type ProjectionDifference } from './verify.js';
export { collectStatus, formatStatus, type ProjectorStatus } from './status.js';
export { maintainPartitions } from './maintenance.js';
export { processBatch, decodeMessage } from './processor.js';
export { benchProjector, benchReplay, type BenchProjectorResult, type BenchReplayResult } from './bench/bench.js';
export { projectorStageCosts, type ProjectorStageCosts } from './bench/stages.js';
export { generateMessages, publishMessages, type GeneratedMessage } from './bench/generate.js';
export { commands } from './cli/commands.js';
export { loadBillingConfig, BILLING_FORMATS, type BillingConfig, type BillingFormat } from './config.js';
export { BillingForwarder } from './billing/forwarder.js';
export { BILLING_ADAPTERS, type BillingDelivery } from './billing/formats.js';
