import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { ensureEventsStream } from '@kaching/contracts';
import { createDeployment, createOrg, issueApiKey, loadConfig, start, type ApiHandle } from '@kaching/api';
import { loadConfig as enforcerConfig, start as startEnforcer, type EnforcerHandle } from '@kaching/enforcer';
import { checkpoint, publish, usageRecord } from '../../enforcer/test/helpers.js';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { waitUntil } from '../../test/support/wait.js';
import { client } from './support/seed.js';

/**
 * POST /v1/budget/check against the real enforcer (not a hand-written NATS responder): the API forwards the
 * check, the enforcer answers from its ledger and reservations, the API turns a deny into 402. One reservation
 * is settled by the job's usage event arriving, another is released when its hold expires.
 */
describe('POST /v1/budget/check with the real enforcer', () => {
  let env: IsolatedEnv;
  let nc: NatsConnection;
  let api: ApiHandle;
  let enforcer: EnforcerHandle;
  let orgId: string;
  let deploymentId: string;
  let call: ReturnType<typeof client>;

  beforeAll(async () => {
    env = await isolatedEnv();
    nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    orgId = (await createOrg(env.pool, { name: 'admission' })).org_id;
    deploymentId = String((await createDeployment(env.pool, orgId, { name: 'admission-prod' })).deployment_id);
    const local = { port: 0, host: '127.0.0.1', logLevel: 'error' };
    enforcer = await startEnforcer({ ...enforcerConfig(env.env), ...local });
    api = await start({ ...loadConfig(env.env), ...local });
    call = client(api.url, (await issueApiKey(env.pool, { orgId, scopes: ['read', 'admin'] })).apiKey);
    expect((await call('POST', '/v1/budget', { deployment_id: deploymentId, scope: 'jobs', metric: 'jobs', period: 'daily', limit_units: 3, action: 'block' })).status).toBe(200);
    // the enforcer's check subscription reaches the server asynchronously
    await waitUntil(async () => (await call('POST', '/v1/budget/check', { deployment_id: deploymentId, scope: 'jobs', estimate_units: 0 })).status === 200, 20_000, 'the enforcer answering');
  });

  afterAll(async () => {
    await api?.close();
    await enforcer?.close();
    await env?.cleanup();
  });

  const check = (body: Record<string, unknown>) => call('POST', '/v1/budget/check', { deployment_id: deploymentId, scope: 'jobs', ...body });
  const reservation = async (correlationId: string) =>
    (await env.pool.query('select settled_at, expires_at from enforcer_reservation where correlation_id = $1', [correlationId])).rows[0] as { settled_at: Date | null; expires_at: Date };

  it('reserves, denies with 402 and the admission answer, settles a reservation on usage and releases an expired one', async () => {
    const held = await check({ estimate_units: 1, reserve_ttl_s: 600, correlation_id: 'job-settled' });
    expect(held.status).toBe(200);
    expect(held.json).toMatchObject({ allow: true, limit_units: 3, used_units: 0, reserved_units: 1, remaining_units: 2, reservation_id: expect.any(String) });
    const brief = await check({ estimate_units: 1, reserve_ttl_s: 2, correlation_id: 'job-released' });
    expect(brief.json).toMatchObject({ allow: true, reserved_units: 2, remaining_units: 1 });

    // 3 − 2 held leaves 1: an estimate of 2 is denied with 402
    const denied = await check({ estimate_units: 2 });
    expect(denied.status).toBe(402);
    expect(denied.json.error.code).toBe('BUDGET_DENIED');
    expect(denied.json.admission).toMatchObject({ allow: false, limit_units: 3, used_units: 0, reserved_units: 2, remaining_units: 1, action: 'block' });

    // settled: the job's usage arrives; its reservation closes and the unit moves from reserved to used
    const seq = await publish(nc, env.names, [usageRecord(deploymentId, orgId, new Date(), { correlationId: 'job-settled' })]);
    await waitUntil(async () => (await checkpoint(env.pool)) >= seq, 30_000, 'the enforcer applying the usage');
    expect((await reservation('job-settled')).settled_at).toBeInstanceOf(Date);
    expect((await check({ estimate_units: 0 })).json).toMatchObject({ used_units: 1, reserved_units: 1, remaining_units: 1 });

    // released: no usage came for the second job; once its hold expired, its unit is free again
    const expiresAt = (await reservation('job-released')).expires_at.getTime();
    await waitUntil(async () => (await check({ estimate_units: 0 })).json.reserved_units === 0, 30_000, 'the brief reservation to expire');
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt - 1000);
    expect((await reservation('job-released')).settled_at).toBeNull();
    const after = await check({ estimate_units: 2, reserve_ttl_s: 600 });
    expect(after.status).toBe(200);
    expect(after.json).toMatchObject({ allow: true, used_units: 1, reserved_units: 2, remaining_units: 0 });
    expect((await check({ estimate_units: 1 })).status).toBe(402);
  });
});
