import { baseConfig, DEFAULT_IN_FLIGHT_MS, intFromEnv, type BaseConfig } from '@kaching/contracts';

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
  /** API_TLS_CERT / API_TLS_KEY (PEM files): serve HTTPS; session cookies are then Secure and __Host- prefixed. */
  tls?: { certFile: string; keyFile: string };
  /** API_TRUST_PROXY: honour X-Forwarded-For/-Proto from a TLS-terminating proxy (true, or its addresses/CIDRs). */
  trustProxy: boolean | string;
  /** Browser and token sessions: absolute lifetime and idle timeout (API_SESSION_TTL_S, API_SESSION_IDLE_S). */
  session: { ttlS: number; idleS: number };
  /** How long a JWT's session check is cached (API_SESSION_CACHE_TTL_MS): a revocation elsewhere bites within it. */
  sessionCacheTtlMs: number;
  /** Lifetime of a bearer JWT (API_JWT_TTL_S). */
  jwtTtlS: number;
  /** INGEST_MAX_AGE_MS, as ingest reads it: an agent key registered without valid_from is valid from now minus this. */
  keyInFlightMs: number;
  /** Sign-in attempts per account and per source address per window (API_SIGNIN_*). */
  signin: { accountLimit: number; sourceLimit: number; windowS: number };
  /** API_FEATURES_SWEEP_MS (60000; 0 = off): how often the features KV bucket is checked against the database (fills it, follows license expiry). */
  featuresSweepMs: number;
}

function trustProxyFromEnv(raw: string | undefined): boolean | string {
  if (!raw || raw === '0' || raw === 'false') return false;
  if (raw === '1' || raw === 'true') return true;
  return raw;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const cert = env.API_TLS_CERT;
  const key = env.API_TLS_KEY;
  if (Boolean(cert) !== Boolean(key)) throw new Error('API_TLS_CERT and API_TLS_KEY go together: set both or neither');
  return {
    ...baseConfig(env),
    port: intFromEnv(env, 'API_PORT', 7071),
    host: env.API_HOST || '127.0.0.1',
    licensePublicKey: env.KACHING_LICENSE_PUBLIC_KEY ?? '',
    admissionTimeoutMs: intFromEnv(env, 'API_ADMISSION_TIMEOUT_MS', 2000),
    bodyLimit: intFromEnv(env, 'API_BODY_LIMIT', 256 * 1024),
    ...(cert && key ? { tls: { certFile: cert, keyFile: key } } : {}),
    trustProxy: trustProxyFromEnv(env.API_TRUST_PROXY),
    session: { ttlS: intFromEnv(env, 'API_SESSION_TTL_S', 12 * 3600), idleS: intFromEnv(env, 'API_SESSION_IDLE_S', 3600) },
    sessionCacheTtlMs: intFromEnv(env, 'API_SESSION_CACHE_TTL_MS', 5_000),
    jwtTtlS: intFromEnv(env, 'API_JWT_TTL_S', 900),
    keyInFlightMs: intFromEnv(env, 'INGEST_MAX_AGE_MS', DEFAULT_IN_FLIGHT_MS),
    signin: {
      accountLimit: intFromEnv(env, 'API_SIGNIN_ACCOUNT_LIMIT', 5),
      sourceLimit: intFromEnv(env, 'API_SIGNIN_SOURCE_LIMIT', 50),
      windowS: intFromEnv(env, 'API_SIGNIN_WINDOW_S', 900),
    },
    featuresSweepMs: intFromEnv(env, 'API_FEATURES_SWEEP_MS', 60_000),
  };
}
