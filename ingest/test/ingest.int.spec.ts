import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomUUID } from 'node:crypto';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  JOB_STATUS_SCHEMA,
  decodeStreamRecord,
  generateSigningKeyPair,
  signEvent,
  signingBytes,
  type JobStatusEvent,
  type UsageEvent,
  issueIngestToken,
  registerAgentKey,
  revokeAgentKey,
  revokeIngestToken,
} from '@kaching/contracts';
import {
  commands,
  loadConfig,
  start,
  type IngestConfig,
  type IngestHandle,
} from '@kaching/ingest';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { sampleUsage, signedUsage } from '../src/bench/events.js';
import { post, seedDeployment, streamCount, type SeededDeployment } from './support.js';

let env: IsolatedEnv;
let svc: IngestHandle;
let nc: NatsConnection;
let A: SeededDeployment;
let B: SeededDeployment;
let stream: string;

function testConfig(e: IsolatedEnv, over: Partial<IngestConfig> = {}): IngestConfig {
  return {
    ...loadConfig(e.env),
    port: 0,
    host: '127.0.0.1',
    verifyWorkers: 1,
    bodyLimitBytes: 2 * 1024 * 1024,
    logLevel: 'silent',
    ...over,
  };
}

const usage = (over: Parameters<typeof signedUsage>[3] = {}) => signedUsage(A.deploymentId, A.keyId, A.secretKey, over);
const resign = (e: UsageEvent): UsageEvent => {
  const { sig: _sig, ...unsigned } = e;
  return signEvent(unsigned, A.keyId, A.secretKey) as UsageEvent;
};

/** Posts and asserts the refusal code and that the stream did not change. */
async function refused(path: string, body: unknown, token: string | undefined, status: number, code: string, raw = false) {
  const before = await streamCount(nc, stream);
  const r = await post(svc.url, path, body, token, raw);
  expect(r.status).toBe(status);
  expect(r.body.error.code).toBe(code);
  expect(typeof r.body.error.message).toBe('string');
  expect(await streamCount(nc, stream)).toBe(before);
  return r;
}

beforeAll(async () => {
  env = await isolatedEnv();
  stream = env.names.eventsStream;
  svc = await start(testConfig(env));
  nc = await env.nats();
  A = await seedDeployment(env.pool, { keyId: 'shared-key-name' });
  B = await seedDeployment(env.pool, { keyId: 'shared-key-name' });
});

afterAll(async () => {
  await svc?.close();
  await env?.cleanup();
});

