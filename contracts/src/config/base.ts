import { DEFAULT_NAMESPACE, isValidNamespace } from '../names/names.js';
import { natsSecurityFromEnv, type NatsSecurity } from '../nats/connect.js';

/** Settings every service and command reads. Package configs extend this. */
export interface BaseConfig {
  natsUrl: string;
  databaseUrl: string;
  namespace: string;
  logLevel: string;
  /** KACHING_PARTITIONS: partition count written when none is recorded yet (then `kaching partitions set`). */
  partitions?: number;
  /** KACHING_LEASE_MS: a consumer lane's lease (and an instance's registration) lasts this long without renewal. */
  leaseMs?: number;
  /** KACHING_STREAM_REPLICAS: replicas of the streams and KV buckets (1 standalone, 3 on a cluster). */
  streamReplicas?: number;
  /** NATS_TLS_CA / NATS_TLS_CERT / NATS_TLS_KEY and NATS_USER / NATS_PASSWORD or NATS_CREDS (see nats/connect.ts). */
  natsSecurity?: NatsSecurity;
}

export const CONSUMER_DEFAULTS = { partitions: 1, leaseMs: 10_000, streamReplicas: 1 } as const;

export const BASE_DEFAULTS: BaseConfig = {
  natsUrl: 'nats://127.0.0.1:4222',
  databaseUrl: 'postgres://root@127.0.0.1:5432/kaching',
  namespace: DEFAULT_NAMESPACE,
  logLevel: 'info',
};

export function baseConfig(env: NodeJS.ProcessEnv = process.env): BaseConfig {
  const namespace = env.KACHING_NAMESPACE || BASE_DEFAULTS.namespace;
  if (!isValidNamespace(namespace)) {
    throw new Error(`KACHING_NAMESPACE="${namespace}" is invalid: lower-case letter first, then [a-z0-9_], at most 31 characters`);
  }
  return {
    natsUrl: env.NATS_URL || BASE_DEFAULTS.natsUrl,
    databaseUrl: env.DATABASE_URL || BASE_DEFAULTS.databaseUrl,
    namespace,
    logLevel: env.LOG_LEVEL || BASE_DEFAULTS.logLevel,
    partitions: positive(env, 'KACHING_PARTITIONS', CONSUMER_DEFAULTS.partitions),
    leaseMs: positive(env, 'KACHING_LEASE_MS', CONSUMER_DEFAULTS.leaseMs),
    streamReplicas: positive(env, 'KACHING_STREAM_REPLICAS', CONSUMER_DEFAULTS.streamReplicas),
    natsSecurity: natsSecurityFromEnv(env),
  };
}

/** Reads a positive integer setting, failing loudly on garbage instead of silently using NaN. */
export function intFromEnv(env: NodeJS.ProcessEnv, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${key}="${raw}" must be a non-negative integer`);
  return n;
}

function positive(env: NodeJS.ProcessEnv, key: string, fallback: number): number {
  const n = intFromEnv(env, key, fallback);
  if (n < 1) throw new Error(`${key} must be at least 1`);
  return n;
}
