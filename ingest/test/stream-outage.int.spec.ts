import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { loadConfig, start, type IngestHandle } from '@kaching/ingest';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { signedUsage } from '../src/bench/events.js';
import { post, seedDeployment, streamCount, type SeededDeployment } from './support.js';
import { PrivateNats } from '../../projector/test/servers.js';
import { waitFor } from '../../projector/test/helpers.js';

// Our own nats-server: the shared one is never stopped.
let env: IsolatedEnv;
let svc: IngestHandle | undefined;
let nats: PrivateNats;
let D: SeededDeployment;

async function count(): Promise<number> {
  const nc = await connect({ servers: nats.url });
  try {
    return await streamCount(nc, env.names.eventsStream);
  } finally {
    await nc.close();
  }
}

beforeAll(async () => {
  env = await isolatedEnv();
  nats = await PrivateNats.launch();
  svc = await start({
    ...loadConfig(env.env),
    natsUrl: nats.url,
    port: 0,
    host: '127.0.0.1',
    verifyWorkers: 0,
    publishTimeoutMs: 1000,
    logLevel: 'silent',
  });
  D = await seedDeployment(env.pool);
});

afterAll(async () => {
  if (nats && !nats.running) await nats.start().catch(() => undefined); // lets close() drain cleanly
  await svc?.close();
  await nats?.stop();
  await env?.cleanup();
});

describe('JetStream unavailable', () => {
  it('answers 503 with Retry-After (never 2xx), then accepts the same events exactly once after recovery', async () => {
    const landed = signedUsage(D.deploymentId, D.keyId, D.secretKey);
    expect((await post(svc!.url, '/v1/ingest/usage', landed, D.token)).status).toBe(202);
    expect(await count()).toBe(1);

    await nats.kill();
    const singles = [0, 1, 2].map(() => signedUsage(D.deploymentId, D.keyId, D.secretKey));
    const batch = [0, 1].map(() => signedUsage(D.deploymentId, D.keyId, D.secretKey));
    for (const e of singles) {
      const r = await post(svc!.url, '/v1/ingest/usage', e, D.token);
      expect(r.status).toBe(503);
      expect(r.body.error.code).toBe('STREAM_UNAVAILABLE');
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    const b = await post(svc!.url, '/v1/ingest/batch', { events: batch }, D.token);
    expect(b.status).toBe(503);
    expect(b.headers.get('retry-after')).toBeTruthy();
    expect(b.body.results.every((r: { status: number }) => r.status === 503)).toBe(true);
    const ready = await fetch(`${svc!.url}/readyz`);
    expect(ready.status).toBe(503);

    await nats.start();
    await waitFor(async () => (await fetch(`${svc!.url}/readyz`)).status === 200, 30_000, 'ingest ready again');

    // Agents retry blindly: each event is stored once (202), or reported as the duplicate it is.
    for (const e of singles) {
      const r = await post(svc!.url, '/v1/ingest/usage', e, D.token);
      expect([200, 202]).toContain(r.status);
      expect(r.body.seq).toEqual(expect.any(Number));
    }
    const rb = await post(svc!.url, '/v1/ingest/batch', { events: batch }, D.token);
    expect(rb.status).toBe(207);
    expect(rb.body.results.every((r: { status: number }) => r.status === 202 || r.status === 200)).toBe(true);
    // ...and once more: all duplicates now, nothing doubled
    for (const e of [...singles, landed]) expect((await post(svc!.url, '/v1/ingest/usage', e, D.token)).status).toBe(200);
    expect(await count()).toBe(1 + singles.length + batch.length);
  });
});
