import { availableParallelism } from 'node:os';
import { baseConfig, intFromEnv, EVENTS_STREAM_DEFAULTS, DEFAULT_REPORT_MAX_AGE_MS, type BaseConfig } from '@kaching/contracts';

export interface IngestConfig extends BaseConfig {
  /** HTTP bridge port; 0 picks a free one. */
  port: number;
  host: string;
  /** Largest accepted request body (HTTP and NATS). */
  bodyLimitBytes: number;
  /** Most events one batch may hold. */
  batchMax: number;
  /** Per-token token bucket: events per second refilled, and bucket size. 0 disables the limit. */
  rateLimitPerSec: number;
  rateLimitBurst: number;
  /** ended_at may precede started_at by this much (accepted and flagged). */
  maxSkewMs: number;
  /** Timestamps may lie this far ahead of the ingest clock. */
  maxFutureMs: number;
  /** Events older than this are refused (the stream would drop them anyway). */
  maxAgeMs: number;
  /** How long token and key lookups are cached (revocations take effect within this time). */
  authCacheTtlMs: number;
  duplicateWindowMs: number;
  streamMaxAgeMs: number;
  /** How long to wait for a PubAck before answering 503. */
  publishTimeoutMs: number;
  /** Retry-After (s) sent with 503 STREAM_UNAVAILABLE. */
  retryAfterS: number;
  /** Ed25519 verification threads; 0 verifies on the event loop. */
  verifyWorkers: number;
  /** Serve NATS requests on names.ingestWildcard. */
  natsService: boolean;
  /** HTTPS instead of HTTP (INGEST_TLS_CERT + INGEST_TLS_KEY); with clientCaFile, mTLS. */
  tls?: IngestTlsConfig;
}

export interface IngestTlsConfig {
  certFile: string;
  keyFile: string;
  /** INGEST_TLS_CLIENT_CA: demand a client certificate from this CA, and check it is bound to the token's deployment. */
  clientCaFile?: string;
  /** INGEST_TLS_REQUIRE_BINDING (default 1): refuse tokens of deployments with no bound certificate. */
  requireBinding: boolean;
}

/** Reads the TLS settings; half a pair or a client CA without a server certificate is a configuration error. */
export function tlsFromEnv(env: NodeJS.ProcessEnv): IngestTlsConfig | undefined {
  const certFile = env.INGEST_TLS_CERT || undefined;
  const keyFile = env.INGEST_TLS_KEY || undefined;
  const clientCaFile = env.INGEST_TLS_CLIENT_CA || undefined;
  if (!certFile !== !keyFile) throw new Error('INGEST_TLS_CERT and INGEST_TLS_KEY go together');
  if (!certFile || !keyFile) {
    if (clientCaFile) throw new Error('INGEST_TLS_CLIENT_CA needs INGEST_TLS_CERT and INGEST_TLS_KEY (mTLS is a TLS server)');
    return undefined;
  }
  const rb = env.INGEST_TLS_REQUIRE_BINDING;
  if (rb !== undefined && rb !== '' && rb !== '0' && rb !== '1') throw new Error(`INGEST_TLS_REQUIRE_BINDING="${rb}" must be 0 or 1`);
  return { certFile, keyFile, ...(clientCaFile ? { clientCaFile } : {}), requireBinding: rb !== '0' };
}

const MIN = 60_000;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): IngestConfig {
  const base = baseConfig(env);
  const rate = intFromEnv(env, 'INGEST_RATE_LIMIT_PER_S', 50_000);
  const streamMaxAgeMs = intFromEnv(env, 'INGEST_STREAM_MAX_AGE_MS', EVENTS_STREAM_DEFAULTS.maxAgeMs);
  return {
    ...base,
    port: intFromEnv(env, 'INGEST_PORT', 7070),
    host: env.INGEST_HOST || '0.0.0.0',
    bodyLimitBytes: intFromEnv(env, 'INGEST_BODY_LIMIT_BYTES', 4 * 1024 * 1024),
    batchMax: intFromEnv(env, 'INGEST_BATCH_MAX', 1000),
    rateLimitPerSec: rate,
    rateLimitBurst: intFromEnv(env, 'INGEST_RATE_LIMIT_BURST', Math.max(rate * 2, 1000)),
    maxSkewMs: intFromEnv(env, 'INGEST_MAX_SKEW_MS', 5 * MIN),
    maxFutureMs: intFromEnv(env, 'INGEST_MAX_FUTURE_MS', 5 * MIN),
    maxAgeMs: intFromEnv(env, 'INGEST_MAX_AGE_MS', streamMaxAgeMs || DEFAULT_REPORT_MAX_AGE_MS),
    authCacheTtlMs: intFromEnv(env, 'INGEST_AUTH_CACHE_TTL_MS', 5_000),
    duplicateWindowMs: intFromEnv(env, 'INGEST_DUPLICATE_WINDOW_MS', EVENTS_STREAM_DEFAULTS.duplicateWindowMs),
    streamMaxAgeMs,
    publishTimeoutMs: intFromEnv(env, 'INGEST_PUBLISH_TIMEOUT_MS', 5_000),
    retryAfterS: intFromEnv(env, 'INGEST_RETRY_AFTER_S', 2),
    verifyWorkers: intFromEnv(env, 'INGEST_VERIFY_WORKERS', Math.max(1, availableParallelism() - 1)),
    natsService: env.INGEST_NATS_SERVICE !== '0',
    tls: tlsFromEnv(env),
  };
}
