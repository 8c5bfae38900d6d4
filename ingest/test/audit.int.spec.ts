import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { generateSigningKeyPair, registerAgentKey, revokeAgentKey, signEvent, type UsageEvent } from '@kaching/contracts';
import { commands, loadConfig, start, type IngestHandle } from '@kaching/ingest';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { sampleUsage, signedUsage } from '../src/bench/events.js';
import { post, seedDeployment, type SeededDeployment } from './support.js';

/**
 * `kaching audit verify` over more than one sequence number: every stored revision of a correlation id, and a
 * deployment's whole range with counts by verdict; a redacted event verified against the agent's original.
 */
let env: IsolatedEnv;
let svc: IngestHandle;
let nc: NatsConnection;
let A: SeededDeployment;
let R: SeededDeployment;
let other: SeededDeployment;
const dir = mkdtempSync(path.join(tmpdir(), 'kaching-audit-'));

const audit = (args: Record<string, string>) =>
  commands.find((c) => c.name === 'audit verify')!.run({
    args,
    positionals: [],
    config: { natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'silent' },
    json: true,
    progress: () => undefined,
    signal: new AbortController().signal,
  });

async function send(d: SeededDeployment, e: UsageEvent): Promise<number> {
  const r = await post(svc.url, '/v1/ingest/usage', e, d.token);
  expect(r.status).toBe(202);
  return r.body.seq;
}

beforeAll(async () => {
  env = await isolatedEnv();
  svc = await start({ ...loadConfig(env.env), port: 0, host: '127.0.0.1', verifyWorkers: 1, logLevel: 'silent' });
  nc = await env.nats();
  [A, R, other] = [await seedDeployment(env.pool), await seedDeployment(env.pool, { redact: ['project'] }), await seedDeployment(env.pool)];
});

afterAll(async () => {
  await svc?.close();
  await env?.cleanup();
});

describe('audit verify of a correlation id and of a range', () => {
  it('finds every stored revision of a correlation id, and counts a range by verdict naming each failure', async () => {
    const since = new Date(Date.now() - 1000).toISOString();
    const first = signedUsage(A.deploymentId, A.keyId, A.secretKey, { correlationId: 'job-audit-1' });
    const revision = signEvent({ ...sampleUsage(A.deploymentId, { correlationId: 'job-audit-1' }), metrics: { ...first.metrics, cpu_seconds: 900 } }, A.keyId, A.secretKey) as UsageEvent;
    const seqs = [await send(A, first), await send(A, revision), await send(A, signedUsage(A.deploymentId, A.keyId, A.secretKey))];
    await send(other, signedUsage(other.deploymentId, other.keyId, other.secretKey, { correlationId: 'job-audit-1' }));
    // a second key of A signs one event, then turns out compromised: that event fails the audit
    const k2 = generateSigningKeyPair();
    await registerAgentKey(env.pool, { deploymentId: A.deploymentId, keyId: 'k2', publicKey: Buffer.from(k2.publicKey).toString('base64'), validFrom: new Date(Date.now() - 3600_000) });
    const bad = await send(A, signedUsage(A.deploymentId, 'k2', k2.secretKey));
    await revokeAgentKey(env.pool, { deploymentId: A.deploymentId, keyId: 'k2', reason: 'compromise' });

    const job = await audit({ deployment: A.deploymentId, 'correlation-id': 'job-audit-1' });
    expect(job.exitCode).toBe(0);
    expect(job.data).toMatchObject({ scanned: 2, verified: 2, failed: 0 });
    expect((job.data as { results: { seq: number }[] }).results.map((r) => r.seq)).toEqual(seqs.slice(0, 2));

    const range = await audit({ deployment: A.deploymentId, since });
    expect(range.exitCode).toBe(1);
    expect(range.data).toMatchObject({ scanned: 4, verified: 3, failed: 1, unverifiable: 0, verdicts: { verified: 3, key_compromised: 1 } });
    expect((range.data as { results: { seq: number; verdict: string }[] }).results).toMatchObject([{ seq: bad, verdict: 'key_compromised' }]);
    expect(range.text).toContain(`seq ${bad}`);

    // a range that ends before these events covers none of them
    const before = await audit({ deployment: A.deploymentId, since: '2020-01-01T00:00:00Z', until: since });
    expect(before.data).toMatchObject({ scanned: 0 });
    expect((await audit({ deployment: A.deploymentId, 'correlation-id': 'job-nobody' })).exitCode).toBe(1);
    await expect(audit({ deployment: A.deploymentId })).rejects.toThrow(/--correlation-id|--since/);
  });

  it("verifies a redacted event against the agent's original, and refuses an original that is not it", async () => {
    const e = signedUsage(R.deploymentId, R.keyId, R.secretKey);
    const seq = await send(R, e);
    const alone = await audit({ seq: String(seq) });
    expect(alone).toMatchObject({ exitCode: 0, data: { verdict: 'unverifiable_redacted' } });
    expect(alone.text).toMatch(/--original/);

    const orig = path.join(dir, 'original.json');
    writeFileSync(orig, JSON.stringify(e));
    expect(await audit({ seq: String(seq), original: orig })).toMatchObject({ exitCode: 0, data: { verdict: 'verified' } });

    // signed by the same key, but not what was sent: the digest differs
    const forged = path.join(dir, 'forged.json');
    writeFileSync(forged, JSON.stringify(signEvent({ ...e, metrics: { ...e.metrics, cpu_seconds: 1 } }, R.keyId, R.secretKey)));
    const f = await audit({ seq: String(seq), original: forged });
    expect(f).toMatchObject({ exitCode: 1, data: { verdict: 'original_mismatch' } });

    const range = await audit({ deployment: R.deploymentId, since: '2020-01-01T00:00:00Z' });
    expect(range).toMatchObject({ exitCode: 0, data: { scanned: 1, unverifiable: 1, verdicts: { unverifiable_redacted: 1 } } });
  });
});