describe('accepting events', () => {
  it('a valid event lands once, an exact resend is a duplicate, a revision appends', async () => {
    const before = await streamCount(nc, stream);
    const running = usage({ correlationId: `rev-${randomUUID()}`, endedAt: new Date(Date.now() - 60_000) });
    const first = await post(svc.url, '/v1/ingest/usage', running, A.token);
    expect(first.status).toBe(202);
    expect(first.body).toEqual({ seq: expect.any(Number), duplicate: false });
    expect(await streamCount(nc, stream)).toBe(before + 1);

    const again = await post(svc.url, '/v1/ingest/usage', running, A.token);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ seq: first.body.seq, duplicate: true });
    expect(await streamCount(nc, stream)).toBe(before + 1);

    const revision = resign({ ...running, job: { ...running.job, ended_at: new Date().toISOString() } });
    const rev = await post(svc.url, '/v1/ingest/usage', revision, A.token);
    expect(rev.status).toBe(202);
    expect(rev.body.seq).toBeGreaterThan(first.body.seq);
    expect(await streamCount(nc, stream)).toBe(before + 2);

    const jsm = await jetstreamManager(nc);
    const sm = await jsm.streams.getMessage(stream, { seq: first.body.seq });
    const rec = decodeStreamRecord(sm!.data);
    expect(rec.kind).toBe('usage');
    expect(rec.ingest.org_id).toBe(A.orgId);
    expect(sm!.subject).toBe(env.names.eventSubject(A.deploymentId, 'usage', 1));
  });

  it('job-status events need ingest:jobs and land on the job_status subject', async () => {
    const unsigned: Omit<JobStatusEvent, 'sig'> = {
      schema: JOB_STATUS_SCHEMA,
      deployment_id: A.deploymentId,
      agent: { agent_id: randomUUID(), agent_type: 'coder' },
      node: { node_id: randomUUID(), hostname: 'n1' },
      job: { job_id: randomUUID(), correlation_id: `js-${randomUUID()}`, started_at: new Date(Date.now() - 5000).toISOString(), status: 'running' },
      observed_at: new Date().toISOString(),
    };
    const ev = signEvent(unsigned, A.keyId, A.secretKey);
    const r = await post(svc.url, '/v1/ingest/job-status', ev, A.token);
    expect(r.status).toBe(202);
    const usageOnly = await issueIngestToken(env.pool, { deploymentId: A.deploymentId, scopes: ['ingest:usage'] });
    await refused('/v1/ingest/job-status', ev, usageOnly.token, 403, 'TOKEN_SCOPE');
  });

  it('a batch accepts its valid items even when others fail, with a result per item', async () => {
    const before = await streamCount(nc, stream);
    const good1 = usage();
    const good2 = usage();
    const bad = { ...usage(), metrics: { ...good1.metrics, cpu_seconds: -1 } };
    const r = await post(svc.url, '/v1/ingest/batch', { events: [good1, bad, good2, good1] }, A.token);
    expect(r.status).toBe(207);
    const res = r.body.results;
    expect(res).toHaveLength(4);
    expect(res[0]).toMatchObject({ index: 0, status: 202, duplicate: false });
    expect(res[1]).toMatchObject({ index: 1, status: 400, error: { code: 'FIELD_RANGE' } });
    expect(res[2]).toMatchObject({ index: 2, status: 202 });
    // the same event twice in one batch is stored once
    expect([res[0].duplicate, res[3].duplicate].sort()).toEqual([false, true]);
    expect(res[3].seq).toBe(res[0].seq);
    expect(await streamCount(nc, stream)).toBe(before + 2);
  });
});

