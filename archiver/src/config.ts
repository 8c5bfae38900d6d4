import { join, resolve } from 'node:path';
import { ARCHIVE_LAG_ALERT_AFTER_DEFAULT_MS, ARCHIVE_LAG_ALERT_DEFAULT, baseConfig, durationFromEnv, intFromEnv, type BaseConfig } from '@kaching/contracts';

export interface S3Settings {
  bucket: string;
  prefix: string;
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface ArchiverConfig extends BaseConfig {
  port: number;
  host: string;
  /** KACHING_ARCHIVE_DIR: the local archive (default $KACHING_HOME/archive); unused when s3 is set. */
  archiveDir: string;
  /** KACHING_ARCHIVE_URL=s3://bucket/prefix (+ KACHING_ARCHIVE_S3_ENDPOINT, _REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). */
  s3: S3Settings | null;
  /** KACHING_ARCHIVE_SEGMENT_EVENTS: a segment closes after this many events (default 100 000). */
  segmentEvents: number;
  /** KACHING_ARCHIVE_SEGMENT_SECONDS: ... or this long after its first event arrived (default 300). */
  segmentSeconds: number;
  /** KACHING_HOT_RETENTION: how long the stream keeps an event after it is archived (default 30d). */
  hotRetentionMs: number;
  /** KACHING_ARCHIVE_LAG_ALERT_EVENTS: unarchived events that raise the lag alert (default 10 000). */
  lagAlertEvents: number;
  /** KACHING_ARCHIVE_LAG_ALERT_AFTER: ... for this long (default 5m). */
  lagAlertAfterMs: number;
  /** ARCHIVER_CHECK_MS: how often the archiver measures its lag and purges (default 15 s). */
  checkIntervalMs: number;
  batchSize: number;
}

export function parseArchiveUrl(url: string, env: NodeJS.ProcessEnv): S3Settings {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new Error(`KACHING_ARCHIVE_URL="${url}" must be s3://bucket[/prefix]`);
  const region = env.KACHING_ARCHIVE_S3_REGION || env.AWS_REGION || 'us-east-1';
  return {
    bucket: m[1]!,
    prefix: (m[2] ?? '').replace(/^\/+|\/+$/g, ''),
    endpoint: (env.KACHING_ARCHIVE_S3_ENDPOINT || `https://s3.${region}.amazonaws.com`).replace(/\/+$/, ''),
    region,
    accessKeyId: env.AWS_ACCESS_KEY_ID || '',
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY || '',
  };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ArchiverConfig {
  const home = env.KACHING_HOME || resolve('.kaching');
  return {
    ...baseConfig(env),
    port: intFromEnv(env, 'ARCHIVER_PORT', 7075),
    host: env.ARCHIVER_HOST || '0.0.0.0',
    archiveDir: env.KACHING_ARCHIVE_DIR || join(home, 'archive'),
    s3: env.KACHING_ARCHIVE_URL ? parseArchiveUrl(env.KACHING_ARCHIVE_URL, env) : null,
    segmentEvents: intFromEnv(env, 'KACHING_ARCHIVE_SEGMENT_EVENTS', 100_000) || 100_000,
    segmentSeconds: intFromEnv(env, 'KACHING_ARCHIVE_SEGMENT_SECONDS', 300) || 300,
    hotRetentionMs: durationFromEnv(env, 'KACHING_HOT_RETENTION', 30 * 86_400_000),
    lagAlertEvents: intFromEnv(env, 'KACHING_ARCHIVE_LAG_ALERT_EVENTS', ARCHIVE_LAG_ALERT_DEFAULT) || ARCHIVE_LAG_ALERT_DEFAULT,
    lagAlertAfterMs: durationFromEnv(env, 'KACHING_ARCHIVE_LAG_ALERT_AFTER', ARCHIVE_LAG_ALERT_AFTER_DEFAULT_MS),
    checkIntervalMs: intFromEnv(env, 'ARCHIVER_CHECK_MS', 15_000) || 15_000,
    batchSize: intFromEnv(env, 'ARCHIVER_BATCH', 1000) || 1000,
  };
}
