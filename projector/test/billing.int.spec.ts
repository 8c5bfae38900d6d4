import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { ensureEventsStream, setModelPrice, type StreamRecord, type UsageEvent } from '@kaching/contracts';
import { BillingForwarder, loadBillingConfig, loadConfig, replay, start, type ProjectorHandle } from '@kaching/projector';
import { createLogger } from '@kaching/contracts';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { publish, usageRecord } from '../../enforcer/test/helpers.js';
import { BillingReceiver } from './billingReceiver.js';
import { waitCaughtUp, waitFor } from './helpers.js';

// Billing forwarding: the rollups batch enqueues one record per finished, priced run (in its transaction), a
// later revision or a re-pricing that moves the cost enqueues a correction, and the forwarder delivers every
// record exactly once by idempotency key through outages, 5xx answers and dead-letter.

const AT = new Date('2026-11-20T10:00:00Z');
const TOKEN = 'billing-secret-token-7f3a';

let env: IsolatedEnv;
let nc: NatsConnection;
let projector: ProjectorHandle;
let org: string;
let dep: string;
const receiver = new BillingReceiver();

const gpt = (tin: number, tout = 0): UsageEvent['llm'] => ({ provider: 'openai', model_name: 'gpt-4o', tokens_in: tin, tokens_out: tout });

function event(correlationId: string, o: { llm?: UsageEvent['llm']; at?: Date; status?: UsageEvent['job']['status'] } = {}): StreamRecord {
  return usageRecord(dep, org, o.at ?? AT, { correlationId, ...(o.llm ? { llm: o.llm } : {}), ...(o.status ? { status: o.status } : {}) });
}

async function publishAll(recs: StreamRecord[]): Promise<void> {
  await waitCaughtUp(env.pool, await publish(nc, env.names, recs), ['rollups']);
}

interface OutboxRow { delivery_id: string; idempotency_key: string; kind: string; correlation_id: string; cost: string; delta: string; status: string; attempts: number; last_status: number | null; last_error: string | null }
async function outbox(): Promise<OutboxRow[]> {
  const r = await env.pool.query<OutboxRow>(
    `select delivery_id::text, idempotency_key, kind, correlation_id, cost_micro_usd::text as cost, delta_micro_usd::text as delta, status, attempts,
       last_status, last_error from billing_outbox b order by b.delivery_id`, // numerically, not as the text selected
  );
  return r.rows;
}
const allSent = async () => (await outbox()).every((r) => r.status === 'sent');
const counter = async (name: string): Promise<number> => {
  const m = (await projector.metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
  return m.reduce((a, v) => a + v.value, 0);
};
const bodyOf = (key: string) => JSON.parse(receiver.accepted.get(key)![0]!.body) as Record<string, unknown>;

const ids = { a: randomUUID(), b: randomUUID(), revised: randomUUID(), unpriced: randomUUID(), cpuOnly: randomUUID(), poison: randomUUID() };

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  await ensureEventsStream(nc, env.names);
  org = randomUUID();
  dep = randomUUID();
  await env.pool.query('insert into org (org_id, name) values ($1, $2)', [org, 'billing']);
  await env.pool.query(`insert into deployment (deployment_id, org_id, name) values ($1, $2, 'd')`, [dep, org]);
  await setModelPrice(env.pool, { provider: 'openai', model_name: 'gpt-4o', effective_from: '2026-01-01T00:00:00Z', input_per_1m_micro_usd: 2_500_000, output_per_1m_micro_usd: 10_000_000 });
  // the receiver's port, then nothing listening there: connection refused until the receiver comes up
  await receiver.listen(0);
  await receiver.stop();
  const base = loadConfig({ BILLING_SERVICE_URL: receiver.url, BILLING_SERVICE_TOKEN: TOKEN, BILLING_MAX_ATTEMPTS: '6', BILLING_RETRY_BASE_MS: '40', BILLING_RETRY_MAX_MS: '300', BILLING_POLL_MS: '30', BILLING_TIMEOUT_MS: '3000' });
  projector = await start({
    ...base, databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, port: 0, host: '127.0.0.1', batchSize: 50, repriceIntervalMs: 200, logLevel: 'error',
    projections: ['raw', 'rollups'],
  });
});

afterAll(async () => {
  await projector?.close();
  await receiver.stop();
  await env?.cleanup();
});

