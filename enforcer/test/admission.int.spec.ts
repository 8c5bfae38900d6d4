import { createServer, type Server } from 'node:http';
import { Webhook } from 'standardwebhooks';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { ensureEventsStream, newWebhookSecret, type AdmissionResponse } from '@kaching/contracts';
import { addWebhook, checkAdmission, start, type EnforcerHandle } from '@kaching/enforcer';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { ServiceProcess } from '../../test/support/instances.js';
import { addBudget, checkpoint, publish, seedDeployment, seedOrg, usageRecord, waitFor } from './helpers.js';

describe('admission checks and notifications', () => {
  let env: IsolatedEnv;
  let nc: NatsConnection;
  let org: string;
  let dep: string;
  let handle: EnforcerHandle;

  beforeAll(async () => {
    env = await isolatedEnv();
    nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    org = await seedOrg(env.pool);
    dep = await seedDeployment(env.pool, org);
    await addBudget(env.pool, dep, org, { scope: 'jobs', metric: 'jobs', period: 'daily', limit: 10, action: 'block' });
    handle = await start({ natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'error', port: 0, host: '127.0.0.1', licensePublicKey: null, batchSize: 100 });
  });

  afterAll(async () => {
    await handle?.close();
    await env?.cleanup();
  });

  it('50 concurrent checks over NATS against a budget with room for 10, answered by two enforcer processes, let exactly 10 through', async () => {
    // the in-process enforcer stops answering: only the two child processes share the check queue group
    await handle.close();
    const procs = [new ServiceProcess('enforcer', env.env, 'enforcer-a'), new ServiceProcess('enforcer', env.env, 'enforcer-b')];
    try {
      await Promise.all(procs.map((p) => p.start()));
      const results = await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const body = { deployment_id: dep, scope: 'jobs', estimate_units: 1, reserve_ttl_s: 300, correlation_id: `c-${i}` };
          return (await nc.request(env.names.checkSubject(dep), JSON.stringify(body), { timeout: 20_000 })).json<AdmissionResponse>();
        }),
      );
      const allowed = results.filter((r) => r.allow);
      expect(allowed).toHaveLength(10);
      expect(results.filter((r) => !r.allow).every((r) => r.remaining_units === 0 && r.action === 'block')).toBe(true);
      // both processes answered checks (a queue group spreads the 50 requests)
      for (const p of procs) expect(await p.metric('kaching_enforcer_admissions_total'), p.name).toBeGreaterThan(0);
      const reserved = await env.pool.query(`select count(*)::int as n from enforcer_reservation where settled_at is null`);
      expect(reserved.rows[0].n).toBe(10);
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
      handle = await start({ natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'error', port: 0, host: '127.0.0.1', licensePublicKey: null, batchSize: 100 });
      // its check subscription reaches the server asynchronously: answered once, it is there for the next test
      await waitFor(async () => nc.request(env.names.checkSubject(dep), JSON.stringify({ deployment_id: dep, scope: 'jobs', estimate_units: 0 }), { timeout: 2000 }).then(() => true, () => false), 20_000, 'the enforcer answering checks');
    }
  });

  it('answers over NATS on the check subject; deny carries the remaining budget', async () => {
    const res = await nc.request(env.names.checkSubject(dep), JSON.stringify({ deployment_id: dep, scope: 'jobs', estimate_units: 1 }), { timeout: 5000 });
    const body = res.json<AdmissionResponse>();
    expect(body).toMatchObject({ allow: false, limit_units: 10, used_units: 0, reserved_units: 10, remaining_units: 0 });
    const bad = (await nc.request(env.names.checkSubject(dep), JSON.stringify({ deployment_id: dep, scope: 'jobs', estimate_units: -1 }), { timeout: 5000 })).json<{ error: { code: string; field: string } }>();
    expect(bad.error).toMatchObject({ code: 'FIELD_RANGE', field: 'estimate_units' });
  });

  it('a reservation settles when usage with its correlation id arrives', async () => {
    const reserved = await env.pool.query(`select correlation_id from enforcer_reservation where settled_at is null order by created_at limit 1`);
    const corr = reserved.rows[0].correlation_id as string;
    const last = await publish(nc, env.names, [usageRecord(dep, org, new Date(), { cpu: 1, correlationId: corr })]);
    await waitFor(async () => (await checkpoint(env.pool)) >= last, 10_000, 'checkpoint');
    const r = await env.pool.query(`select settled_at from enforcer_reservation where correlation_id = $1`, [corr]);
    expect(r.rows[0].settled_at).not.toBeNull();
    const after = await checkAdmission(env.pool, { deployment_id: dep, scope: 'jobs', estimate_units: 0 });
    expect(after).toMatchObject({ used_units: 1, reserved_units: 9, remaining_units: 0 });
  });

  it('webhooks are signed per Standard Webhooks and retried with backoff until delivered', async () => {
    const hits: { headers: Record<string, string>; body: string }[] = [];
    let fail = 1;
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        hits.push({ headers: req.headers as Record<string, string>, body });
        res.statusCode = fail-- > 0 ? 500 : 204;
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      const secret = newWebhookSecret();
      await addWebhook(env.pool, { orgId: org, deploymentId: dep, kind: 'webhook', url, secret });
      // a decision to notify about: the budget is used up by usage beyond its limit
      const last = await publish(nc, env.names, Array.from({ length: 10 }, () => usageRecord(dep, org, new Date(), { cpu: 1 })));
      await waitFor(async () => (await checkpoint(env.pool)) >= last, 10_000, 'checkpoint');
      await waitFor(async () => hits.length >= 1, 10_000, 'first attempt');
      // first attempt answered 500: the notifier retries after its backoff (1 s) on its own
      await waitFor(async () => {
        return (await env.pool.query(`select delivered_at from enforcer_notification`)).rows[0]?.delivered_at ? true : null;
      }, 10_000, 'delivery');
      const row = (await env.pool.query(`select attempts from enforcer_notification`)).rows[0];
      expect(row.attempts).toBeGreaterThanOrEqual(2);
      const h = hits.at(-1)!;
      // the receiver's library verifies id, timestamp and signature; a retry keeps the message id
      expect(new Webhook(secret).verify(h.body, h.headers)).toMatchObject({ type: 'decision.active', data: { code: 'BUDGET_EXCEEDED', deployment_id: dep } });
      expect(hits[0]!.headers['webhook-id']).toBe(h.headers['webhook-id']);
      expect(() => new Webhook(newWebhookSecret()).verify(h.body, h.headers)).toThrow();
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
