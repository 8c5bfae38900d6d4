import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asOrg, certIdentity, makePki, type IssuedCert } from '@kaching/contracts';
import { loadConfig, start, type ApiHandle } from '@kaching/api';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { client, seedOrg, type SeededOrg } from './support/seed.js';

/** POST/GET /v1/cert-bindings: the API face of `kaching token bind-cert`, scoped to the caller's organisation. */
let env: IsolatedEnv;
let api: ApiHandle;
let A: SeededOrg;
let B: SeededOrg;
let dir: string;
let cert: IssuedCert;

beforeAll(async () => {
  env = await isolatedEnv();
  A = await seedOrg(env.pool, 'alpha');
  B = await seedOrg(env.pool, 'bravo');
  dir = mkdtempSync(path.join(os.tmpdir(), 'kaching-api-certs-'));
  cert = makePki(dir).client('agent-1', 'agent-1.alpha');
  api = await start({ ...loadConfig(env.env), port: 0, logLevel: 'silent' }, { pool: env.pool, nc: await env.nats() });
});

afterAll(async () => {
  await api?.close();
  await env?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('/v1/cert-bindings', () => {
  it('binds by PEM and by subject, lists, unbinds; rebinding the same pin is idempotent', async () => {
    const a = client(api.url, A.adminKey);
    const byPem = await a('POST', '/v1/cert-bindings', { action: 'bind', deployment_id: A.deploymentId, cert_pem: cert.cert.toString(), label: 'agent-1' });
    expect(byPem.status).toBe(200);
    expect(byPem.json).toMatchObject({ action: 'bind', created: true, deployment_id: A.deploymentId, cert_sha256: certIdentity(cert.cert).fingerprint.toString('hex'), subject: null });
    const fp = certIdentity(cert.cert).fingerprint.toString('hex').toUpperCase().match(/../g)!.join(':');
    const again = await a('POST', '/v1/cert-bindings', { action: 'bind', deployment_id: A.deploymentId, fingerprint: fp });
    expect(again.json).toMatchObject({ created: false, binding_id: byPem.json.binding_id });
    const bySubject = await a('POST', '/v1/cert-bindings', { action: 'bind', deployment_id: A.deploymentId, subject: 'agent-2.alpha' });
    expect(bySubject.json).toMatchObject({ created: true, subject: 'agent-2.alpha', cert_sha256: null });
    const unbound = await a('POST', '/v1/cert-bindings', { action: 'unbind', binding_id: bySubject.json.binding_id });
    expect(unbound.json.revoked_at).toEqual(expect.any(String));
    const list = await a('GET', `/v1/cert-bindings?deployment_id=${A.deploymentId}`);
    expect(list.json.items.map((b: { binding_id: string; revoked_at: string | null }) => [b.binding_id, b.revoked_at === null])).toEqual([
      [byPem.json.binding_id, true],
      [bySubject.json.binding_id, false],
    ]);
  });

  it("another organisation can neither see, bind to nor unbind A's deployment; bad input names the field", async () => {
    const b = client(api.url, B.adminKey);
    const mine = (await client(api.url, A.adminKey)('GET', `/v1/cert-bindings?deployment_id=${A.deploymentId}`)).json.items[0];
    expect((await b('GET', `/v1/cert-bindings?deployment_id=${A.deploymentId}`)).status).toBe(404);
    expect((await b('POST', '/v1/cert-bindings', { action: 'bind', deployment_id: A.deploymentId, subject: 'evil' })).status).toBe(404);
    const unbind = await b('POST', '/v1/cert-bindings', { action: 'unbind', binding_id: mine.binding_id });
    expect(unbind.status).toBe(404);
    expect(unbind.json.error.code).toBe('NOT_FOUND');
    const rows = await asOrg(env.pool, B.orgId, (c) => c.query('select count(*)::int as n from ingest_cert_binding'));
    expect(rows.rows[0].n).toBe(0);

    const a = client(api.url, A.adminKey);
    const badFp = await a('POST', '/v1/cert-bindings', { action: 'bind', deployment_id: A.deploymentId, fingerprint: 'zz' });
    expect(badFp.status).toBe(400);
    expect(badFp.json.error).toMatchObject({ code: 'FIELD_FORMAT', field: 'fingerprint' });
    const badPem = await a('POST', '/v1/cert-bindings', { action: 'bind', deployment_id: A.deploymentId, cert_pem: 'not a cert' });
    expect(badPem.json.error).toMatchObject({ code: 'FIELD_FORMAT', field: 'cert_pem' });
    const none = await a('POST', '/v1/cert-bindings', { action: 'bind', deployment_id: A.deploymentId });
    expect(none.json.error).toMatchObject({ code: 'FIELD_REQUIRED', field: 'fingerprint' });
    expect((await client(api.url, A.readKey)('POST', '/v1/cert-bindings', { action: 'bind', deployment_id: A.deploymentId, subject: 'x' })).status).toBe(403);
  });
});