describe('billing forwarding', () => {
  it('a running revision is not billed; finished priced runs are enqueued in the batch and arrive exactly once through refused connections and 5xx', async () => {
    await publishAll([event(ids.revised, { status: 'running', llm: gpt(1_000) })]);
    expect(await outbox()).toEqual([]);
    await publishAll([
      event(ids.a, { llm: gpt(10_000, 1_000) }), // 25,000 + 10,000 µ$
      event(ids.b, { llm: gpt(4_000) }), // 10,000 µ$
      event(ids.revised, { at: new Date(AT.getTime() + 60_000), llm: gpt(2_000) }), // 5,000 µ$
      event(ids.unpriced, { llm: { provider: 'acme', model_name: 'mystery-1', tokens_in: 1_000, tokens_out: 100 } }),
      event(ids.cpuOnly),
    ]);
    const rows = await outbox();
    expect(rows.map((r) => [r.correlation_id, r.kind, r.cost, r.delta]).sort()).toEqual(
      [[ids.a, 'usage', '35000', '35000'], [ids.b, 'usage', '10000', '10000'], [ids.revised, 'usage', '5000', '5000']].sort(),
    );
    // nothing listens yet: attempts fail with connection refused and are retried with backoff
    await waitFor(async () => (await counter('kaching_billing_send_failures_total')) >= 3, 15_000, 'refused attempts');
    expect((await outbox()).some((r) => r.last_error === 'ECONNREFUSED')).toBe(true);
    expect(receiver.requests).toEqual([]);
    // it comes up, answering 503 to each record's first request
    receiver.respond = ({ attempt }) => (attempt === 1 ? 503 : 200);
    await receiver.listen();
    await waitFor(allSent, 15_000, 'every record sent');
    const keys = rows.map((r) => r.idempotency_key).sort();
    expect([...receiver.accepted.keys()].sort()).toEqual(keys);
    for (const k of keys) expect(receiver.accepted.get(k)).toHaveLength(1);
    expect(receiver.requests.filter((r) => r.status === 503)).toHaveLength(3);
    const a = rows.find((r) => r.correlation_id === ids.a)!;
    const sent = receiver.accepted.get(a.idempotency_key)![0]!;
    expect(sent.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(sent.headers['content-type']).toBe('application/json');
    expect(bodyOf(a.idempotency_key)).toMatchObject({
      idempotency_key: a.idempotency_key, kind: 'usage', service: 'kaching', org_id: org, customer_id: org, user_id: org, deployment_id: dep, run_id: ids.a,
      status: 'succeeded', provider: 'openai', model_name: 'gpt-4o', tokens_in: 10_000, tokens_out: 1_000, tokens_used: 11_000,
      cost_micro_usd: 35_000, cost_usd: '0.035000', delta_micro_usd: 35_000, currency: 'USD', started_at: '2026-11-20T10:00:00.000000Z', completed_at: '2026-11-20T10:00:00.000000Z',
    });
    expect(await counter('kaching_billing_records_sent_total')).toBe(3);
    expect(await counter('kaching_billing_records_dead_total')).toBe(0);
    // the token never reaches the database
    const leak = await env.pool.query(`select count(*)::int as n from billing_outbox where last_error like '%' || $1 || '%' or record::text like '%' || $1 || '%'`, [TOKEN]);
    expect(leak.rows[0].n).toBe(0);
  });

  it('a later revision of a billed run and a re-pricing are forwarded as corrections; a price arriving bills the unpriced run', async () => {
    receiver.respond = () => 200;
    // b is reported again, later and with more tokens: 8,000 in = 20,000 µ$, +10,000
    await publishAll([event(ids.b, { at: new Date(AT.getTime() + 120_000), llm: gpt(8_000) })]);
    // gpt-4o's input price halves from 10:00:30: b (now 10:02) and revised (10:01) are re-priced, a (10:00) is not
    await setModelPrice(env.pool, { provider: 'openai', model_name: 'gpt-4o', effective_from: new Date(AT.getTime() + 30_000).toISOString(), input_per_1m_micro_usd: 1_250_000, output_per_1m_micro_usd: 10_000_000 });
    await setModelPrice(env.pool, { provider: 'acme', model_name: 'mystery-1', effective_from: '2026-01-01T00:00:00Z', input_per_1m_micro_usd: 1_000_000, output_per_1m_micro_usd: 2_000_000 });
    await waitFor(async () => (await outbox()).length === 7 && (await allSent()), 20_000, 'corrections sent').catch(async (e) => {
      console.log(JSON.stringify(await outbox(), null, 1));
      throw e;
    });
    const rows = await outbox();
    const of = (id: string) => rows.filter((r) => r.correlation_id === id).map((r) => [r.kind, r.cost, r.delta]);
    expect(of(ids.a)).toEqual([['usage', '35000', '35000']]);
    expect(of(ids.b)).toEqual([['usage', '10000', '10000'], ['correction', '20000', '10000'], ['correction', '10000', '-10000']]);
    expect(of(ids.revised)).toEqual([['usage', '5000', '5000'], ['correction', '2500', '-2500']]);
    expect(of(ids.unpriced)).toEqual([['usage', '1200', '1200']]);
    for (const r of rows) expect(receiver.accepted.get(r.idempotency_key)).toHaveLength(1);
    const last = rows.filter((r) => r.correlation_id === ids.b).at(-1)!;
    expect(bodyOf(last.idempotency_key)).toMatchObject({ kind: 'correction', run_id: ids.b, cost_micro_usd: 10_000, delta_micro_usd: -10_000, delta_usd: '-0.010000' });
    // what billing was told per run equals the projections' cost
    const diff = await env.pool.query(
      `select s.correlation_id from projector_rollup_job s left join billing_run b using (deployment_id, correlation_id)
        where s.cost_micro_usd is not null and s.status <> 'running' and b.cost_micro_usd is distinct from s.cost_micro_usd`,
    );
    expect(diff.rows).toEqual([]);
  });

  it('replaying rollups and raw, and redelivered events, enqueue nothing new', async () => {
    const before = await outbox();
    const cfg = { databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'warn' };
    await replay(cfg, 'rollups', { batchSize: 3 });
    await replay(cfg, 'raw', { batchSize: 3 });
    // an older revision arriving late changes nothing
    const seq = await publish(nc, env.names, [event(ids.b, { at: new Date(AT.getTime() + 90_000), llm: gpt(99_000) })]);
    await waitCaughtUp(env.pool, seq, ['rollups']);
    // the handler-version rebuild path (state truncated, the stream re-applied through the live merges): billing_run
    // still says what billing was told, so a run re-derived with the same cost (here under another revision) adds nothing
    await env.pool.query('truncate projector_rollup_job');
    await publishAll([event(ids.a, { llm: gpt(10_000, 1_000) })]);
    expect(await outbox()).toEqual(before);
  });

  it('a record that keeps failing goes to dead-letter after BILLING_MAX_ATTEMPTS; retried, it is sent once', async () => {
    const sentBefore = await counter('kaching_billing_records_sent_total');
    receiver.respond = ({ body }) => (body.includes(ids.poison) ? 500 : 200);
    await publishAll([event(ids.poison, { llm: gpt(1_000) })]);
    await waitFor(async () => (await outbox()).some((r) => r.status === 'dead'), 20_000, 'dead-lettered');
    const dead = (await outbox()).filter((r) => r.status === 'dead');
    expect(dead).toMatchObject([{ correlation_id: ids.poison, attempts: 6, last_status: 500, last_error: 'HTTP 500: {"error":"unavailable"}' }]);
    expect(receiver.requests.filter((r) => r.body.includes(ids.poison))).toHaveLength(6);
    expect(await counter('kaching_billing_records_dead_total')).toBe(1);
    expect(await projector.metrics.registry.metrics()).toMatch(/kaching_billing_outbox_records\{status="dead"\} 1/);
    // what POST /v1/billing/deliveries/:id/retry does (api/src/routines/billing.ts)
    receiver.respond = () => 200;
    await env.pool.query(`update billing_outbox set status = 'pending', attempts = 0, next_attempt_at = now() where delivery_id = $1 and status = 'dead'`, [dead[0]!.delivery_id]);
    await waitFor(allSent, 15_000, 'the retried record sent');
    expect(receiver.accepted.get(dead[0]!.idempotency_key)).toHaveLength(1);
    expect(await counter('kaching_billing_records_sent_total')).toBe(sentBefore + 1);
    const text = await projector.metrics.registry.metrics();
    expect(text).toMatch(/kaching_billing_records_dead_total\{format="json"\} 1/);
    expect(text).toMatch(/kaching_billing_outbox_records\{status="dead"\} 0/);
  });

  it('a batch that fails after enqueueing rolls back with its outbox rows: retried, the run is enqueued once', async () => {
    const id = randomUUID();
    // the statement after the outbox insert (billing_run) fails once: the rollups, the outbox row and the checkpoint roll back together
    // (a sequence: nextval survives the rollback, so only the first attempt fails)
    await env.pool.query(`create sequence fail_once;
      create function fail_once() returns trigger language plpgsql as $$ begin
        if nextval('fail_once') = 1 then raise exception 'injected failure after the outbox insert'; end if;
        return new; end $$;
      create trigger fail_once before insert on billing_run for each row execute function fail_once()`);
    const failures = await projector.metrics.registry.getSingleMetric('kaching_projector_batch_failures_total')!.get();
    const before = failures.values.reduce((a, v) => a + v.value, 0);
    await publishAll([event(id, { llm: gpt(2_000) })]);
    const after = (await projector.metrics.registry.getSingleMetric('kaching_projector_batch_failures_total')!.get()).values.reduce((a, v) => a + v.value, 0);
    expect(after).toBeGreaterThan(before);
    await env.pool.query('drop trigger fail_once on billing_run; drop function fail_once(); drop sequence fail_once');
    const rows = (await outbox()).filter((r) => r.correlation_id === id);
    expect(rows.map((r) => [r.kind, r.cost])).toEqual([['usage', '5000']]);
    await waitFor(allSent, 15_000, 'sent');
    expect(receiver.accepted.get(rows[0]!.idempotency_key)).toHaveLength(1);
  });

  it('CloudEvents (OpenMeter) and Stripe meter-event shapes, each through a failing then recovering receiver', async () => {
    await projector.billing!.stop();
    await env.pool.query(`update org set billing_customer_id = 'cus_T3st' where org_id = $1`, [org]);
    const rows = await outbox();
    const log = createLogger('billing-test', 'error');
    const shapes: Record<string, Received[]> = {};
    for (const format of ['cloudevents', 'stripe'] as const) {
      const rx = new BillingReceiver();
      rx.respond = ({ attempt }) => (attempt === 1 ? 502 : 202);
      await rx.listen(0);
      await env.pool.query(`update billing_outbox set status = 'pending', attempts = 0, next_attempt_at = now()`);
      const cfg = loadBillingConfig({
        BILLING_SERVICE_URL: rx.url, BILLING_FORMAT: format, BILLING_SOURCE: 'kaching/test', BILLING_RETRY_BASE_MS: '20', BILLING_POLL_MS: '20',
        ...(format === 'stripe' ? { BILLING_EVENT_NAME: 'kaching_cost' } : {}),
      }, env.namespace)!;
      const fw = new BillingForwarder(env.pool, cfg, projector.metrics, log);
      fw.start();
      await waitFor(allSent, 15_000, `${format}: every record sent`);
      await fw.stop();
      await rx.stop();
      for (const r of rows) expect(rx.accepted.get(r.idempotency_key)).toHaveLength(1);
      shapes[format] = rows.map((r) => rx.accepted.get(r.idempotency_key)![0]!);
    }
    const a = rows.findIndex((r) => r.correlation_id === ids.a);
    const ce = shapes.cloudevents![a]!;
    expect(ce.headers['content-type']).toBe('application/cloudevents+json');
    expect(JSON.parse(ce.body)).toEqual({
      specversion: '1.0', id: rows[a]!.idempotency_key, source: 'kaching/test', type: 'io.kaching.run.cost', subject: 'cus_T3st',
      time: '2026-11-20T10:00:00.000Z', datacontenttype: 'application/json',
      data: {
        kind: 'usage', value_micro_usd: 35_000, cost_micro_usd: 35_000, org_id: org, deployment_id: dep, run_id: ids.a, revision: expect.any(String),
        status: 'succeeded', agent_type: 'coder', provider: 'openai', model_name: 'gpt-4o', tokens_in: 10_000, tokens_out: 1_000,
      },
    });
    // batched CloudEvents: one application/cloudevents-batch+json request per round; a 503 fails (and retries) the whole batch
    const rx = new BillingReceiver();
    let calls = 0;
    rx.respond = () => (++calls === 1 ? 503 : 200);
    await rx.listen(0);
    await env.pool.query(`update billing_outbox set status = 'pending', attempts = 0, next_attempt_at = now()`);
    const fw = new BillingForwarder(env.pool, loadBillingConfig({ BILLING_SERVICE_URL: rx.url, BILLING_FORMAT: 'cloudevents', BILLING_CLOUDEVENTS_BATCH: 'true', BILLING_SOURCE: 'kaching/test', BILLING_RETRY_BASE_MS: '20', BILLING_POLL_MS: '20' }, env.namespace)!, projector.metrics, log);
    fw.start();
    await waitFor(allSent, 15_000, 'batch: every record sent');
    await fw.stop();
    await rx.stop();
    expect(rx.requests.map((r) => [r.status, r.headers['content-type'], (JSON.parse(r.body) as unknown[]).length])).toEqual([
      [503, 'application/cloudevents-batch+json', rows.length], [200, 'application/cloudevents-batch+json', rows.length],
    ]);
    const batch = JSON.parse(rx.requests[1]!.body) as { id: string; specversion: string }[];
    expect(batch.map((e) => e.id).sort()).toEqual(rows.map((r) => r.idempotency_key).sort());
    expect(batch[a]).toEqual(JSON.parse(ce.body));

    const b = rows.map((r, i) => [r, i] as const).filter(([r]) => r.correlation_id === ids.b).at(-1)!;
    const st = shapes.stripe![b[1]]!;
    expect(st.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(st.headers['idempotency-key']).toBe(b[0].idempotency_key);
    expect(Object.fromEntries(new URLSearchParams(st.body))).toEqual({
      event_name: 'kaching_cost', identifier: b[0].idempotency_key, timestamp: String(Math.floor(AT.getTime() / 1000) + 120),
      'payload[stripe_customer_id]': 'cus_T3st', 'payload[value]': '-10000',
    });
  });
});

type Received = BillingReceiver['requests'][number];
