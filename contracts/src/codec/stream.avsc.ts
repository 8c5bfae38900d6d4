/**
 * Avro schema of one events-stream message (`StreamRecord`), version 2. Changing it changes the fingerprint:
 * add a version (freeze this one as stream.v2.avsc.ts) and register the old one in stream.ts, so records
 * already in the stream and the archive keep decoding. v2 added llm.tokens_cache_write, tags,
 * ingest.original_sha256 and ingest.batch (all optional, so v1 records resolve into v2).
 */
const opt = (type: unknown) => ({ type: ['null', type], default: null });

const jobStatusEnum = { type: 'enum', name: 'JobStatus', symbols: ['running', 'succeeded', 'failed', 'canceled'] };

const agentRef = {
  type: 'record',
  name: 'AgentRef',
  fields: [
    { name: 'agent_id', type: 'string' },
    { name: 'agent_type', type: 'string' },
    { name: 'version', ...opt('string') },
  ],
};

const nodeRef = {
  type: 'record',
  name: 'NodeRef',
  fields: [
    { name: 'node_id', type: 'string' },
    { name: 'hostname', type: 'string' },
    { name: 'hw_class', ...opt('string') },
  ],
};

const signature = {
  type: 'record',
  name: 'Signature',
  fields: [
    { name: 'algo', type: { type: 'enum', name: 'SignatureAlgo', symbols: ['ed25519'] } },
    { name: 'key_id', type: 'string' },
    { name: 'signature', type: 'string' },
  ],
};

const usageEvent = {
  type: 'record',
  name: 'UsageEvent',
  fields: [
    { name: 'schema', type: 'string' },
    { name: 'deployment_id', type: 'string' },
    { name: 'agent', type: agentRef },
    { name: 'node', type: nodeRef },
    {
      name: 'job',
      type: {
        type: 'record',
        name: 'UsageJob',
        fields: [
          { name: 'job_id', type: 'string' },
          { name: 'correlation_id', type: 'string' },
          { name: 'ucxl_addr', type: 'string' },
          { name: 'started_at', type: 'string' },
          { name: 'ended_at', ...opt('string') },
          { name: 'status', type: jobStatusEnum },
          { name: 'meta', ...opt({ type: 'map', values: 'string' }) },
        ],
      },
    },
    {
      name: 'metrics',
      type: {
        type: 'record',
        name: 'UsageMetrics',
        fields: [
          // Metrics are decimals: double keeps every JS number exactly.
          { name: 'cpu_seconds', type: 'double' },
          { name: 'gpu_seconds', type: 'double' },
          { name: 'ram_mb_peak', type: 'double' },
          { name: 'disk_io_mb', type: 'double' },
          { name: 'net_in_mb', type: 'double' },
          { name: 'net_out_mb', type: 'double' },
          // Counts are integers ≤ 1e15 < 2^53: avsc longs as JS numbers are exact.
          { name: 'context_reads', type: 'long' },
          { name: 'context_writes', type: 'long' },
          { name: 'context_bytes_read', type: 'long' },
          { name: 'context_bytes_written', type: 'long' },
        ],
      },
    },
    {
      name: 'llm',
      ...opt({
        type: 'record',
        name: 'LlmUsage',
        fields: [
          { name: 'model_name', type: 'string' },
          { name: 'provider', type: 'string' },
          { name: 'tokens_in', type: 'long' },
          { name: 'tokens_out', type: 'long' },
          { name: 'tokens_cached_in', ...opt('long') },
          { name: 'tokens_reasoning', ...opt('long') },
          { name: 'tokens_cache_write', ...opt('long') },
        ],
      }),
    },
    { name: 'tags', ...opt({ type: 'map', values: 'string' }) },
    { name: 'sig', type: signature },
  ],
};

const jobStatusEvent = {
  type: 'record',
  name: 'JobStatusEvent',
  fields: [
    { name: 'schema', type: 'string' },
    { name: 'deployment_id', type: 'string' },
    { name: 'agent', type: 'AgentRef' },
    { name: 'node', type: 'NodeRef' },
    {
      name: 'job',
      type: {
        type: 'record',
        name: 'JobStatusJob',
        fields: [
          { name: 'job_id', type: 'string' },
          { name: 'correlation_id', type: 'string' },
          { name: 'ucxl_addr', ...opt('string') },
          { name: 'started_at', type: 'string' },
          { name: 'status', type: 'JobStatus' },
        ],
      },
    },
    { name: 'observed_at', type: 'string' },
    { name: 'sig', type: 'Signature' },
  ],
};

export const STREAM_RECORD_AVRO_SCHEMA = {
  type: 'record',
  name: 'StreamRecord',
  namespace: 'kaching.v1',
  fields: [
    { name: 'kind', type: { type: 'enum', name: 'RecordKind', symbols: ['usage', 'job_status'] } },
    {
      name: 'ingest',
      type: {
        type: 'record',
        name: 'IngestFacts',
        fields: [
          { name: 'received_at', type: 'string' },
          { name: 'org_id', type: 'string' },
          { name: 'clock_skew_ms', type: 'double' },
          { name: 'redacted_segments', type: { type: 'array', items: 'string' } },
          { name: 'flags', type: { type: 'array', items: 'string' } },
          { name: 'original_sha256', ...opt('string') },
          {
            name: 'batch',
            ...opt({
              type: 'record',
              name: 'BatchProof',
              fields: [
                { name: 'key_id', type: 'string' },
                { name: 'root', type: 'string' },
                { name: 'signature', type: 'string' },
                { name: 'leaf_index', type: 'long' },
                { name: 'tree_size', type: 'long' },
                { name: 'path', type: { type: 'array', items: 'string' } },
              ],
            }),
          },
        ],
      },
    },
    { name: 'usage', ...opt(usageEvent) },
    { name: 'job_status', ...opt(jobStatusEvent) },
  ],
} as const;