describe('every class of bad input has its own code and never reaches the stream', () => {
  it('malformed JSON', async () => {
    await refused('/v1/ingest/usage', '{"schema": "kaching.v1.usage",', A.token, 400, 'MALFORMED_JSON', true);
  });
  it('unknown field', async () => {
    const r = await refused('/v1/ingest/usage', { ...usage(), surprise: 1 }, A.token, 400, 'FIELD_UNKNOWN');
    expect(r.body.error.field).toContain('surprise');
  });
  it('missing correlation_id', async () => {
    const e = usage();
    const { correlation_id: _c, ...job } = e.job;
    const r = await refused('/v1/ingest/usage', { ...e, job }, A.token, 400, 'FIELD_REQUIRED');
    expect(r.body.error.field).toContain('correlation_id');
  });
  it('negative metric', async () => {
    const e = usage();
    const r = await refused('/v1/ingest/usage', { ...e, metrics: { ...e.metrics, gpu_seconds: -5 } }, A.token, 400, 'FIELD_RANGE');
    expect(r.body.error.field).toContain('gpu_seconds');
  });
  it('NaN-like metric (1e400 parses to Infinity)', async () => {
    const e = usage();
    const text = JSON.stringify(e).replace(/"cpu_seconds":[0-9.]+/, '"cpu_seconds":1e400');
    await refused('/v1/ingest/usage', text, A.token, 400, 'FIELD_RANGE', true);
  });
  it('huge metric', async () => {
    const e = usage();
    await refused('/v1/ingest/usage', { ...e, metrics: { ...e.metrics, context_reads: 1e30 } }, A.token, 400, 'FIELD_RANGE');
  });
  it('bad base64 signature', async () => {
    const e = usage();
    await refused('/v1/ingest/usage', { ...e, sig: { ...e.sig, signature: '***not base64***' } }, A.token, 400, 'BAD_BASE64');
  });
  it('wrong signature', async () => {
    const e = usage();
    await refused('/v1/ingest/usage', { ...e, metrics: { ...e.metrics, cpu_seconds: 1 } }, A.token, 401, 'SIGNATURE_INVALID');
  });
  it("a signature by another deployment's key", async () => {
    // B's key has the same key_id name as A's: the event names A but is signed with B's secret key.
    const e = signEvent(sampleUsage(A.deploymentId), A.keyId, B.secretKey);
    await refused('/v1/ingest/usage', e, A.token, 401, 'SIGNATURE_INVALID');
  });
  it('unknown key', async () => {
    const kp = generateSigningKeyPair();
    await refused('/v1/ingest/usage', signEvent(sampleUsage(A.deploymentId), 'nobody-knows-me', kp.secretKey), A.token, 401, 'KEY_UNKNOWN');
  });
  it('revoked key', async () => {
    const kp = generateSigningKeyPair();
    const pk = Buffer.from(kp.publicKey).toString('base64');
    await registerAgentKey(env.pool, { deploymentId: A.deploymentId, keyId: 'soon-revoked', publicKey: pk, validFrom: new Date(Date.now() - 3600_000) });
    await revokeAgentKey(env.pool, { deploymentId: A.deploymentId, keyId: 'soon-revoked' });
    await refused('/v1/ingest/usage', signEvent(sampleUsage(A.deploymentId), 'soon-revoked', kp.secretKey), A.token, 401, 'KEY_REVOKED');
  });
  it('key outside its validity window', async () => {
    const kp = generateSigningKeyPair();
    const pk = Buffer.from(kp.publicKey).toString('base64');
    await registerAgentKey(env.pool, {
      deploymentId: A.deploymentId,
      keyId: 'rotated-out',
      publicKey: pk,
      validFrom: new Date(Date.now() - 7200_000),
      validTo: new Date(Date.now() - 3600_000),
    });
    await refused('/v1/ingest/usage', signEvent(sampleUsage(A.deploymentId), 'rotated-out', kp.secretKey), A.token, 401, 'KEY_EXPIRED');
  });
  it('a key registered without valid_from accepts a report made before its registration', async () => {
    const kp = generateSigningKeyPair();
    const report = signEvent(sampleUsage(A.deploymentId, { endedAt: new Date(Date.now() - 60_000) }), 'late-registered', kp.secretKey);
    const k = await registerAgentKey(env.pool, { deploymentId: A.deploymentId, keyId: 'late-registered', publicKey: Buffer.from(kp.publicKey).toString('base64') });
    // the default reaches back INGEST_MAX_AGE_MS, so every report ingest would still take is covered
    expect(Date.now() - k.validFrom.getTime()).toBeGreaterThanOrEqual(loadConfig(env.env).maxAgeMs - 60_000);
    expect((await post(svc.url, '/v1/ingest/usage', report, A.token)).status).toBe(202);
  });
  it('a report made before the key is valid: KEY_NOT_YET_VALID, not KEY_EXPIRED', async () => {
    const kp = generateSigningKeyPair();
    const validFrom = new Date(Date.now() - 60_000);
    await registerAgentKey(env.pool, { deploymentId: A.deploymentId, keyId: 'not-yet', publicKey: Buffer.from(kp.publicKey).toString('base64'), validFrom });
    const early = signEvent(sampleUsage(A.deploymentId, { endedAt: new Date(validFrom.getTime() - 1000) }), 'not-yet', kp.secretKey);
    const r = await refused('/v1/ingest/usage', early, A.token, 401, 'KEY_NOT_YET_VALID');
    expect(r.body.error.field).toBe('sig.key_id');
    expect(r.body.error.message).toContain(validFrom.toISOString());
  });
  it("judges the key at the report's time: a report made inside the window is accepted after valid_to", async () => {
    const kp = generateSigningKeyPair();
    const validTo = new Date(Date.now() - 10_000);
    await registerAgentKey(env.pool, {
      deploymentId: A.deploymentId, keyId: 'ended', publicKey: Buffer.from(kp.publicKey).toString('base64'),
      validFrom: new Date(Date.now() - 3600_000), validTo,
    });
    const inside = signEvent(sampleUsage(A.deploymentId, { endedAt: new Date(validTo.getTime() - 5_000) }), 'ended', kp.secretKey);
    expect((await post(svc.url, '/v1/ingest/usage', inside, A.token)).status).toBe(202);
    const after = signEvent(sampleUsage(A.deploymentId, { endedAt: new Date(validTo.getTime() + 1_000) }), 'ended', kp.secretKey);
    await refused('/v1/ingest/usage', after, A.token, 401, 'KEY_EXPIRED');
    // job status is judged at observed_at
    const status = (observedAt: Date): JobStatusEvent =>
      signEvent(
        {
          schema: JOB_STATUS_SCHEMA, deployment_id: A.deploymentId,
          agent: { agent_id: randomUUID(), agent_type: 'coder' }, node: { node_id: randomUUID(), hostname: 'n1' },
          job: { job_id: randomUUID(), correlation_id: `js-${randomUUID()}`, started_at: new Date(validTo.getTime() - 60_000).toISOString(), status: 'running' },
          observed_at: observedAt.toISOString(),
        },
        'ended',
        kp.secretKey,
      ) as JobStatusEvent;
    expect((await post(svc.url, '/v1/ingest/job-status', status(new Date(validTo.getTime() - 1_000)), A.token)).status).toBe(202);
    await refused('/v1/ingest/job-status', status(new Date(validTo.getTime() + 1_000)), A.token, 401, 'KEY_EXPIRED');
  });
  it('a key superseded by a planned rotation keeps accepting reports made before the revocation, refuses later ones', async () => {
    const kp = generateSigningKeyPair();
    await registerAgentKey(env.pool, { deploymentId: A.deploymentId, keyId: 'superseded', publicKey: Buffer.from(kp.publicKey).toString('base64'), validFrom: new Date(Date.now() - 3600_000) });
    const queued = signEvent(sampleUsage(A.deploymentId, { endedAt: new Date(Date.now() - 2_000) }), 'superseded', kp.secretKey);
    const r = await revokeAgentKey(env.pool, { deploymentId: A.deploymentId, keyId: 'superseded', reason: 'superseded' });
    expect(r.reason).toBe('superseded');
    // what an agent signed before the revocation and still held in its disk queue arrives
    const accepted = await post(svc.url, '/v1/ingest/usage', queued, A.token);
    expect(accepted.status).toBe(202);
    const audit = (seq: number) =>
      commands.find((c) => c.name === 'audit verify')!.run({
        args: { seq: String(seq) }, positionals: [], json: true, progress: () => undefined, signal: new AbortController().signal,
        config: { natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'silent' },
      });
    const before = await audit(accepted.body.seq);
    expect(before.exitCode).toBe(0);
    expect(before.data).toMatchObject({ verdict: 'verified', key_revoke_reason: 'superseded' });
    const later = signEvent(sampleUsage(A.deploymentId, { endedAt: new Date(r.revokedAt.getTime() + 1_000) }), 'superseded', kp.secretKey);
    const no = await refused('/v1/ingest/usage', later, A.token, 401, 'KEY_REVOKED');
    expect(no.body.error.message).toMatch(/superseded/);
    // discovering it was leaked after all: compromise refuses everything, also what was accepted a moment ago
    const again = await revokeAgentKey(env.pool, { deploymentId: A.deploymentId, keyId: 'superseded', reason: 'compromise' });
    expect(again).toMatchObject({ reason: 'compromise', revokedAt: r.revokedAt });
    const after = await audit(accepted.body.seq);
    expect(after.exitCode).toBe(1);
    expect(after.data).toMatchObject({ verdict: 'key_compromised', key_revoke_reason: 'compromise' });
    expect(after.text).toMatch(/its signature verifies, but key superseded was revoked for compromise/);
    const fresh = await start(testConfig(env, { natsService: false, verifyWorkers: 0 }));
    try {
      const resent = await post(fresh.url, '/v1/ingest/usage', signEvent(sampleUsage(A.deploymentId, { endedAt: new Date(Date.now() - 3_000) }), 'superseded', kp.secretKey), A.token);
      expect(resent.status).toBe(401);
      expect(resent.body.error.code).toBe('KEY_REVOKED');
      // and a compromise is never softened back to superseded
      expect((await revokeAgentKey(env.pool, { deploymentId: A.deploymentId, keyId: 'superseded', reason: 'superseded' })).reason).toBe('compromise');
    } finally {
      await fresh.close();
    }
  });
  it('missing token', async () => {
    await refused('/v1/ingest/usage', usage(), undefined, 401, 'TOKEN_MISSING');
  });
  it('unknown token', async () => {
    await refused('/v1/ingest/usage', usage(), A.token.slice(0, -4) + 'AAAA', 401, 'TOKEN_INVALID');
  });
  it('expired token', async () => {
    const t = await issueIngestToken(env.pool, { deploymentId: A.deploymentId, expiresAt: new Date(Date.now() - 1000) });
    await refused('/v1/ingest/usage', usage(), t.token, 401, 'TOKEN_EXPIRED');
  });
  it('revoked token', async () => {
    const t = await issueIngestToken(env.pool, { deploymentId: A.deploymentId });
    await revokeIngestToken(env.pool, { tokenId: t.tokenId });
    await refused('/v1/ingest/usage', usage(), t.token, 401, 'TOKEN_REVOKED');
  });
  it('wrong-scope token', async () => {
    const t = await issueIngestToken(env.pool, { deploymentId: A.deploymentId, scopes: ['ingest:jobs'] });
    await refused('/v1/ingest/usage', usage(), t.token, 403, 'TOKEN_SCOPE');
  });
  it('a token of another deployment', async () => {
    await refused('/v1/ingest/usage', usage(), B.token, 403, 'DEPLOYMENT_MISMATCH');
  });
  it('oversize body', async () => {
    const e = usage();
    const big = { ...e, job: { ...e.job, meta: { blob: 'x'.repeat(3 * 1024 * 1024) } } };
    await refused('/v1/ingest/usage', big, A.token, 413, 'BODY_TOO_LARGE');
  });
  it('a batch over 1000', async () => {
    const e = usage();
    await refused('/v1/ingest/batch', { events: Array.from({ length: 1001 }, () => e) }, A.token, 413, 'BATCH_TOO_LARGE');
  });
});

