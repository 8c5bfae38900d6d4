import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { issueIngestToken, registerAgentKey } from '@kaching/contracts';
import { loadConfig, start, type IngestConfig, type IngestHandle } from '@kaching/ingest';
import { createAgent, type KachingAgent } from '@kaching/sdk';
import { loadConfig as projectorConfig, start as startProjector } from '@kaching/projector';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { streamEvents } from '../../test/e2e/support.js';

// An SDK-driven fleet keeps emitting while the ingest service is down, then ingest comes back on
// the same port: every event the SDK produced is in the stream exactly once.

let env: IsolatedEnv;
let nc: NatsConnection;
let qdir: string;
let deploymentId: string;
let token: string;
let keyId: string;
let secretKey: string;
const cleanups: (() => Promise<void>)[] = [];

function ingestConfig(port: number): IngestConfig {
  return { ...loadConfig(env.env), port, host: '127.0.0.1', verifyWorkers: 0, logLevel: 'silent' };
}

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  qdir = await mkdtemp(path.join(os.tmpdir(), 'kaching-sdk-int-'));
  const orgId = randomUUID();
  deploymentId = randomUUID();
  await env.pool.query('insert into org (org_id, name) values ($1, $2)', [orgId, 'sdk-int']);
  await env.pool.query('insert into deployment (deployment_id, org_id, name) values ($1, $2, $3)', [deploymentId, orgId, 'fleet']);
  token = (await issueIngestToken(env.pool, { deploymentId })).token;
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  secretKey = Buffer.from((privateKey.export({ format: 'jwk' }) as { d: string }).d, 'base64url').toString('base64');
  keyId = 'fleet-key';
  const pub = Buffer.from((publicKey.export({ format: 'jwk' }) as { x: string }).x, 'base64url').toString('base64');
  await registerAgentKey(env.pool, { deploymentId, keyId, publicKey: pub, validFrom: new Date(Date.now() - 60_000) });
});

afterAll(async () => {
  for (const c of cleanups) await c().catch(() => undefined);
  await rm(qdir, { recursive: true, force: true });
  await env?.cleanup();
});

describe('SDK fleet across an ingest outage', () => {
  it('delivers every event exactly once after ingest is stopped and restored on the same port', async () => {
    let ingest: IngestHandle = await start(ingestConfig(0));
    const port = ingest.port;
    // The raw projection runs throughout: usage_sample must end up with each event exactly once too.
    const projector = await startProjector({ ...projectorConfig(env.env), port: 0, host: '127.0.0.1', logLevel: 'silent' });
    cleanups.push(() => projector.close());
    const agents: KachingAgent[] = [];
    const errors: unknown[] = [];
    for (let i = 0; i < 4; i++) {
      agents.push(
        await createAgent(
          {
            ingestUrl: ingest.url,
            token,
            deploymentId,
            keyId,
            secretKey,
            agentType: ['planner', 'coder', 'indexer', 'trainer'][i]!,
            hostname: `node-${i % 2}`,
            agentId: randomUUID(),
            runId: 'outage-run',
            queueDir: path.join(qdir, `agent-${i}`),
            flushIntervalMs: 50,
            maxBatch: 20,
            backoffBaseMs: 20,
            backoffMaxMs: 200,
            requestTimeoutMs: 2000,
          },
          { onError: (e) => errors.push(e) },
        ),
      );
    }
    const produced = new Set<string>();
    let step = 0;
    const emitFor = async (ms: number) => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        step++;
        const now = new Date();
        const results = await Promise.all(
          agents.map((a) =>
            a.emitUsage({ ucxlAddr: `ucxl://a:b@p:t/s${step}`, step, startedAt: new Date(now.getTime() - 500), endedAt: now, metrics: { cpu_seconds: 0.25 } }),
          ),
        );
        for (const r of results) produced.add(r.correlationId);
        await new Promise((r) => setTimeout(r, 15));
      }
    };

    await emitFor(600);
    await ingest.close();
    // Ingest is down: emits still resolve (the events are fsync'd in each agent's queue).
    await emitFor(1200);
    const queuedDuringOutage = agents.reduce((s, a) => s + a.stats().queued, 0);
    expect(queuedDuringOutage).toBeGreaterThan(0);
    ingest = await start(ingestConfig(port));
    await emitFor(600);
    for (const a of agents) expect(await a.flush(20_000)).toBe(0);
    const stats = agents.map((a) => a.stats());
    await Promise.all(agents.map((a) => a.close()));
    await ingest.close();

    expect(errors).toEqual([]);
    const { correlationIds, msgIds } = await streamEvents(nc, env.names);
    // Exactly once: as many stream messages as distinct events, and the same set the SDK produced.
    expect(correlationIds.length).toBe(produced.size);
    expect(new Set(correlationIds)).toEqual(produced);
    expect(new Set(msgIds).size).toBe(msgIds.length);
    const projected = async () =>
      (await env.pool.query<{ n: number; d: number }>('select count(*)::int as n, count(distinct correlation_id)::int as d from usage_sample where deployment_id = $1', [deploymentId])).rows[0]!;
    const deadline = Date.now() + 20_000;
    while ((await projected()).n < produced.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await projector.close();
    expect(await projected()).toEqual({ n: produced.size, d: produced.size });
    // A response lost when ingest went down makes the resend a 200 duplicate, never a second event.
    const accepted = stats.reduce((s, x) => s + x.accepted, 0);
    const duplicates = stats.reduce((s, x) => s + x.duplicates, 0);
    expect(accepted).toBeLessThanOrEqual(produced.size);
    expect(accepted + duplicates).toBeGreaterThanOrEqual(produced.size);
    expect(stats.every((s) => s.retries > 0)).toBe(true);
  });

  it('delivers over NATS requests to the ingest service too', async () => {
    const ingest = await start(ingestConfig(0));
    const before = (await streamEvents(nc, env.names)).correlationIds.length;
    const agent = await createAgent({ natsUrl: env.natsUrl, namespace: env.namespace, token, deploymentId, keyId, secretKey, agentType: 'nats-agent', flushIntervalMs: 20 });
    const ids: string[] = [];
    for (let step = 1; step <= 5; step++) {
      const now = new Date();
      ids.push((await agent.emitUsage({ ucxlAddr: 'ucxl://n:a@p:t/x', step, startedAt: new Date(now.getTime() - 100), endedAt: now })).correlationId);
    }
    // job(): a running heartbeat (job status) and then the usage event, under one correlation id.
    const jobResult = await agent.job('ucxl://n:a@p:t/job', async () => 42, { step: 'job-1' });
    expect(jobResult).toBe(42);
    expect(await agent.flush(10_000)).toBe(0);
    expect(agent.stats()).toMatchObject({ accepted: 7, failed: 0 });
    await agent.close();
    await ingest.close();
    const after = await streamEvents(nc, env.names);
    const jobCid = agent.correlationId('job-1');
    expect(after.correlationIds.slice(before)).toEqual([...ids, `status:${jobCid}`, jobCid]);
  });
});
