import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { decisionsBucket } from '@kaching/contracts';
import { addUser, loadConfig, start, type ApiHandle } from '@kaching/api';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { requireTool } from '../../test/support/tools.js';
import { seedOrg, type SeededOrg } from './support/seed.js';

const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let env: IsolatedEnv;
let api: ApiHandle;
let A: SeededOrg;
let userDataDir: string;
let browser: BrowserContext;
let page: Page;

/** The API's "now" and the seeded rows': pinned, so "today" is the same day whenever the test runs. */
const AT = new Date('2026-11-20T15:00:00Z');

/**
 * A deployment with two weeks of usage in the enforcer's ledger (what the cards show as used) and in the
 * rollups (drill-downs), caps, alerts, a suggestion and a live decision — all relative to AT.
 */
async function seedDashboard(o: SeededOrg): Promise<void> {
  const q = (sql: string, p: unknown[] = []) => env.pool.query(sql, p);
  await q(`update deployment set name = 'Acme research fleet' where deployment_id = $1`, [o.deploymentId]);
  // replace seedOrg's generic rows with the dashboard's story (its one job stays in the ledger)
  for (const t of ['usage_rollup_daily', 'usage_rollup_hourly', 'usage_sample', 'alert', 'suggestion', 'quota', 'budget']) {
    await q(`delete from ${t} where deployment_id = $1`, [o.deploymentId]);
  }
  const today = `($2::timestamptz at time zone 'UTC')::date`;
  // 14 days of 100 MB context, 200k input and 50k output tokens a day, in the ledger and the rollups
  await q(
    `insert into enforcer_usage_daily as u (deployment_id, metric, day, org_id, value)
     select $1, m, ${today} - i, $3, v from generate_series(0, 13) i
       cross join (values ('context_bytes_written', 100000000), ('model_tokens_in', 200000), ('model_tokens_out', 50000)) x(m, v)
     on conflict (deployment_id, metric, day) do update set value = excluded.value`,
    [o.deploymentId, AT, o.orgId],
  );
  await q(
    `insert into usage_rollup_daily (deployment_id, day, org_id, jobs, context_bytes_written, model_tokens_in, model_tokens_out, seats_active, nodes_active)
     select $1, ${today} - i, $3, 120 + i * 3, 100000000, 200000, 50000, 4 + (13 - i) % 5, 2 + i % 2 from generate_series(0, 13) i`,
    [o.deploymentId, AT, o.orgId],
  );
  // spend today: 4 jobs priced at $6 each → $24 of $40
  await q(`insert into enforcer_usage_daily (deployment_id, metric, day, org_id, value) values ($1, 'cost_usd', ${today}, $3, 24)`, [o.deploymentId, AT, o.orgId]);
  await q(`insert into quota (quota_id, deployment_id, org_id, name, metric, period, hard_limit, soft_threshold) values
     (gen_random_uuid(), $1, $2, 'context-30d', 'context_bytes_written', 'rolling_30d', 2000000000, 1600000000),
     (gen_random_uuid(), $1, $2, 'tokens-in-30d', 'model_tokens_in', 'rolling_30d', 3200000, 2800000)`, [o.deploymentId, o.orgId]);
  await q(`insert into budget (budget_id, deployment_id, org_id, scope, metric, period, limit_units, action) values
     (gen_random_uuid(), $1, $2, 'llm-spend', 'cost_usd', 'rolling_30d', 40, 'block')`, [o.deploymentId, o.orgId]);
  // three nodes and agents of three types
  const types = ['planner', 'coder', 'reviewer'];
  const nodes: string[] = [o.nodeId];
  for (let n = 2; n <= 3; n++) {
    const r = await q(`insert into node (deployment_id, node_id, org_id, hostname, hw_class, first_seen_at, last_seen_at)
       values ($1, gen_random_uuid(), $2, $3, $4, $5::timestamptz - interval '10 days', $5::timestamptz - interval '2 minutes') returning node_id`,
      [o.deploymentId, o.orgId, `gpu-node-${n}`, n === 2 ? 'gpu-a100' : 'cpu-epyc', AT]);
    nodes.push(r.rows[0].node_id);
  }
  const agents: string[] = [];
  for (let i = 0; i < 7; i++) {
    const r = await q(`insert into agent (deployment_id, agent_id, org_id, node_id, agent_type, version, first_seen_at, last_seen_at)
       values ($1, gen_random_uuid(), $2, $3, $4, '2.3.' || $5::int, $6::timestamptz - interval '9 days', $6::timestamptz - make_interval(mins => $5::int)) returning agent_id`,
      [o.deploymentId, o.orgId, nodes[i % 3], types[i % 3], i, AT]);
    agents.push(r.rows[0].agent_id);
  }
  // today the seven agents ran a job each on the three nodes: with seedOrg's job, 8 seats of 10, 3 nodes of 4
  for (let i = 0; i < 7; i++) await contribution(o, `job-${i}`, agents[i]!, nodes[i % 3]!);
  // 4 priced samples (raw rows for the drill-downs)
  for (let i = 1; i <= 4; i++) {
    await q(`insert into usage_sample (deployment_id, correlation_id, started_at, org_id, job_id, agent_id, node_id, agent_type, status,
         model_name, provider, model_tokens_in, model_tokens_out, revision, stream_seq)
       values ($1, 'cost-' || $4::int, $6::timestamptz - make_interval(mins => $4::int * 20), $2, gen_random_uuid(), $5, $3, 'coder', 'succeeded', 'claude-x', 'anthropic', 1000000, 200000, 'r', $4::int)`,
      [o.deploymentId, o.orgId, nodes[i % 3], i, o.agentId, AT]);
  }
  // hourly rollups over the 24 h before AT per type: coder 5 jobs/h, planner 2, reviewer 3
  await q(`select ensure_hourly_partitions($1::timestamptz - interval '1 day', $1::timestamptz)`, [AT]);
  await q(`insert into usage_rollup_hourly (deployment_id, bucket_start, agent_type, org_id, jobs, jobs_failed, cpu_seconds, context_bytes_written, model_tokens_in, model_tokens_out)
     select $1, date_trunc('hour', $3::timestamptz, 'UTC') - make_interval(hours => h), t.agent_type, $2, t.jobs + (h % 4), (h % 7 = 0)::int, 40.5 * t.jobs, 4000000 * t.jobs, 8000 * t.jobs + h * 500, 2000 * t.jobs
     from generate_series(1, 24) h cross join (values ('coder', 5), ('planner', 2), ('reviewer', 3)) t(agent_type, jobs)`, [o.deploymentId, o.orgId, AT]);
  // this week: the spend budget blocked 3 times, context neared its quota once
  for (let i = 0; i < 3; i++) {
    await q(`insert into alert (alert_id, deployment_id, org_id, decision_id, created_at, severity, code, message, context)
       values (gen_random_uuid(), $1, $2, 'blk-' || $3::int, $4::timestamptz - make_interval(hours => 30 * $3::int + 1), 'error', 'BUDGET_EXCEEDED', 'Budget llm-spend exhausted — new LLM jobs blocked', '{"action":"block"}')`,
      [o.deploymentId, o.orgId, i, AT]);
  }
  await q(`insert into alert (alert_id, deployment_id, org_id, decision_id, created_at, severity, code, message, context)
     values (gen_random_uuid(), $1, $2, 'near-1', $3::timestamptz - interval '5 hours', 'warn', 'QUOTA_NEARING', 'Context volume at 70% of the 30-day quota', '{"action":"warn"}')`, [o.deploymentId, o.orgId, AT]);
  await q(`insert into suggestion (suggestion_id, deployment_id, org_id, decision_id, created_at, kind, rationale, target_plan, diffs)
     values (gen_random_uuid(), $1, $2, 'sug-1', $3, 'upgrade_tier', '30-day context is 1.8× your cap; Business raises the cap 3×', 'Business',
       '{"context_cap": "2 GB → 6 GB", "seats": "10 → 50", "price_delta_usd_year": "+4,800"}')`, [o.deploymentId, o.orgId, AT]);
  const kv = await decisionsBucket(await env.nats(), env.names);
  await kv.put(env.names.decisionKey(o.deploymentId, 'llm-spend'), JSON.stringify({
    schema: 'kaching.v1.policy_decision', decision_id: 'blk-0', deployment_id: o.deploymentId, org_id: o.orgId, code: 'BUDGET_EXCEEDED', scope: 'llm-spend',
    state: 'active', action: 'block', enforcement: 'hard', severity: 'error', message: 'LLM spend budget exhausted for this period', issued_at: AT.toISOString(),
  }));
}