describe('NATS ingest path', () => {
  async function request(deploymentId: string, body: unknown, token?: string, endpoint?: string) {
    const h = natsHeaders();
    if (token) h.set('Authorization', `Bearer ${token}`);
    if (endpoint) h.set('Kaching-Endpoint', endpoint);
    const m = await nc.request(env.names.ingestSubject(deploymentId), typeof body === 'string' ? body : JSON.stringify(body), { headers: h, timeout: 5000 });
    return m.json<{ status: number; body: any }>();
  }

  it('answers the same as HTTP', async () => {
    const before = await streamCount(nc, stream);
    const e = usage();
    const first = await request(A.deploymentId, e, A.token);
    expect(first).toMatchObject({ status: 202, body: { seq: expect.any(Number), duplicate: false } });
    const again = await request(A.deploymentId, e, A.token);
    expect(again).toMatchObject({ status: 200, body: { seq: first.body.seq, duplicate: true } });
    // the same event over HTTP is the same message
    const http = await post(svc.url, '/v1/ingest/usage', e, A.token);
    expect(http.status).toBe(200);
    expect(http.body).toEqual(again.body);
    expect(await streamCount(nc, stream)).toBe(before + 1);

    const batch = await request(A.deploymentId, { events: [usage(), { ...e, sig: { ...e.sig, key_id: 'nope' } }] }, A.token);
    expect(batch.status).toBe(207);
    expect(batch.body.results.map((r: { status: number }) => r.status)).toEqual([202, 401]);

    const bad = { ...e, metrics: { ...e.metrics, cpu_seconds: 2 } };
    const viaNats = await request(A.deploymentId, bad, A.token);
    const viaHttp = await post(svc.url, '/v1/ingest/usage', bad, A.token);
    expect(viaNats.status).toBe(viaHttp.status);
    expect(viaNats.body).toEqual(viaHttp.body);
    expect(viaNats.body.error.code).toBe('SIGNATURE_INVALID');
    expect((await request(A.deploymentId, usage())).body.error.code).toBe('TOKEN_MISSING');
    expect((await request(A.deploymentId, '{oops', A.token)).body.error.code).toBe('MALFORMED_JSON');
    // a token of A cannot send on B's subject
    expect((await request(B.deploymentId, usage(), A.token)).body.error.code).toBe('DEPLOYMENT_MISMATCH');
    expect(await streamCount(nc, stream)).toBe(before + 2);
  });
});

