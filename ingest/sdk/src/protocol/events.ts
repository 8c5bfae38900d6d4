/**
 * Wire types of the KACHING events: what an agent sends. They mirror the JSON Schemas in contracts
 * (`contracts/src/schemas/`) exactly; contracts re-exports them (one definition for agents and servers).
 */

export const USAGE_SCHEMA = 'kaching.v1.usage' as const;
export const JOB_STATUS_SCHEMA = 'kaching.v1.job_status' as const;

export type JobStatus = 'running' | 'succeeded' | 'failed' | 'canceled';

export interface AgentRef {
  agent_id: string; // uuid
  agent_type: string;
  version?: string;
}

export interface NodeRef {
  node_id: string; // uuid
  hostname: string;
  hw_class?: string;
}

export interface Signature {
  algo: 'ed25519';
  key_id: string;
  signature: string; // base64 of the 64-byte detached signature
}

export interface UsageMetrics {
  cpu_seconds: number;
  gpu_seconds: number;
  ram_mb_peak: number;
  disk_io_mb: number;
  net_in_mb: number;
  net_out_mb: number;
  context_reads: number;
  context_writes: number;
  context_bytes_read: number;
  context_bytes_written: number;
}

/**
 * Model tokens, counted as OpenTelemetry's GenAI conventions count them: `tokens_in` is every input token,
 * cache reads and cache writes included; `tokens_out` is every output token, reasoning included. (Anthropic's
 * API reports cache tokens apart from input_tokens: an agent adds them in.) Each token is priced once.
 */
export interface LlmUsage {
  model_name: string;
  provider: string;
  tokens_in: number;
  tokens_out: number;
  /** Part of tokens_in read from the provider's prompt cache. */
  tokens_cached_in?: number;
  /** Part of tokens_in written to the provider's prompt cache (cache creation). */
  tokens_cache_write?: number;
  /** Part of tokens_out spent on reasoning/thinking. */
  tokens_reasoning?: number;
}

/** Free-form attribution of an event (feature, user, project, team, ...): at most 16 keys. */
export type Tags = Record<string, string>;

export interface UsageJob {
  job_id: string; // uuid
  correlation_id: string;
  ucxl_addr: string;
  started_at: string; // RFC 3339
  ended_at?: string; // RFC 3339; absent while running
  status: JobStatus;
  meta?: Record<string, string>;
}

export interface UsageEvent {
  schema: typeof USAGE_SCHEMA;
  deployment_id: string; // uuid
  agent: AgentRef;
  node: NodeRef;
  job: UsageJob;
  metrics: UsageMetrics;
  llm?: LlmUsage;
  tags?: Tags;
  sig: Signature;
}

/** A heartbeat or status change of a job, without metrics. */
export interface JobStatusEvent {
  schema: typeof JOB_STATUS_SCHEMA;
  deployment_id: string;
  agent: AgentRef;
  node: NodeRef;
  job: {
    job_id: string;
    correlation_id: string;
    ucxl_addr?: string;
    started_at: string;
    status: JobStatus;
  };
  observed_at: string; // RFC 3339: when the agent saw this status
  sig: Signature;
}

export type SignedEvent = UsageEvent | JobStatusEvent;
/** What is signed: the event without its `sig` member. */
export type Unsigned<E extends SignedEvent> = Omit<E, 'sig'>;

/**
 * A signed batch: one Ed25519 signature over the RFC 9162 Merkle tree head of the batch's events (their
 * RFC 8785 bytes without `sig`, in the order sent), instead of one signature per event. Sent as `batch_sig`
 * next to `events` (which then carry no `sig`) to POST /v1/ingest/batch.
 */
export interface BatchSignature {
  algo: 'ed25519';
  key_id: string;
  /** Number of events (leaves), in the order they are sent. */
  tree_size: number;
  /** base64 of the 32-byte tree head. */
  root: string;
  /** base64 of the Ed25519 signature over batchSigningBytes(root, tree_size). */
  signature: string;
}
