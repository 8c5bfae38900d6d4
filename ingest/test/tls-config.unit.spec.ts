import { describe, expect, it } from 'vitest';
import { natsSecurityFromEnv } from '@kaching/contracts';
import { loadConfig } from '@kaching/ingest';
import type pg from 'pg';
import { CertBindings } from '../src/auth/certBindings.js';

describe('TLS settings', () => {
  it('ingest: HTTPS with cert+key, mTLS with a client CA, binding required unless INGEST_TLS_REQUIRE_BINDING=0', () => {
    expect(loadConfig({}).tls).toBeUndefined();
    expect(loadConfig({ INGEST_TLS_CERT: 'c.pem', INGEST_TLS_KEY: 'k.pem' }).tls).toEqual({ certFile: 'c.pem', keyFile: 'k.pem', requireBinding: true });
    expect(loadConfig({ INGEST_TLS_CERT: 'c', INGEST_TLS_KEY: 'k', INGEST_TLS_CLIENT_CA: 'ca', INGEST_TLS_REQUIRE_BINDING: '0' }).tls).toEqual({
      certFile: 'c',
      keyFile: 'k',
      clientCaFile: 'ca',
      requireBinding: false,
    });
    expect(() => loadConfig({ INGEST_TLS_CERT: 'c' })).toThrow(/go together/);
    expect(() => loadConfig({ INGEST_TLS_CLIENT_CA: 'ca' })).toThrow(/needs INGEST_TLS_CERT/);
    expect(() => loadConfig({ INGEST_TLS_CERT: 'c', INGEST_TLS_KEY: 'k', INGEST_TLS_REQUIRE_BINDING: 'yes' })).toThrow(/0 or 1/);
  });

  it('NATS: TLS files and one kind of credential', () => {
    expect(natsSecurityFromEnv({})).toEqual({});
    expect(natsSecurityFromEnv({ NATS_TLS_CA: 'ca', NATS_TLS_CERT: 'c', NATS_TLS_KEY: 'k', NATS_USER: 'u', NATS_PASSWORD: 'p' })).toEqual({
      tlsCaFile: 'ca',
      tlsCertFile: 'c',
      tlsKeyFile: 'k',
      user: 'u',
      password: 'p',
    });
    expect(() => natsSecurityFromEnv({ NATS_TLS_CERT: 'c' })).toThrow(/go together/);
    expect(() => natsSecurityFromEnv({ NATS_PASSWORD: 'p' })).toThrow(/needs NATS_USER/);
    expect(() => natsSecurityFromEnv({ NATS_CREDS: 'x.creds', NATS_USER: 'u' })).toThrow(/alternatives/);
  });

  it('a request without a verified client certificate on an mTLS listener is 401 CLIENT_CERT_REQUIRED (before any lookup)', async () => {
    const pool = { query: () => Promise.reject(new Error('no lookup expected')) } as unknown as pg.Pool;
    const principal = { tokenId: 't', deploymentId: 'd', orgId: 'o', scopes: new Set<string>(), redactSegments: [] };
    await expect(new CertBindings(pool, 1000, true).check(principal, null)).rejects.toMatchObject({ code: 'CLIENT_CERT_REQUIRED', status: 401, field: 'client_certificate' });
  });
});
