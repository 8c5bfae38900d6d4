// The KACHING agent SDK: client side only (Node built-ins and contracts' pure parts), never server modules.
export { createAgent, KachingAgent, normalizeMetrics, redactAddr } from './agent.js';
export type { AgentOptions, AgentStats, DeliveryError, JobContext, JobOptions, PartialMetrics, UsageInput } from './agent.js';
export { loadAgentConfig, validateAgentConfig, parseFlatYaml, AgentConfigError, AGENT_DEFAULTS, type AgentConfig } from './config.js';
export { correlationId, jobIdFor, uuidV5 } from './ids.js';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export { DiskQueue, MemoryQueue, QueueFullError, encodeRecord, decodeRecords, RECORD_HEADER_BYTES, type EventQueue, type OnFull } from './queue.js';
export { crc32 } from './crc32.js';
export { EventSigner } from './signer.js';
export { HttpTransport, NatsTransport, TransportError, type Transport, type BatchOutcome } from './transport.js';
