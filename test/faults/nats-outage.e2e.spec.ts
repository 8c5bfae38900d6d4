import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, ensureEventsStream } from '@kaching/contracts';
import { createDeployment, createOrg, issueApiKey, loadConfig as apiConfig, start as startApi, type ApiHandle } from '@kaching/api';
import { loadConfig as enforcerConfig, start as startEnforcer, type EnforcerHandle } from '@kaching/enforcer';
import { checkpoint, publish, usageRecord, waitFor } from '../../enforcer/test/helpers.js';
import { PrivateNats } from '../../projector/test/servers.js';
import { isolatedEnv, type IsolatedEnv } from '../support/isolation.js';

/**
 * nats.js gives up after 10 reconnect attempts 2 s apart and closes the connection for good. Before, the enforcer
 * and the API kept running after such an outage with enforcement off: /readyz 503 for ever, POST /v1/budget 500.
 * Here a private nats-server is stopped for longer than that budget and started again; both services must come
 * back on their own: ready again, the enforcer reading the stream and answering checks, the API writing.
 */
const OUTAGE_MS = Number(process.env.KACHING_NATS_OUTAGE_MS ?? 25_000);
const DEFAULT_RECONNECT_BUDGET_MS = 10 * 2_000;

describe('a NATS outage longer than the client default reconnect budget', () => {
  let env: IsolatedEnv;
  let nats: PrivateNats;
  let nc: NatsConnection;
  let enforcer: EnforcerHandle | undefined;
  let api: ApiHandle | undefined;
  let orgId: string;
  let deploymentId: string;
  let adminKey: string;

  beforeAll(async () => {
    env = await isolatedEnv();
    nats = await PrivateNats.launch();
    nc = await connectNats(nats.url, { name: 'nats-outage-test' });
    await ensureEventsStream(nc, env.names);
    orgId = (await createOrg(env.pool, { name: 'outage' })).org_id;
    deploymentId = String((await createDeployment(env.pool, orgId, { name: 'outage-prod' })).deployment_id);
    adminKey = (await issueApiKey(env.pool, { orgId, scopes: ['read', 'admin'] })).apiKey;
    const over = { natsUrl: nats.url, port: 0, host: '127.0.0.1', logLevel: 'error' };
    enforcer = await startEnforcer({ ...enforcerConfig(env.env), ...over });
    api = await startApi({ ...apiConfig(env.env), ...over });
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await enforcer?.close();
    await nc?.close().catch(() => undefined);
    await nats?.stop();
    await env?.cleanup();
  });

  const ready = async (url: string) => (await fetch(`${url}/readyz`).catch(() => null))?.status;
  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${api!.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }).then(async (r) => ({ status: r.status, json: (await r.json()) as Record<string, unknown> }));
  const budget = (limit: number) => ({ deployment_id: deploymentId, scope: 'jobs', metric: 'jobs', period: 'daily', limit_units: limit, action: 'block' });
  /** One usage event straight into the stream; resolves once the enforcer committed it. */
  const enforcerReads = async () => {
    // the test's own append, retried: just after the restart JetStream may still be recovering its streams
    const record = usageRecord(deploymentId, orgId, new Date());
    const seq = await waitFor(() => publish(nc, env.names, [record]).catch(() => 0), 30_000, 'an append to the stream');
    await waitFor(async () => (await checkpoint(env.pool)) >= seq, 30_000, `enforcer checkpoint ${seq}`);
  };

  it('the enforcer and the API report it while it lasts and recover on their own: ready, reading, answering checks, writing', async () => {
    expect(OUTAGE_MS).toBeGreaterThan(DEFAULT_RECONNECT_BUDGET_MS);
    await waitFor(async () => (await ready(enforcer!.url)) === 200 && (await ready(api!.url)) === 200, 30_000, 'both ready');
    expect((await call('POST', '/v1/budget', budget(100))).status).toBe(200);
    await enforcerReads();

    await nats.kill();
    const down = Date.now();
    // readiness says so while NATS is away (before, the API kept answering nats:true until its client gave up)
    await waitFor(async () => (await ready(enforcer!.url)) === 503 && (await ready(api!.url)) === 503, 10_000, 'both not ready');
    // the outage itself: a fault of this length, not a wait for a condition
    await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (Date.now() - down))));
    await nats.start();

    await waitFor(async () => (await ready(enforcer!.url)) === 200 && (await ready(api!.url)) === 200, 30_000, 'both ready again after the outage');
    const readyz = (await (await fetch(`${api!.url}/readyz`)).json()) as Record<string, unknown>;
    expect(readyz).toMatchObject({ ok: true, nats: true, postgres: true });
    // the API writes (and announces the change) …
    const written = await call('POST', '/v1/budget', budget(50));
    expect(written.status).toBe(200);
    // … the enforcer reads the stream again …
    await enforcerReads();
    // … and answers admission checks through the API (the enforcer's check subscription is back)
    const check = await waitFor(async () => {
      const r = await call('POST', '/v1/budget/check', { deployment_id: deploymentId, scope: 'jobs', estimate_units: 1 });
      return r.status === 503 ? undefined : r;
    }, 20_000, 'an admission answer');
    expect(check.status).toBe(200);
    expect(check.json).toMatchObject({ allow: true, limit_units: 50, used_units: 2 });
  }, 120_000);
});
