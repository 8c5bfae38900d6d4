import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';

/** NATS_URL may list several servers (a cluster), comma-separated. */
export function natsServers(url: string): string[] {
  return url.split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * How a KACHING process proves itself to NATS (deploy/nats/secure.conf): TLS (server verified against
 * NATS_TLS_CA, optional client certificate NATS_TLS_CERT/NATS_TLS_KEY) and a user, either
 * NATS_USER/NATS_PASSWORD or a decentralised-auth NATS_CREDS file.
 */
export interface NatsSecurity {
  tlsCaFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  user?: string;
  password?: string;
  credsFile?: string;
}

export function natsSecurityFromEnv(env: NodeJS.ProcessEnv = process.env): NatsSecurity {
  const s: NatsSecurity = {};
  if (env.NATS_TLS_CA) s.tlsCaFile = env.NATS_TLS_CA;
  if (env.NATS_TLS_CERT) s.tlsCertFile = env.NATS_TLS_CERT;
  if (env.NATS_TLS_KEY) s.tlsKeyFile = env.NATS_TLS_KEY;
  if (env.NATS_USER) s.user = env.NATS_USER;
  if (env.NATS_PASSWORD) s.password = env.NATS_PASSWORD;
  if (env.NATS_CREDS) s.credsFile = env.NATS_CREDS;
  if (!s.tlsCertFile !== !s.tlsKeyFile) throw new Error('NATS_TLS_CERT and NATS_TLS_KEY go together');
  if (s.password && !s.user) throw new Error('NATS_PASSWORD needs NATS_USER');
  if (s.credsFile && s.user) throw new Error('NATS_CREDS and NATS_USER are alternatives; set one');
  return s;
}

/** Connection options for a NatsSecurity; files are read now, so a wrong path fails at start-up. */
export function natsSecurityOptions(s: NatsSecurity): Partial<ConnectionOptions> {
  const o: Partial<ConnectionOptions> = {};
  if (s.tlsCaFile || s.tlsCertFile) {
    o.tls = {
      ...(s.tlsCaFile ? { ca: readFileSync(s.tlsCaFile, 'utf8') } : {}),
      ...(s.tlsCertFile ? { cert: readFileSync(s.tlsCertFile, 'utf8'), key: readFileSync(s.tlsKeyFile!, 'utf8') } : {}),
    };
  }
  if (s.user) {
    o.user = s.user;
    if (s.password) o.pass = s.password;
  }
  if (s.credsFile) o.authenticator = credsAuthenticator(new Uint8Array(readFileSync(s.credsFile)));
  return o;
}

/**
 * A connection to NATS_URL's servers. Services keep theirs for their whole life, so by default it reconnects
 * for ever (nats.js gives up after 10 attempts, about 20 s, and a service would then sit dead); a one-shot
 * command passes its own limits. TLS and credentials come from `security`, by default from the NATS_TLS_* /
 * NATS_USER / NATS_PASSWORD / NATS_CREDS environment, so every service and command honours them.
 */
export function connectNats(url: string, opts: Partial<ConnectionOptions> = {}, security?: NatsSecurity): Promise<NatsConnection> {
  const sec = natsSecurityOptions(security ?? natsSecurityFromEnv());
  return connect({ maxReconnectAttempts: -1, reconnectTimeWait: 1000, ...sec, ...opts, servers: natsServers(url) });
}
