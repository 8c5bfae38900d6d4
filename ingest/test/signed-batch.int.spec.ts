import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { decodeStreamRecord, signBatch, verifyBatchProof, type StreamRecord, type Unsigned, type UsageEvent, revokeAgentKey } from '@kaching/contracts';
import { commands, loadConfig, start, type IngestHandle } from '@kaching/ingest';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { sampleUsage } from '../src/bench/events.js';
import { post, seedDeployment, streamCount, type SeededDeployment } from './support.js';

let env: IsolatedEnv;
let svc: IngestHandle;
let nc: NatsConnection;
let A: SeededDeployment;

const events = (n: number): Unsigned<UsageEvent>[] => Array.from({ length: n }, () => sampleUsage(A.deploymentId));
const signed = (evs: Unsigned<UsageEvent>[]) => ({ events: evs, batch_sig: signBatch(evs, A.keyId, A.secretKey) });

async function stored(seq: number): Promise<StreamRecord> {
  const jsm = await jetstreamManager(nc);
  return decodeStreamRecord((await jsm.streams.getMessage(env.names.eventsStream, { seq }))!.data);
}

async function refused(body: unknown, status: number, code: string, field: string) {
  const before = await streamCount(nc, env.names.eventsStream);
  const r = await post(svc.url, '/v1/ingest/batch', body, A.token);
  expect(r.status).toBe(status);
  expect(r.body.error).toMatchObject({ code, field });
  expect(await streamCount(nc, env.names.eventsStream)).toBe(before);
}

beforeAll(async () => {
  env = await isolatedEnv();
  svc = await start({ ...loadConfig(env.env), port: 0, host: '127.0.0.1', verifyWorkers: 1, logLevel: 'silent' });
  nc = await env.nats();
  A = await seedDeployment(env.pool);
});

afterAll(async () => {
  await svc?.close();
  await env?.cleanup();
});

