/**
 * The KACHING agent SDK — client side only, no dependencies beyond Node.js (the NATS transport loads
 * @nats-io/transport-node when used).
 *
 *   const agent = await createAgent(loadAgentConfig());          // YAML file (KACHING_AGENT_CONFIG) + KACHING_* env
 *   await agent.job('ucxl://me:dev@proj:task/x', async (ctx) => { ctx.llm({...}); return work(); }, { step: 7 });
 *   await agent.emitUsage({ ucxlAddr, step: 8, startedAt, endedAt, metrics: { gpu_seconds: 12 } });
 *   await agent.close(5_000);                                     // best-effort flush; the rest stays queued on disk
 *
 * Every event is signed (Ed25519 over RFC 8785 JSON without `sig`; by default one signature per batch over
 * the RFC 9162 Merkle tree head of its events, see README.md), appended to the queue (fsync'd
 * when queue_dir is set) before the call resolves, and sent in order in batches to
 * POST /v1/ingest/batch (or a NATS request to <ns>.ingest.<deployment>). 2xx = done; 4xx (not 408/429)
 * = permanent: written to the dead-letter file (fsync'd) with its error before it leaves the queue,
 * counted in stats().deadLettered, reported through onError, listed and replayed with
 * `kaching agent dead-letter list|replay` or agent.replayDeadLetters(); 429/5xx/network = retried
 * with backoff and jitter.
 * Correlation ids derive from (agent, run, step): a retried step is the same event, never a new one.
 */
export { createAgent, currentJob, deadLetterPathOf, KachingAgent, normalizeMetrics, redactAddr } from './agent.js';
export { DeadLetterFile, MemoryDeadLetters, replayDeadLetters, type DeadLetter, type DeadLetterStore, type ReplayOptions, type ReplayReport } from './deadLetter.js';
export { withTags, currentTags, checkTags } from './tags.js';
export { wrapOpenAI } from './wrappers/openai.js';
export { wrapAnthropic } from './wrappers/anthropic.js';
export type { WrapOptions } from './wrappers/record.js';
export { fromAnthropic, fromOpenAIChat, fromOpenAIResponses } from './wrappers/usage.js';
export type { BatchSignature, LlmUsage, SignedEvent, Tags, Unsigned, UsageEvent, JobStatusEvent } from './protocol/mod.js';
export { canonicalize } from './protocol/mod.js';
export type { AgentOptions, AgentStats, DeliveryError, JobContext, JobOptions, PartialMetrics, UsageInput } from './agent.js';
export { loadAgentConfig, validateAgentConfig, parseFlatYaml, AgentConfigError, AGENT_DEFAULTS, type AgentConfig } from './config.js';
export { correlationId, jobIdFor, uuidV5 } from './ids.js';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export { DiskQueue, MemoryQueue, QueueFullError, encodeRecord, decodeRecords, RECORD_HEADER_BYTES, type EventQueue, type OnFull } from './queue.js';
export { crc32 } from './crc32.js';
export { EventSigner } from './signer.js';
export { HttpTransport, NatsTransport, TransportError, type Transport, type BatchOutcome } from './transport.js';
