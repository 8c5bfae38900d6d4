import { readFileSync } from 'node:fs';
import { baseConfig, decodeBase64Strict, intFromEnv, type BaseConfig } from '@kaching/contracts';

export interface EnforcerConfig extends BaseConfig {
  port: number;
  host: string;
  /** Vendor Ed25519 public key (base64 of 32 bytes) licenses are verified against; null when not configured. */
  licensePublicKey: string | null;
  batchSize: number;
  /** ENFORCER_FILL_MS: how long a caught-up lane lets a partial batch wait for more (decisions wait at most this much longer). */
  fillMs?: number;
  /** How often to look whether the price book changed (then the ledger is re-priced). Default 2 s. */
  repriceIntervalMs?: number;
  /** Channel deliveries (ENFORCER_NOTIFY_*): poll interval, HTTP timeout, backoff base/cap, give-up age. */
  notify?: { intervalMs: number; timeoutMs: number; backoffBaseMs: number; backoffMaxMs: number; giveUpAfterMs: number };
  /** KACHING_ARCHIVE_DIR: the archive a lane reads history from when its checkpoint is older than the stream (default: the archiver's). */
  archiveDir?: string;
  /** Test hook: stop abruptly after committing this many batches (no ack, no publish) to simulate a crash. */
  crashAfterBatches?: number;
}

export const ENFORCER_FILL_MS_DEFAULT = 0;

/** ENFORCER_PORT (7073), ENFORCER_HOST, KACHING_LICENSE_PUBLIC_KEY (base64) or KACHING_LICENSE_PUBLIC_KEY_FILE, ENFORCER_BATCH. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): EnforcerConfig {
  let key = env.KACHING_LICENSE_PUBLIC_KEY?.trim() || null;
  if (!key && env.KACHING_LICENSE_PUBLIC_KEY_FILE) key = readFileSync(env.KACHING_LICENSE_PUBLIC_KEY_FILE, 'utf8').trim();
  if (key && !isPublicKey(key)) key = readFileSync(key, 'utf8').trim();
  return {
    ...baseConfig(env),
    port: intFromEnv(env, 'ENFORCER_PORT', 7073),
    host: env.ENFORCER_HOST || '0.0.0.0',
    licensePublicKey: key,
    ...(env.KACHING_ARCHIVE_DIR ? { archiveDir: env.KACHING_ARCHIVE_DIR } : {}),
    batchSize: intFromEnv(env, 'ENFORCER_BATCH', 200) || 200,
    fillMs: intFromEnv(env, 'ENFORCER_FILL_MS', ENFORCER_FILL_MS_DEFAULT),
    repriceIntervalMs: intFromEnv(env, 'ENFORCER_REPRICE_INTERVAL_MS', 2000),
    notify: {
      intervalMs: intFromEnv(env, 'ENFORCER_NOTIFY_INTERVAL_MS', 1000) || 1000,
      timeoutMs: intFromEnv(env, 'ENFORCER_NOTIFY_TIMEOUT_MS', 5000) || 5000,
      backoffBaseMs: intFromEnv(env, 'ENFORCER_NOTIFY_BACKOFF_BASE_MS', 1000) || 1000,
      backoffMaxMs: intFromEnv(env, 'ENFORCER_NOTIFY_BACKOFF_MAX_MS', 300_000) || 300_000,
      giveUpAfterMs: (intFromEnv(env, 'ENFORCER_NOTIFY_GIVE_UP_S', 3 * 86_400) || 3 * 86_400) * 1000,
    },
  };
}

/** A base64 Ed25519 public key (32 bytes); anything else given as a key is taken as a path to a file holding one. Base64 may start with '/', so the shape decides, not the first character. */
export function isPublicKey(value: string): boolean {
  return decodeBase64Strict(value)?.length === 32;
}
