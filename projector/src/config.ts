import { parseRetentionMonths } from './maintenance.js';
import { ARCHIVE_LAG_ALERT_AFTER_DEFAULT_MS, ARCHIVE_LAG_ALERT_DEFAULT, baseConfig, durationFromEnv, intFromEnv, PROJECTIONS, type BaseConfig, type ProjectionName } from '@kaching/contracts';

export interface ProjectorConfig extends BaseConfig {
  /** /metrics, /healthz, /readyz. 0 picks a free port. */
  port: number;
  host: string;
  /** Messages fetched and applied per transaction. */
  batchSize: number;
  /** PROJECTOR_FILL_MS: how long a caught-up lane lets a partial batch wait for more (see RunnerOptions.fillMs). */
  fillMs: number;
  /** usage_sample partitions older than this many days are dropped. */
  retentionDays: number;
  /** Rollups and the concurrency index are kept this many months (PROJECTOR_ROLLUP_RETENTION, default 24mo). */
  rollupRetentionMonths: number;
  /** Daily partitions created ahead of today. */
  partitionsAhead: number;
  /** Which projections this process runs (a deployment may run one per process). */
  projections: ProjectionName[];
  /** How long the server waits for an ack before redelivering (used when the durable consumer is created). */
  ackWaitMs: number;
  /** Maintenance (partitions ahead, retention) period. */
  maintenanceIntervalMs: number;
  /** How often to look whether the price book changed (then stored costs are re-priced). Default 2 s. */
  repriceIntervalMs?: number;
  /** KACHING_ARCHIVE_CHECK_MS: how often the raw projector measures the archive's lag (0: never). Default 30 s. */
  archiveCheckMs?: number;
  /** KACHING_ARCHIVE_LAG_ALERT_EVENTS: unarchived events that raise the archive lag alert. */
  archiveLagAlertEvents?: number;
  /** KACHING_ARCHIVE_LAG_ALERT_AFTER: ... for this long (default 5m). */
  archiveLagAlertAfterMs?: number;
  /** Billing forwarding (BILLING_SERVICE_URL set); null: no billing records are enqueued or sent. */
  billing?: BillingConfig | null;
}

export const BILLING_FORMATS = ['json', 'cloudevents', 'stripe'] as const;
export type BillingFormat = (typeof BILLING_FORMATS)[number];

export interface BillingConfig {
  /** BILLING_SERVICE_URL: every record is POSTed to exactly this URL. */
  url: string;
  /** BILLING_SERVICE_TOKEN: sent as `Authorization: Bearer <token>`; never logged. */
  token?: string;
  /** BILLING_FORMAT: json (default) | cloudevents | stripe. */
  format: BillingFormat;
  /** BILLING_EVENT_NAME: CloudEvents `type` / Stripe `event_name` (defaults per format). */
  eventName: string;
  /** BILLING_SOURCE: CloudEvents `source` (default kaching/<namespace>). */
  source: string;
  /** BILLING_MAX_ATTEMPTS (10): a record failing this many times goes to dead-letter. */
  maxAttempts: number;
  /** BILLING_RETRY_BASE_MS (1000) doubling per attempt up to BILLING_RETRY_MAX_MS (300000). */
  retryBaseMs: number;
  retryMaxMs: number;
  /** BILLING_POLL_MS (1000): how often the forwarder looks for due records. */
  pollMs: number;
  /** BILLING_TIMEOUT_MS (10000): one request's timeout. */
  timeoutMs: number;
  /** BILLING_BATCH_SIZE (20): records claimed (and sent concurrently) per round. */
  batchSize: number;
  /** BILLING_CLOUDEVENTS_BATCH (false): with format cloudevents, send each round's records as one batch request. */
  cloudeventsBatch: boolean;
  /** BILLING_SENT_RETENTION_DAYS (30): sent records older than this are deleted (0 keeps them); dead ones stay. */
  sentRetentionDays: number;
}