/** One job of today in the enforcer's ledger, as the enforcer records it. */
async function contribution(o: SeededOrg, correlationId: string, agentId: string, nodeId: string): Promise<void> {
  await env.pool.query(
    `insert into enforcer_contribution (deployment_id, correlation_id, org_id, revision, day, attributed_at, node_id, agent_id, status, amounts, stream_seq)
     values ($1, $2, $3, 'r', ($4::timestamptz at time zone 'UTC')::date, $4, $5, $6, 'succeeded', '{"jobs": 1}', 1)`,
    [o.deploymentId, correlationId, o.orgId, AT, nodeId, agentId],
  );
}

beforeAll(async () => {
  // installed by the setup script (node deploy/services.mjs ensure), never by a test
  const CHROMIUM = requireTool('chromium', 'chromium');
  env = await isolatedEnv();
  A = await seedOrg(env.pool, 'acme', { at: AT });
  await seedDashboard(A);
  await addUser(env.pool, { orgId: A.orgId, login: 'ops@acme.example', role: 'viewer', password: 'a-long-dashboard-password' });
  api = await start({ ...loadConfig(env.env), port: 0 }, { pool: env.pool, nc: await env.nats(), clock: () => AT.getTime() });
  userDataDir = mkdtempSync(join(tmpdir(), 'kaching-chromium-'));
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1440, height: 1000 }, deviceScaleFactor: 1,
  });
  page = browser.pages()[0] ?? (await browser.newPage());
});

