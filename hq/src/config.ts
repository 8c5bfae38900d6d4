import { baseConfig, intFromEnv, type BaseConfig } from '@kaching/contracts';

/** The installation side: pushing redacted daily rollups to HQ over mTLS. */
export interface SyncConfig {
  /** KACHING_HQ_URL, e.g. https://hq.example.com:7074 (https only: the client certificate is the credential). */
  url: string;
  /** KACHING_HQ_INTERVAL_MS: time between pushes (default 6 h). */
  intervalMs: number;
  /** KACHING_HQ_RETRY_MIN_MS: first retry after a failed push; doubles up to the interval. */
  retryMinMs: number;
  /** KACHING_HQ_BATCH_ROWS: rows per request (at most 1000). */
  batchRows: number;
  /** KACHING_HQ_TIMEOUT_MS: one request's deadline. */
  timeoutMs: number;
  /** KACHING_HQ_TLS_CERT / _KEY: the installation's client certificate; KACHING_HQ_TLS_CA: HQ's CA (default: system CAs). */
  tls: { certFile: string; keyFile: string; caFile?: string };
}

/** The HQ side (KACHING_ROLE=hq): receiving pushes over mTLS. */
export interface ReceiverConfig {
  /** HQ_PORT (7074); 0 picks a free port. */
  port: number;
  host: string;
  /** HQ_TLS_CERT / HQ_TLS_KEY: HQ's server certificate; HQ_TLS_CLIENT_CA: the CA that signs installations' client certificates. */
  tls: { certFile: string; keyFile: string; clientCaFile: string };
  bodyLimit: number;
}

export interface HqConfig extends BaseConfig {
  /** KACHING_ROLE: `installation` (default) or `hq`. */
  role: 'installation' | 'hq';
  /** Present when KACHING_HQ_URL is set. */
  sync?: SyncConfig;
  /** Present when KACHING_ROLE=hq. */
  receiver?: ReceiverConfig;
}

export const HQ_DEFAULT_INTERVAL_MS = 6 * 3600_000;

function required(env: NodeJS.ProcessEnv, key: string, why: string): string {
  const v = env[key];
  if (!v) throw new Error(`${key} is required ${why}`);
  return v;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): HqConfig {
  const role = env.KACHING_ROLE || 'installation';
  if (role !== 'installation' && role !== 'hq') throw new Error(`KACHING_ROLE="${role}" must be installation or hq`);
  const config: HqConfig = { ...baseConfig(env), role };
  if (env.KACHING_HQ_URL) {
    const url = env.KACHING_HQ_URL.replace(/\/+$/, '');
    if (!/^https:\/\/[^/]+/.test(url)) throw new Error(`KACHING_HQ_URL="${url}" must be an https:// URL (the push is mutually authenticated TLS)`);
    const batchRows = intFromEnv(env, 'KACHING_HQ_BATCH_ROWS', 500);
    if (batchRows < 1 || batchRows > 1000) throw new Error('KACHING_HQ_BATCH_ROWS must be 1..1000');
    const why = 'with KACHING_HQ_URL (the installation authenticates to HQ with its client certificate)';
    config.sync = {
      url,
      intervalMs: Math.max(1, intFromEnv(env, 'KACHING_HQ_INTERVAL_MS', HQ_DEFAULT_INTERVAL_MS)),
      retryMinMs: Math.max(1, intFromEnv(env, 'KACHING_HQ_RETRY_MIN_MS', 10_000)),
      batchRows,
      timeoutMs: intFromEnv(env, 'KACHING_HQ_TIMEOUT_MS', 30_000),
      tls: {
        certFile: required(env, 'KACHING_HQ_TLS_CERT', why),
        keyFile: required(env, 'KACHING_HQ_TLS_KEY', why),
        ...(env.KACHING_HQ_TLS_CA ? { caFile: env.KACHING_HQ_TLS_CA } : {}),
      },
    };
  }
  if (role === 'hq') {
    const why = 'with KACHING_ROLE=hq (HQ accepts pushes over mutually authenticated TLS only)';
    config.receiver = {
      port: intFromEnv(env, 'HQ_PORT', 7074),
      host: env.HQ_HOST || '0.0.0.0',
      tls: { certFile: required(env, 'HQ_TLS_CERT', why), keyFile: required(env, 'HQ_TLS_KEY', why), clientCaFile: required(env, 'HQ_TLS_CLIENT_CA', why) },
      bodyLimit: intFromEnv(env, 'HQ_BODY_LIMIT', 4 * 1024 * 1024),
    };
  }
  return config;
}