describe('redaction and audit', () => {
  it('redacts named ucxl segments before append, and audit verify says it cannot re-verify them', async () => {
    const R = await seedDeployment(env.pool, { redact: ['project', 'customer'] });
    const e = signedUsage(R.deploymentId, R.keyId, R.secretKey, { ucxl: 'ucxl://coder-7:dev@acme-secret:t1/src/customer/acme/main.ts' });
    const r = await post(svc.url, '/v1/ingest/usage', e, R.token);
    expect(r.status).toBe(202);
    const jsm = await jetstreamManager(nc);
    const rec = decodeStreamRecord((await jsm.streams.getMessage(stream, { seq: r.body.seq }))!.data);
    if (rec.kind !== 'usage') throw new Error('expected usage');
    expect(rec.usage.job.ucxl_addr).toBe('ucxl://coder-7:dev@[redacted]:t1/src/customer/[redacted]/main.ts');
    expect(rec.ingest.redacted_segments).toEqual(['customer', 'project']);
    expect(rec.ingest.flags).toContain('redacted');
    // the signature still covers what the agent sent, and the record keeps the digest of exactly that
    expect(rec.usage.sig).toEqual(e.sig);
    expect(rec.ingest.original_sha256).toBe(createHash('sha256').update(signingBytes(e)).digest('hex'));

    const audit = commands.find((c) => c.name === 'audit verify')!;
    const ctx = (seq: number) => ({
      args: { seq: String(seq) },
      positionals: [],
      config: { natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'silent' },
      json: true,
      progress: () => undefined,
      signal: new AbortController().signal,
    });
    const red = await audit.run(ctx(r.body.seq));
    expect(red.exitCode).toBe(0);
    expect(red.data).toMatchObject({ verdict: 'unverifiable_redacted' });
    expect(red.text).toMatch(/cannot be re-verified/);

    const plain = await post(svc.url, '/v1/ingest/usage', usage(), A.token);
    const ok = await audit.run(ctx(plain.body.seq));
    expect(ok.exitCode).toBe(0);
    expect(ok.data).toMatchObject({ verdict: 'verified', key_id: A.keyId });
    const missing = await audit.run(ctx(10_000_000));
    expect(missing.exitCode).toBe(1);
  });
});

