// @kaching/ingest — HTTP bridge and NATS ingest service: the only way events enter the stream.
export { loadConfig, type IngestConfig } from './config.js';
export { start, type IngestHandle } from './service.js';
export { commands } from './cli/commands.js';
export { issueIngestToken, type IssueIngestTokenInput, type IssuedIngestToken } from './routines/issueIngestToken.js';
export { revokeIngestToken } from './routines/revokeIngestToken.js';
export { registerAgentKey, DEFAULT_IN_FLIGHT_MS, type RegisterAgentKeyInput, type RegisteredAgentKey } from './routines/registerAgentKey.js';
export { revokeAgentKey, DEFAULT_REVOKE_REASON } from './routines/revokeAgentKey.js';
export { bindCert, unbindCert, listCertBindings, type CertBindingRow } from './routines/certBindings.js';
export { judgeKey, REVOKE_REASONS, type RevokeReason, type KeyJudgement } from './auth/keys.js';
export { parseIngestToken, INGEST_SCOPES, type IngestScope } from './auth/tokenFormat.js';
export { redactUcxl, REDACTED, type RedactionResult } from './pipeline/redact.js';
export { auditVerify, type AuditResult, type AuditVerdict } from './audit/verifyStored.js';
export { ENDPOINT_HEADER } from './nats/service.js';
export { benchIngest, type BenchIngestOptions, type BenchIngestReport, type PacedResult, type PathResult } from './bench/benchIngest.js';
export { selfBenchIngest } from './bench/selfBench.js';
export { ingestStageCosts, type IngestStageCosts } from './bench/stages.js';
export { seedBenchDeployment, type BenchDeployment } from './bench/seed.js';
export { sampleUsage, signedUsage } from './bench/events.js';