describe('signed batches: one Ed25519 signature over the Merkle tree head of the events', () => {
  it('accepts every event once, stores each with its inclusion proof, and each verifies alone', async () => {
    const body = signed(events(13));
    const r = await post(svc.url, '/v1/ingest/batch', body, A.token);
    expect(r.status).toBe(207);
    expect(r.body.results.map((x: { status: number }) => x.status)).toEqual(Array(13).fill(202));
    for (const [i, res] of (r.body.results as { seq: number }[]).entries()) {
      const rec = await stored(res.seq);
      if (rec.kind !== 'usage') throw new Error('expected usage');
      expect(rec.ingest.batch).toMatchObject({ key_id: A.keyId, root: body.batch_sig.root, leaf_index: i, tree_size: 13 });
      expect(rec.usage.sig).toEqual({ algo: 'ed25519', key_id: A.keyId, signature: body.batch_sig.signature });
      expect(verifyBatchProof(rec.usage, rec.ingest.batch!, A.publicKey)).toBe(true);
    }
    // a blind resend of the same signed batch appends nothing
    const again = await post(svc.url, '/v1/ingest/batch', body, A.token);
    expect(again.body.results.every((x: { duplicate: boolean }) => x.duplicate)).toBe(true);
  });

  it('`audit verify` proves a batch-signed event on its own, years later, from the stream', async () => {
    const r = await post(svc.url, '/v1/ingest/batch', signed(events(5)), A.token);
    const audit = commands.find((c) => c.name === 'audit verify')!;
    const out = await audit.run({
      args: { seq: String(r.body.results[3].seq) },
      positionals: [],
      config: { natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'silent' },
      json: true,
      progress: () => undefined,
      signal: new AbortController().signal,
    });
    expect(out.exitCode).toBe(0);
    expect(out.data).toMatchObject({ verdict: 'verified', key_id: A.keyId });
    expect((out.data as { detail: string }).detail).toMatch(/leaf 3 of 5/);
  });

  it('refuses the whole batch when one event was changed after signing, or the order differs', async () => {
    const body = signed(events(4));
    const tampered = structuredClone(body);
    tampered.events[2]!.metrics.cpu_seconds += 1;
    await refused(tampered, 401, 'SIGNATURE_INVALID', 'batch_sig.root');
    const reordered = { ...body, events: [body.events[1], body.events[0], body.events[2], body.events[3]] };
    await refused(reordered, 401, 'SIGNATURE_INVALID', 'batch_sig.root');
    const otherKeySig = { ...body, batch_sig: { ...body.batch_sig, signature: signBatch(body.events.slice().reverse(), A.keyId, A.secretKey).signature } };
    await refused(otherKeySig, 401, 'SIGNATURE_INVALID', 'batch_sig.signature');
  });

  it('refuses malformed batch signatures with the field and the rule', async () => {
    const body = signed(events(3));
    await refused({ ...body, batch_sig: { ...body.batch_sig, tree_size: 4 } }, 400, 'FIELD_RANGE', 'batch_sig.tree_size');
    await refused({ ...body, batch_sig: { ...body.batch_sig, root: 'AAAA' } }, 400, 'BAD_BASE64', 'batch_sig.root');
    await refused({ ...body, batch_sig: { ...body.batch_sig, algo: 'rsa' } }, 400, 'SIGNATURE_ALGO', 'batch_sig.algo');
    await refused({ ...body, batch_sig: { ...body.batch_sig, extra: 1 } }, 400, 'FIELD_UNKNOWN', 'batch_sig.extra');
    const { signature: _s, ...noSig } = body.batch_sig;
    await refused({ ...body, batch_sig: noSig }, 400, 'FIELD_REQUIRED', 'batch_sig.signature');
    await refused({ ...body, batch_sig: { ...body.batch_sig, key_id: 'nobody' } }, 401, 'KEY_UNKNOWN', 'batch_sig.key_id');
    // an event of a signed batch carries no signature of its own
    const withOwnSig = { ...body, events: [{ ...body.events[0], sig: { algo: 'ed25519', key_id: A.keyId, signature: body.batch_sig.signature } }, ...body.events.slice(1)] };
    await refused(withOwnSig, 400, 'FIELD_UNKNOWN', 'events.0.sig');
  });

  it('single-event signatures keep working next to signed batches', async () => {
    const { signedUsage } = await import('../src/bench/events.js');
    const r = await post(svc.url, '/v1/ingest/usage', signedUsage(A.deploymentId, A.keyId, A.secretKey), A.token);
    expect(r.status).toBe(202);
  });

  it('a key superseded mid-batch: each event is judged at its own report time (before the revocation accepted, after refused)', async () => {
    const S = await seedDeployment(env.pool, { keyId: 'batch-superseded' });
    const revokedAt = (await revokeAgentKey(env.pool, { deploymentId: S.deploymentId, keyId: S.keyId, reason: 'superseded' })).revokedAt.getTime();
    const evs = [sampleUsage(S.deploymentId, { endedAt: new Date(revokedAt - 2_000) }), sampleUsage(S.deploymentId, { endedAt: new Date(revokedAt + 1_000) })];
    const fresh = await start({ ...loadConfig(env.env), port: 0, host: '127.0.0.1', verifyWorkers: 0, natsService: false, logLevel: 'silent' });
    try {
      const r = await post(fresh.url, '/v1/ingest/batch', { events: evs, batch_sig: signBatch(evs, S.keyId, S.secretKey) }, S.token);
      expect(r.body.results.map((x: { status: number }) => x.status)).toEqual([202, 401]);
      expect(r.body.results[1].error).toMatchObject({ code: 'KEY_REVOKED', field: 'batch_sig.key_id' });
    } finally {
      await fresh.close();
    }
  });

  it('a revoked key refuses a batch signed with it', async () => {
    const body = signed(events(2));
    await revokeAgentKey(env.pool, { deploymentId: A.deploymentId, keyId: A.keyId });
    // the key cache of ingest lives for INGEST_AUTH_CACHE_TTL_MS; a fresh service sees the revocation at once
    const fresh = await start({ ...loadConfig(env.env), port: 0, host: '127.0.0.1', verifyWorkers: 0, logLevel: 'silent' });
    try {
      const before = await streamCount(nc, env.names.eventsStream);
      const r = await post(fresh.url, '/v1/ingest/batch', body, A.token);
      expect(r.body.results.map((x: { error?: { code: string } }) => x.error?.code)).toEqual(['KEY_REVOKED', 'KEY_REVOKED']);
      expect(await streamCount(nc, env.names.eventsStream)).toBe(before);
    } finally {
      await fresh.close();
    }
  });
});