export function loadBillingConfig(env: NodeJS.ProcessEnv, namespace: string): BillingConfig | null {
  const url = env.BILLING_SERVICE_URL?.trim();
  if (!url) return null;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error('BILLING_SERVICE_URL must be an absolute http(s) URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('BILLING_SERVICE_URL must be an absolute http(s) URL');
  const format = (env.BILLING_FORMAT || 'json') as BillingFormat;
  if (!BILLING_FORMATS.includes(format)) throw new Error(`BILLING_FORMAT must be one of ${BILLING_FORMATS.join(', ')}`);
  const maxAttempts = intFromEnv(env, 'BILLING_MAX_ATTEMPTS', 10);
  if (maxAttempts < 1) throw new Error('BILLING_MAX_ATTEMPTS must be at least 1');
  const batchSize = intFromEnv(env, 'BILLING_BATCH_SIZE', 20);
  if (batchSize < 1) throw new Error('BILLING_BATCH_SIZE must be at least 1');
  return {
    url,
    ...(env.BILLING_SERVICE_TOKEN ? { token: env.BILLING_SERVICE_TOKEN } : {}),
    format,
    eventName: env.BILLING_EVENT_NAME || (format === 'stripe' ? 'kaching_cost_micro_usd' : 'io.kaching.run.cost'),
    source: env.BILLING_SOURCE || `kaching/${namespace}`,
    maxAttempts,
    retryBaseMs: intFromEnv(env, 'BILLING_RETRY_BASE_MS', 1000),
    retryMaxMs: intFromEnv(env, 'BILLING_RETRY_MAX_MS', 300_000),
    pollMs: Math.max(10, intFromEnv(env, 'BILLING_POLL_MS', 1000)),
    timeoutMs: Math.max(100, intFromEnv(env, 'BILLING_TIMEOUT_MS', 10_000)),
    batchSize,
    cloudeventsBatch: ['1', 'true'].includes((env.BILLING_CLOUDEVENTS_BATCH ?? '').toLowerCase()),
    sentRetentionDays: intFromEnv(env, 'BILLING_SENT_RETENTION_DAYS', 30),
  };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ProjectorConfig {
  const list = (env.PROJECTOR_PROJECTIONS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const p of list) {
    if (!PROJECTIONS.includes(p as ProjectionName)) throw new Error(`PROJECTOR_PROJECTIONS: unknown projection "${p}"`);
  }
  const batchSize = intFromEnv(env, 'PROJECTOR_BATCH_SIZE', 2000);
  if (batchSize < 1) throw new Error('PROJECTOR_BATCH_SIZE must be at least 1');
  const base = baseConfig(env);
  return {
    ...base,
    port: intFromEnv(env, 'PROJECTOR_PORT', 7072),
    host: env.PROJECTOR_HOST || '0.0.0.0',
    batchSize,
    fillMs: intFromEnv(env, 'PROJECTOR_FILL_MS', 0),
    retentionDays: intFromEnv(env, 'PROJECTOR_RETENTION_DAYS', 30),
    partitionsAhead: intFromEnv(env, 'PROJECTOR_PARTITIONS_AHEAD', 7),
    rollupRetentionMonths: parseRetentionMonths(env.PROJECTOR_ROLLUP_RETENTION),
    projections: list.length ? (list as ProjectionName[]) : [...PROJECTIONS],
    ackWaitMs: intFromEnv(env, 'PROJECTOR_ACK_WAIT_MS', 30_000),
    maintenanceIntervalMs: intFromEnv(env, 'PROJECTOR_MAINTENANCE_INTERVAL_MS', 3_600_000),
    repriceIntervalMs: intFromEnv(env, 'PROJECTOR_REPRICE_INTERVAL_MS', 2000),
    archiveCheckMs: intFromEnv(env, 'KACHING_ARCHIVE_CHECK_MS', 30_000),
    archiveLagAlertAfterMs: durationFromEnv(env, 'KACHING_ARCHIVE_LAG_ALERT_AFTER', ARCHIVE_LAG_ALERT_AFTER_DEFAULT_MS),
    archiveLagAlertEvents: intFromEnv(env, 'KACHING_ARCHIVE_LAG_ALERT_EVENTS', ARCHIVE_LAG_ALERT_DEFAULT) || ARCHIVE_LAG_ALERT_DEFAULT,
    billing: loadBillingConfig(env, base.namespace),
  };
}
