import { baseConfig, intFromEnv, type BaseConfig } from '@kaching/contracts';

export interface ApiConfig extends BaseConfig {
  /** API_PORT (7071); 0 picks a free port. */
  port: number;
  host: string;
  /** Vendor Ed25519 public key (base64) that licenses must verify against; empty disables activation. */
  licensePublicKey: string;
  /** How long POST /v1/budget/check waits for the enforcer before answering 503. */
  admissionTimeoutMs: number;
  /** Largest request body accepted (bytes). */
  bodyLimit: number;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  return {
    ...baseConfig(env),
    port: intFromEnv(env, 'API_PORT', 7071),
    host: env.API_HOST || '127.0.0.1',
    licensePublicKey: env.KACHING_LICENSE_PUBLIC_KEY ?? '',
    admissionTimeoutMs: intFromEnv(env, 'API_ADMISSION_TIMEOUT_MS', 2000),
    bodyLimit: intFromEnv(env, 'API_BODY_LIMIT', 256 * 1024),
  };
}