describe('OTLP traces', () => {
  it('maps GenAI spans to unsigned usage events, needs scope ingest:otlp, and a resend is a duplicate', async () => {
    const nowNs = BigInt(Date.now()) * 1_000_000n;
    const body = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'planner' } }, { key: 'host.name', value: { stringValue: 'h1' } }] },
          scopeSpans: [
            {
              spans: [
                {
                  traceId: randomUUID().replace(/-/g, ''),
                  spanId: '00f067aa0ba902b7',
                  name: 'chat llama',
                  startTimeUnixNano: String(nowNs - 2_000_000_000n),
                  endTimeUnixNano: String(nowNs),
                  attributes: [
                    { key: 'gen_ai.request.model', value: { stringValue: 'llama3.1:8b' } },
                    { key: 'gen_ai.system', value: { stringValue: 'ollama' } },
                    { key: 'gen_ai.usage.input_tokens', value: { intValue: '1200' } },
                    { key: 'gen_ai.usage.output_tokens', value: { intValue: 300 } },
                  ],
                },
                { traceId: 'ab', spanId: 'cd', name: 'not genai', startTimeUnixNano: String(nowNs), attributes: [] },
              ],
            },
          ],
        },
      ],
    };
    const before = await streamCount(nc, stream);
    await refused('/v1/traces', body, A.token, 403, 'TOKEN_SCOPE');
    const otlp = await issueIngestToken(env.pool, { deploymentId: A.deploymentId, scopes: ['ingest:otlp'] });
    const r = await post(svc.url, '/v1/traces', body, otlp.token);
    // An ExportTraceServiceResponse without partialSuccess: every span accepted.
    expect([r.status, r.body, r.headers.get('kaching-accepted-spans'), r.headers.get('kaching-ignored-spans')]).toEqual([200, {}, '1', '1']);
    const again = await post(svc.url, '/v1/traces', body, otlp.token);
    expect([again.status, again.headers.get('kaching-duplicate-spans')]).toEqual([200, '1']);
    expect(await streamCount(nc, stream)).toBe(before + 1);
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info(stream)).state.last_seq;
    const rec = decodeStreamRecord((await jsm.streams.getMessage(stream, { seq: last }))!.data);
    if (rec.kind !== 'usage') throw new Error('expected usage');
    expect(rec.ingest.flags).toContain('unsigned_otlp');
    expect(rec.usage.llm).toMatchObject({ model_name: 'llama3.1:8b', provider: 'ollama', tokens_in: 1200, tokens_out: 300 });
  });
});

