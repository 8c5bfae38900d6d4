import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import type { NatsConnection } from '@nats-io/transport-node';
import { channelKey, createChannel, ensureEventsStream, listDeliveries, type PolicyDecision } from '@kaching/contracts';
import { start, type EnforcerHandle } from '@kaching/enforcer';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { startReceiver } from '../../test/support/receiver.js';
import { expectSlackShape } from '../../test/support/slack.js';
import { addQuota, checkpoint, publish, seedDeployment, seedOrg, usageRecord, waitFor } from './helpers.js';

// Alerts routed to channels: filters, Slack's shape with figures for people, Standard Webhooks signatures,
// and a receiver that is down for longer than the old notifier's 10 attempts still gets every alert.
describe('alert channels', () => {
  let env: IsolatedEnv;
  let nc: NatsConnection;
  let handle: EnforcerHandle;
  let org: string;
  let dep: string;
  const DOWN_FOR = 12;
  const receivers: { close(): Promise<void> }[] = [];

  beforeAll(async () => {
    env = await isolatedEnv();
    nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    org = await seedOrg(env.pool);
    dep = await seedDeployment(env.pool, org);
    await addQuota(env.pool, dep, org, { name: 'cpu', metric: 'cpu_seconds', period: 'daily', hard: 2500, soft: null });
    await addQuota(env.pool, dep, org, { name: 'ctx', metric: 'context_bytes_written', period: 'daily', hard: 100_000_000, soft: null });
    handle = await start({
      natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'error', port: 0, host: '127.0.0.1', licensePublicKey: null, batchSize: 100,
      notify: { intervalMs: 20, timeoutMs: 2000, backoffBaseMs: 10, backoffMaxMs: 40, giveUpAfterMs: 3_600_000 },
    });
  });

  afterAll(async () => {
    await handle?.close();
    await Promise.all(receivers.map((r) => r.close()));
    await env?.cleanup();
  });

  it('routes by deployment, code and severity; Slack gets people-formatted blocks; a webhook down for a while still gets every alert, signed', async () => {
    const hook = await startReceiver((_h, n) => (n < DOWN_FOR ? 503 : 204));
    const slack = await startReceiver();
    const never = await startReceiver();
    receivers.push(hook, slack, never);
    const key = await channelKey(env.pool);
    const other = await seedDeployment(env.pool, org);
    const w = await createChannel(env.pool, key, org, { kind: 'webhook', url: hook.url, deployment_id: dep });
    await createChannel(env.pool, key, org, { kind: 'slack', url: slack.url, severities: ['error'], codes: ['QUOTA_EXCEEDED', 'BUDGET_EXCEEDED'] });
    for (const f of [{ codes: ['LICENSE_EXPIRED'] }, { deployment_id: other }, { severities: ['info', 'warn'] }]) {
      await createChannel(env.pool, key, org, { kind: 'webhook', url: never.url, ...f });
    }

    const rec = usageRecord(dep, org, new Date(), { cpu: 2502.867177 });
    if (rec.kind === 'usage') rec.usage.metrics.context_bytes_written = 120802782;
    const last = await publish(nc, env.names, [rec]);
    await waitFor(async () => (await checkpoint(env.pool)) >= last, 10_000, 'checkpoint');

    // alert text for people, exact values in the context for machines
    const alerts = (await env.pool.query(`select context->>'scope' as scope, message, context from alert where deployment_id = $1 order by 1`, [dep])).rows;
    expect(alerts.map((a) => a.scope)).toEqual(['cpu', 'ctx']);
    expect(alerts[0].message).toMatch(/^Quota cpu: cpu_seconds 2,502\.9 CPU-s exceeds the limit 2,500 CPU-s \(daily window from \d{4}-\d\d-\d\d\)$/);
    expect(alerts[0].context).toMatchObject({ metric: 'cpu_seconds', observed: 2502.867177, limit: 2500 });
    expect(alerts[1].message).toContain('context_bytes_written 120.8 MB exceeds the limit 100 MB');
    expect(alerts[1].context).toMatchObject({ observed: 120802782, limit: 100000000 });

    await waitFor(async () => slack.hits.length >= 2, 10_000, 'slack messages');
    for (const h of slack.hits) expectSlackShape(JSON.parse(h.body));
    const texts = slack.hits.map((h) => JSON.parse(h.body).text as string).sort();
    expect(texts[0]).toContain('[KACHING QUOTA_EXCEEDED] Quota cpu: cpu_seconds 2,502.9 CPU-s exceeds the limit 2,500 CPU-s');
    expect(texts[1]).toContain('120.8 MB');
    const ctxBlocks = JSON.stringify(JSON.parse(slack.hits.find((h) => h.body.includes('120.8 MB'))!.body).blocks);
    expect(ctxBlocks).toContain('*Used*\\n120.8 MB');
    expect(ctxBlocks).toContain('*Limit*\\n100 MB');
    expect(slack.hits.map((h) => h.body).join()).not.toMatch(/120802782|2502\.867177/);

    // the webhook answered 503 twelve times (the old notifier gave up after 10): both alerts arrive anyway
    const delivered = await waitFor(async () => {
      const ds = await listDeliveries(env.pool, w.channel_id);
      return ds.length === 2 && ds.every((d) => d.status === 'delivered') ? ds : null;
    }, 10_000, 'webhook deliveries');
    expect(delivered.reduce((n, d) => n + d.attempts, 0)).toBe(DOWN_FOR + 2);
    expect(delivered.every((d) => d.last_status === 204 && d.next_attempt_at === null && d.last_error === null)).toBe(true);
    const ok = hook.hits.filter((h) => h.status === 204);
    expect(ok).toHaveLength(2);
    const data = ok.map((h) => (new Webhook(w.secret).verify(h.body, h.headers) as { type: string; data: PolicyDecision }).data);
    expect(data.map((d) => d.observed).sort((a, b) => a! - b!)).toEqual([2502.867177, 120802782]);
    // a retry carries the same message id (receivers de-duplicate on it)
    const ids = new Set(hook.hits.map((h) => h.headers['webhook-id']));
    expect(ids.size).toBe(2);

    expect(never.hits).toHaveLength(0);
    const queued = await env.pool.query(`select count(*)::int as n from enforcer_notification n join enforcer_webhook w using (webhook_id) where w.url = $1`, [never.url]);
    expect(queued.rows[0].n).toBe(0);
  });
});
