import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { ensureEventsStream } from '@kaching/contracts';
import { loadConfig, start, verifyProjections, type ProjectorHandle } from '@kaching/projector';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { publishMessages } from '../src/bench/generate.js';
import { expectedWinners, makeStream, rollupTotals, seedDeployment, waitCaughtUp } from './helpers.js';

const LONG = process.env.KACHING_LONG === '1' || process.env.KACHING_FAULTS === 'full';
// ~7k events normally; >= 100k when KACHING_LONG=1 (npm run test:faults sets KACHING_FAULTS=full)
const JOBS = LONG ? 80_000 : 4_000;

describe('projector over a generated stream (dups, revisions, out of order, skew)', () => {
  let env: IsolatedEnv;
  let handle: ProjectorHandle;
  let msgs: ReturnType<typeof makeStream>;
  let lastSeq = 0;

  beforeAll(async () => {
    env = await isolatedEnv();
    const { orgId, deploymentId } = await seedDeployment(env.pool);
    const nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    msgs = makeStream(env.names, { deploymentId, orgId, jobs: JOBS, seed: 11 });
    handle = await start({ ...loadConfig({}), databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, port: 0, host: '127.0.0.1', batchSize: 500 });
    await publishMessages(jetstream(nc), msgs);
    lastSeq = (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state.last_seq;
    await waitCaughtUp(env.pool, lastSeq, undefined, LONG ? 900_000 : 120_000);
  }, LONG ? 1_200_000 : 180_000);

  afterAll(async () => {
    await handle?.close();
    await env?.cleanup();
  });

  it('stores every message, exact duplicates included (they bypass the duplicate window)', () => {
    expect(lastSeq).toBe(msgs.length);
    if (LONG) expect(lastSeq).toBeGreaterThanOrEqual(100_000);
  });

  it('verify-projections finds no difference', async () => {
    const diffs = await verifyProjections(env.pool);
    expect(diffs).toEqual([]);
  });

  it('usage_sample has one row per distinct correlation id, carrying the winning revision', async () => {
    const winners = expectedWinners(msgs);
    const r = await env.pool.query<{ correlation_id: string; revision: string }>('select correlation_id, revision from usage_sample');
    expect(r.rows.length).toBe(winners.size);
    for (const row of r.rows) expect(row.revision).toBe(winners.get(row.correlation_id)?.revision);
    const jobs = await env.pool.query<{ c: string }>(`select count(*) as c from job where revision <> ''`);
    expect(Number(jobs.rows[0]!.c)).toBe(winners.size);
  });

  it('rollup sums equal an independent recomputation (SQL over usage_sample and JS over the winners)', async () => {
    const [raw, hourly, daily] = await rollupTotals(env.pool);
    const { src: _a, ...r } = raw!;
    const { src: _b, ...h } = hourly!;
    const { src: _c, ...d } = daily!;
    expect(h).toEqual(r);
    expect(d).toEqual(r);
    let bytes = 0;
    let tokens = 0;
    for (const w of expectedWinners(msgs).values()) {
      bytes += w.contextBytesRead;
      tokens += w.tokensIn;
    }
    expect(r.context_bytes_read).toBe(String(bytes));
    expect(r.model_tokens_in).toBe(String(tokens));
    const seats = await env.pool.query(`select d.day, d.seats_active, d.nodes_active,
        (select count(distinct agent_id) from usage_sample u where (date_trunc('hour', coalesce(u.ended_at, u.started_at), 'UTC') at time zone 'UTC')::date = d.day) as agents,
        (select count(distinct node_id) from usage_sample u where (date_trunc('hour', coalesce(u.ended_at, u.started_at), 'UTC') at time zone 'UTC')::date = d.day) as nodes
      from usage_rollup_daily d`);
    for (const row of seats.rows) {
      expect(row.seats_active).toBe(Number(row.agents));
      expect(row.nodes_active).toBe(Number(row.nodes));
    }
  });

  it('the concurrency index is populated and the daily peak matches it', async () => {
    const r = await env.pool.query(`select count(*)::int as minutes, max(jobs_running) as peak from concurrency_minute`);
    expect(r.rows[0].minutes).toBeGreaterThan(0);
    const p = await env.pool.query(`select max(orchestration_peak_concurrency) as peak from usage_rollup_daily`);
    expect(p.rows[0].peak).toBe(r.rows[0].peak);
  });

  it('exposes per-projection lag metrics and readiness', async () => {
    const text = await (await fetch(`${handle.url}/metrics`)).text();
    for (const p of ['raw', 'rollups', 'concurrency']) {
      expect(text).toContain(`kaching_projector_last_applied_seq{projection="${p}"} ${lastSeq}`);
      expect(text).toMatch(new RegExp(`kaching_projector_event_latency_seconds_count\\{projection="${p}"\\} \\d+`));
      expect(text).toContain(`kaching_projector_pending_messages{projection="${p}"}`);
    }
    expect((await fetch(`${handle.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${handle.url}/healthz`)).status).toBe(200);
  });

  it('verify-projections reports tampered rollups and concurrency rows (it is not vacuous)', async () => {
    const c = await env.pool.connect();
    try {
      await c.query('begin');
      await c.query(`update usage_rollup_hourly set cpu_seconds = cpu_seconds + 0.000001
        where (deployment_id, bucket_start, agent_type) = (select deployment_id, bucket_start, agent_type from usage_rollup_hourly limit 1)`);
      await c.query(`delete from concurrency_minute where (deployment_id, minute) = (select deployment_id, minute from concurrency_minute limit 1)`);
      await c.query(`update usage_rollup_daily set seats_active = seats_active + 1
        where (deployment_id, day) = (select deployment_id, day from usage_rollup_daily limit 1)`);
      await c.query('commit');
      const diffs = await verifyProjections(env.pool);
      const tables = diffs.map((d) => d.table).sort();
      expect(tables).toContain('usage_rollup_hourly');
      expect(tables).toContain('concurrency_minute');
      expect(tables).toContain('usage_rollup_daily');
    } finally {
      c.release();
    }
  });
});