describe('CLI commands', () => {
  const ctx = (args: Record<string, string>) => ({
    args,
    positionals: [],
    config: { natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'silent' },
    json: true,
    progress: () => undefined,
    signal: new AbortController().signal,
  });
  const cmd = (name: string) => commands.find((c) => c.name === name)!;

  it('token issue prints a working token once (only its hash is stored); token revoke stops it', async () => {
    const issued = (await cmd('token issue').run(ctx({ deployment: A.deploymentId, scopes: 'ingest:usage', expires: '1d', label: 'cli' }))).data as {
      token: string;
      token_id: string;
    };
    expect(issued.token).toMatch(/^kt_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$/);
    const row = await env.pool.query('select token_hash, scopes, expires_at from ingest_token where token_id = $1', [issued.token_id]);
    expect(row.rows[0].token_hash).toHaveLength(32);
    expect(row.rows[0].scopes).toEqual(['ingest:usage']);
    expect(JSON.stringify(row.rows[0])).not.toContain(issued.token.slice(-43));
    await cmd('token revoke').run(ctx({ 'token-id': issued.token_id }));
    await refused('/v1/ingest/usage', usage(), issued.token, 401, 'TOKEN_REVOKED');
  });

  it('key gen / key register / key revoke', async () => {
    const kp = (await cmd('key gen').run(ctx({}))).data as { public_key: string; secret_key: string };
    expect(Buffer.from(kp.public_key, 'base64')).toHaveLength(32);
    await cmd('key register').run(ctx({ deployment: A.deploymentId, 'key-id': 'cli-key', 'public-key': kp.public_key, 'valid-from': new Date(Date.now() - 60_000).toISOString() }));
    const secret = new Uint8Array(Buffer.from(kp.secret_key, 'base64'));
    expect((await post(svc.url, '/v1/ingest/usage', signEvent(sampleUsage(A.deploymentId), 'cli-key', secret), A.token)).status).toBe(202);
    const revoked = await cmd('key revoke').run(ctx({ deployment: A.deploymentId, 'key-id': 'cli-key' }));
    // without --reason a revocation is for compromise
    expect(revoked.data).toMatchObject({ key_id: 'cli-key', reason: 'compromise' });
    const row = await env.pool.query('select revoked_at, revoke_reason from agent_key where deployment_id = $1 and key_id = $2', [A.deploymentId, 'cli-key']);
    expect(row.rows[0].revoked_at).toBeInstanceOf(Date);
    expect(row.rows[0].revoke_reason).toBe('compromise');
    await expect(cmd('key revoke').run(ctx({ deployment: A.deploymentId, 'key-id': 'cli-key', reason: 'lost' }))).rejects.toThrow(/--reason must be compromise or superseded/);
    // register without --valid-from: valid from now minus INGEST_MAX_AGE_MS
    const kp2 = (await cmd('key gen').run(ctx({}))).data as { public_key: string };
    const reg = await cmd('key register').run(ctx({ deployment: A.deploymentId, 'key-id': 'cli-key-2', 'public-key': kp2.public_key }));
    const validFrom = Date.parse((reg.data as { valid_from: string }).valid_from);
    expect(Date.now() - validFrom).toBeGreaterThanOrEqual(loadConfig(process.env).maxAgeMs - 60_000);
    const sup = await cmd('key revoke').run(ctx({ deployment: A.deploymentId, 'key-id': 'cli-key-2', reason: 'superseded' }));
    expect(sup.data).toMatchObject({ reason: 'superseded' });
    expect(sup.text).toMatch(/superseded: reports made before/);
    await expect(cmd('key register').run(ctx({ deployment: A.deploymentId, 'key-id': 'cli-key', 'public-key': 'not-base64!' }))).rejects.toMatchObject({ code: 'BAD_BASE64' });
  });
});

