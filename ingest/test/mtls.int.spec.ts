import { randomUUID } from 'node:crypto';
import https from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { certIdentity, type CommandContext } from '@kaching/contracts';
import { commands, loadConfig, start, type IngestHandle } from '@kaching/ingest';
import { createAgent } from '@kaching/sdk';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { makePki, type IssuedCert, type Pki } from '../../test/support/pki.js';
import { waitUntil } from '../../test/support/wait.js';
import { signedUsage } from '../src/bench/events.js';
import { seedDeployment, streamCount, type SeededDeployment } from './support.js';

/**
 * Ingest over HTTPS with client certificates (INGEST_TLS_CLIENT_CA) and bindings (059_agent_certs):
 * a real ingest, a real Node HTTPS client and the SDK, certificates made by the dev CA code.
 */
let env: IsolatedEnv;
let nc: NatsConnection;
let svc: IngestHandle;
let dir: string;
let pki: Pki;
let A: SeededDeployment;
let B: SeededDeployment;
let C: SeededDeployment;
let certA: IssuedCert;
let certB: IssuedCert;
let foreign: IssuedCert;

interface Answer {
  status: number;
  body: { error?: { code: string; field?: string; rule?: string }; seq?: number; duplicate?: boolean };
}

/** POST over HTTPS with Node's own client; rejects when the TLS handshake is refused. */
function postTls(cert: IssuedCert | null, token: string, body: unknown, ca = pki.ca.cert): Promise<Answer> {
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${svc.url}/v1/ingest/usage`,
      {
        method: 'POST',
        agent: false,
        ca,
        ...(cert ? { cert: cert.cert, key: cert.key } : {}),
        headers: { 'content-type': 'application/json', 'content-length': data.length, authorization: `Bearer ${token}` },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

const event = (d: SeededDeployment) => signedUsage(d.deploymentId, d.keyId, d.secretKey, { correlationId: `mtls-${randomUUID()}` });
const cli = (name: string, args: Record<string, string>) =>
  commands.find((c) => c.name === name)!.run({
    args,
    positionals: [],
    config: { natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'silent' },
    json: true,
    progress: () => undefined,
    signal: new AbortController().signal,
  } satisfies CommandContext);

async function refusedByHandshake(cert: IssuedCert | null, token: string): Promise<void> {
  const before = await streamCount(nc, env.names.eventsStream);
  const err = await postTls(cert, token, event(A)).then(
    (a): NodeJS.ErrnoException => new Error(`expected a TLS refusal, got HTTP ${a.status}`),
    (e: NodeJS.ErrnoException) => e,
  );
  expect(err.message).not.toMatch(/expected a TLS refusal/);
  // the server refused us (alert or reset), not our client refusing the server
  expect(`${err.code} ${err.message}`).toMatch(/ALERT|ECONNRESET|EPIPE/i);
  expect(await streamCount(nc, env.names.eventsStream)).toBe(before);
}

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  dir = mkdtempSync(path.join(os.tmpdir(), 'kaching-mtls-'));
  pki = makePki(path.join(dir, 'ours'));
  const server = pki.server('ingest');
  certA = pki.client('agent-a', 'agent-a.fleet');
  certB = pki.client('agent-b', 'agent-b', ['DNS:agent-b.fleet']);
  // Same name as a bound subject, from another CA: the handshake must refuse it before any name is read.
  foreign = makePki(path.join(dir, 'theirs'), 'otherca').client('agent-a', 'agent-a.fleet');
  [A, B, C] = [await seedDeployment(env.pool), await seedDeployment(env.pool), await seedDeployment(env.pool)];
  svc = await start({
    ...loadConfig({ ...env.env, INGEST_TLS_CERT: server.certFile, INGEST_TLS_KEY: server.keyFile, INGEST_TLS_CLIENT_CA: pki.ca.certFile }),
    port: 0,
    host: '127.0.0.1',
    verifyWorkers: 0,
    logLevel: 'silent',
  });
  // A: pinned by the certificate's fingerprint; B: by a SAN name.
  await cli('token bind-cert', { deployment: A.deploymentId, cert: certA.certFile, label: 'agent-a' });
  await cli('token bind-cert', { deployment: B.deploymentId, subject: 'agent-b.fleet' });
}, 60_000);

afterAll(async () => {
  await svc?.close();
  await env?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('ingest with client certificates', () => {
  it('serves HTTPS only', async () => {
    expect(svc.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const plain = await fetch(svc.url.replace('https:', 'http:') + '/healthz').then(
      (r) => r.status,
      () => 'refused',
    );
    expect(plain).not.toBe(200);
  });

  it('refuses a client without a certificate during the handshake', async () => {
    await refusedByHandshake(null, A.token);
  });

  it('refuses a certificate from another CA, even with a bound name', async () => {
    expect(certIdentity(foreign.cert).names).toContain('agent-a.fleet');
    await refusedByHandshake(foreign, A.token);
  });

  it("refuses a valid certificate that is not bound to the token's deployment: 403 CLIENT_CERT_NOT_BOUND", async () => {
    const before = await streamCount(nc, env.names.eventsStream);
    const stolen = await postTls(certB, A.token, event(A));
    expect(stolen.status).toBe(403);
    expect(stolen.body.error).toMatchObject({ code: 'CLIENT_CERT_NOT_BOUND', field: 'client_certificate', rule: 'bound:deployment' });
    const unbound = await postTls(certA, C.token, event(C));
    expect(unbound.status).toBe(403);
    expect(unbound.body.error?.code).toBe('CLIENT_CERT_NOT_BOUND');
    expect(await streamCount(nc, env.names.eventsStream)).toBe(before);
  });

  it('accepts the bound certificate (by fingerprint and by subject): the event is in the stream once', async () => {
    const before = await streamCount(nc, env.names.eventsStream);
    const e = event(A);
    const first = await postTls(certA, A.token, e);
    expect(first).toEqual({ status: 202, body: { seq: expect.any(Number), duplicate: false } });
    const again = await postTls(certA, A.token, e);
    expect(again).toEqual({ status: 200, body: { seq: first.body.seq, duplicate: true } });
    const bySubject = await postTls(certB, B.token, event(B));
    expect(bySubject.status).toBe(202);
    expect(await streamCount(nc, env.names.eventsStream)).toBe(before + 2);
  });

  it('the SDK reports through mTLS with tls_ca/tls_cert/tls_key', async () => {
    const before = await streamCount(nc, env.names.eventsStream);
    const agent = await createAgent({
      ingestUrl: svc.url,
      token: A.token,
      deploymentId: A.deploymentId,
      keyId: A.keyId,
      secretKey: Buffer.from(A.secretKey).toString('base64'),
      tlsCa: pki.ca.certFile,
      tlsCert: certA.certFile,
      tlsKey: certA.keyFile,
      flushIntervalMs: 20,
    });
    try {
      const now = new Date();
      await agent.emitUsage({ ucxlAddr: 'ucxl://a:b@p:t/mtls', startedAt: new Date(now.getTime() - 500), endedAt: now, metrics: { cpu_seconds: 1 } });
      expect(await agent.flush(10_000)).toBe(0);
      expect(agent.stats().accepted).toBe(1);
    } finally {
      await agent.close();
    }
    expect(await streamCount(nc, env.names.eventsStream)).toBe(before + 1);
  });

  it('token unbind-cert takes effect at once (announced to ingest); token certs lists the bindings', async () => {
    const listed = (await cli('token certs', { deployment: A.deploymentId })).data as { binding_id: string; cert_sha256: string; label: string }[];
    expect(listed).toEqual([expect.objectContaining({ cert_sha256: certIdentity(certA.cert).fingerprint.toString('hex'), label: 'agent-a' })]);
    await cli('token unbind-cert', { 'binding-id': listed[0]!.binding_id });
    await waitUntil(async () => (await postTls(certA, A.token, event(A))).status === 403, 5_000, 'unbind applied');
    const r = await postTls(certA, A.token, event(A));
    expect(r.body.error?.code).toBe('CLIENT_CERT_NOT_BOUND');
  });

  it('bind-cert refuses bad input with catalogue codes', async () => {
    await expect(cli('token bind-cert', { deployment: A.deploymentId, fingerprint: 'abc' })).rejects.toMatchObject({ code: 'FIELD_FORMAT', field: 'fingerprint' });
    await expect(cli('token bind-cert', { deployment: randomUUID(), subject: 'x' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(cli('token bind-cert', { deployment: A.deploymentId, subject: 'x', fingerprint: 'ab'.repeat(32) })).rejects.toThrow(/exactly one/);
  });
});
