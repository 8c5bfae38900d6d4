import { parseRetentionMonths } from './maintenance.js';
import { ARCHIVE_LAG_ALERT_AFTER_DEFAULT_MS, ARCHIVE_LAG_ALERT_DEFAULT, baseConfig, durationFromEnv, intFromEnv, PROJECTIONS, type BaseConfig, type ProjectionName } from '@kaching/contracts';

export interface ProjectorConfig extends BaseConfig {
  /** /metrics, /healthz, /readyz. 0 picks a free port. */
  port: number;
  host: string;
  /** Messages fetched and applied per transaction. */
  batchSize: number;
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
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ProjectorConfig {
  const list = (env.PROJECTOR_PROJECTIONS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const p of list) {
    if (!PROJECTIONS.includes(p as ProjectionName)) throw new Error(`PROJECTOR_PROJECTIONS: unknown projection "${p}"`);
  }
  const batchSize = intFromEnv(env, 'PROJECTOR_BATCH_SIZE', 2000);
  if (batchSize < 1) throw new Error('PROJECTOR_BATCH_SIZE must be at least 1');
  return {
    ...baseConfig(env),
    port: intFromEnv(env, 'PROJECTOR_PORT', 7072),
    host: env.PROJECTOR_HOST || '0.0.0.0',
    batchSize,
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
  };
}