describe('operations', () => {
  it('rate-limits per token with 429 and Retry-After', async () => {
    const limited = await start(testConfig(env, { rateLimitPerSec: 1, rateLimitBurst: 2, natsService: false, verifyWorkers: 0 }));
    try {
      const before = await streamCount(nc, stream);
      expect((await post(limited.url, '/v1/ingest/usage', usage(), A.token)).status).toBe(202);
      expect((await post(limited.url, '/v1/ingest/usage', usage(), A.token)).status).toBe(202);
      const r = await post(limited.url, '/v1/ingest/usage', usage(), A.token);
      expect(r.status).toBe(429);
      expect(r.body.error.code).toBe('RATE_LIMITED');
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      // another token has its own bucket
      const other = await issueIngestToken(env.pool, { deploymentId: A.deploymentId });
      expect((await post(limited.url, '/v1/ingest/usage', usage(), other.token)).status).toBe(202);
      expect(await streamCount(nc, stream)).toBe(before + 3);
    } finally {
      await limited.close();
    }
  });

  it('serves /healthz, /readyz and /metrics with accepted, duplicates, rejections and ack latency', async () => {
    expect((await fetch(`${svc.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${svc.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ok: true, checks: { nats_connected: true, stream_present: true } });
    const m = await (await fetch(`${svc.url}/metrics`)).text();
    expect(m).toMatch(/kaching_ingest_accepted_total\{kind="usage",path="http"\} [1-9]/);
    expect(m).toMatch(/kaching_ingest_duplicates_total\{kind="usage",path="http"\} [1-9]/);
    expect(m).toMatch(/kaching_ingest_rejected_total\{code="SIGNATURE_INVALID",path="http"\} [1-9]/);
    expect(m).toMatch(/kaching_ingest_ack_latency_seconds_bucket/);
    const nf = await fetch(`${svc.url}/nope`);
    expect(nf.status).toBe(404);
    expect(((await nf.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
  });
});