afterAll(async () => {
  await browser?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  await api?.close();
  await env?.cleanup();
});

const text = (id: string) => page.getByTestId(id).innerText();

describe('dashboard in a real browser', () => {
  it('shows the tier cards with the right numbers and % of cap, alerts, bottlenecks and the upgrade offer', async () => {
    await page.goto(`${api.url}/signin`);
    await page.getByTestId('signin-login').fill('ops@acme.example');
    await page.getByTestId('signin-password').fill('a-long-dashboard-password');
    await page.getByTestId('signin-submit').click();
    await page.waitForURL(`${api.url}/`);
    await page.goto(`${api.url}/#deployment=${A.deploymentId}&refresh=1000`);
    await page.getByTestId('card-cost-pct').waitFor();
    expect(await text('deployment-name')).toBe('Acme research fleet');

    expect(await text('card-seats-value')).toBe('8');
    expect(await text('card-seats-cap')).toContain('of 10');
    expect(await text('card-seats-pct')).toBe('80.0% of cap');
    expect(await text('card-nodes-value')).toBe('3');
    expect(await text('card-nodes-pct')).toBe('75.0% of cap');
    expect(await text('card-context-value')).toBe('1.4 GB');
    expect(await text('card-context-cap')).toContain('of 2 GB');
    expect(await text('card-context-pct')).toBe('70.0% of cap');
    expect(await text('card-tokens-value')).toBe('2.8M'); // input tokens: 14 × 200k
    expect(await text('card-tokens-pct')).toBe('87.5% of cap');
    expect(await text('card-cost-value')).toBe('$24.00');
    expect(await text('card-cost-cap')).toContain('of $40.00');
    expect(await text('card-cost-pct')).toBe('60.0% of cap');
    for (const k of ['seats', 'nodes', 'context', 'tokens', 'cost']) {
      expect(await page.getByTestId(`card-${k}-spark`).locator('polyline').count()).toBe(1);
    }

    expect(await text('bottleneck-BUDGET_EXCEEDED')).toContain('blocked 3× this week');
    expect(await text('decision-llm-spend')).toContain('block on llm-spend');
    expect(await page.getByTestId('alert').count()).toBe(4);
    expect(await text('upgrade-cta')).toContain('Upgrade to Business');
    expect(await text('upgrade-deltas')).toContain('2 GB → 6 GB');
  });

  it('drills down into an agent type and into nodes', async () => {
    expect(await page.getByTestId('agent-type-row').count()).toBe(3);
    await page.locator('[data-testid="agent-type-row"][data-type="coder"]').click();
    await page.getByTestId('agent-type-detail').waitFor();
    expect(await text('agent-type-name')).toBe('coder');
    // 24 hours of 5 + (h % 4) jobs
    const expectedJobs = Array.from({ length: 24 }, (_, i) => 5 + ((i + 1) % 4)).reduce((a, b) => a + b, 0);
    expect(await text('agent-type-jobs')).toBe(String(expectedJobs));
    expect(await text('agent-type-agents')).toBe('3'); // seedOrg's coder + two of the seven
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

    await page.getByTestId('tab-nodes').click();
    await page.getByTestId('nodes').waitFor();
    expect(await page.getByTestId('node-row').count()).toBe(3);
  });

  it('refreshes itself: a new job in the ledger shows up without a reload', async () => {
    const r = await env.pool.query(`insert into agent (deployment_id, agent_id, org_id, node_id, agent_type, first_seen_at, last_seen_at)
       values ($1, gen_random_uuid(), $2, $3, 'coder', $4, $4) returning agent_id`, [A.deploymentId, A.orgId, A.nodeId, AT]);
    await contribution(A, 'job-late', r.rows[0].agent_id, A.nodeId);
    await page.waitForFunction(() => document.querySelector('[data-testid="card-seats-pct"]')?.textContent === '90.0% of cap', undefined, { timeout: 15_000 });
    expect(await text('card-seats-value')).toBe('9');
  });
});
