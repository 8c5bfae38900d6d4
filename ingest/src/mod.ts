// @kaching/ingest — HTTP bridge and NATS ingest service: the only way events enter the stream.
export { loadConfig, type IngestConfig } from './config.js';
export { start, type IngestHandle } from './service.js';
export { commands } from './cli/commands.js';
// Ingest tokens and agent keys are issued and revoked from @kaching/contracts (credentials/).
export { judgeKey, type KeyJudgement } from './auth/keys.js';
export { redactUcxl, REDACTED, type RedactionResult } from './pipeline/redact.js';
export { auditVerify, type AuditResult, type AuditVerdict } from './audit/verifyStored.js';
export { auditSelection, type AuditSelection, type AuditSummary } from './audit/scan.js';
export { ENDPOINT_HEADER } from './nats/service.js';
export { benchIngest, type BenchIngestOptions, type BenchIngestReport, type PacedResult, type PathResult } from './bench/benchIngest.js';
export { selfBenchIngest } from './bench/selfBench.js';
export { ingestStageCosts, type IngestStageCosts } from './bench/stages.js';
export { seedBenchDeployment, type BenchDeployment } from './bench/seed.js';
export { sampleUsage, signedUsage } from './bench/events.js';

