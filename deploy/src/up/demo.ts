import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { activateLicense, issueIngestToken, issueLicense, registerAgentKey, setModelPrice } from '@kaching/contracts';
import { uuidV5 } from '@kaching/sdk';
import { addUser, generatePassword, setPassword } from '@kaching/api';

/**
 * The demo world `kaching up --demo` seeds, idempotently (fixed ids, upserts): one org, one
 * deployment with hard enforcement, the plan ladder, a vendor-signed license, quotas and budgets
 * tight enough that the simulated fleet crosses them within a minute, model prices, and fresh
 * credentials for this run: an ingest token and agent key for the simulated fleet, and a new
 * password for the demo user who signs in to the dashboard.
 */
const DEMO_NS = 'f5b4a1c6-8eb1-5a5c-9d7e-af60c2408e55';
export const DEMO_ORG_ID = uuidV5('demo-org', DEMO_NS);
export const DEMO_DEPLOYMENT_ID = uuidV5('demo-deployment', DEMO_NS);
export const DEMO_LOGIN = 'demo';

export interface DemoSeed {
  orgId: string;
  deploymentId: string;
  token: string;
  keyId: string;
  secretKey: string;
  /** The dashboard user (admin of the demo org) and the password set for this run, shown once. */
  user: { login: string; password: string };
  license: 'activated' | 'existing' | 'skipped';
  vendorPublicKey: string;
}

export interface VendorKey {
  publicKey: string;
  /** libsodium layout: seed ‖ public key, base64. */
  secretKey: string;
}

function keyPair(): VendorKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from((privateKey.export({ format: 'jwk' }) as { d: string }).d, 'base64url');
  const pub = Buffer.from((publicKey.export({ format: 'jwk' }) as { x: string }).x, 'base64url');
  return { publicKey: pub.toString('base64'), secretKey: Buffer.concat([seed, pub]).toString('base64') };
}

/** A key pair kept in the state dir (KACHING_HOME, default ./.kaching), created on first use. */
export async function stateKey(home: string, file: string): Promise<VendorKey> {
  const p = path.join(home, file);
  try {
    return JSON.parse(await readFile(p, 'utf8')) as VendorKey;
  } catch {
    await mkdir(home, { recursive: true, mode: 0o700 });
    const k = keyPair();
    await writeFile(p, JSON.stringify(k, null, 2) + '\n', { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
    return JSON.parse(await readFile(p, 'utf8')) as VendorKey;
  }
}

export const PLAN_LADDER = [
  {
    plan_id: 'demo-starter',
    name: 'Starter',
    rank: 1,
    meta: { rank: 1, price_usd_year: 0, limits: { seats: 25, nodes: 4, cpu_seconds: 2_000, context_bytes_written: 50_000_000, model_tokens_in: 2_000_000 }, features: { sso: false } },
  },
  {
    plan_id: 'demo-team',
    name: 'Team',
    rank: 2,
    meta: { rank: 2, price_usd_year: 6_000, limits: { seats: 50, nodes: 8, cpu_seconds: 6_000, context_bytes_written: 150_000_000, model_tokens_in: 6_000_000 }, features: { sso: false } },
  },
  {
    plan_id: 'demo-business',
    name: 'Business',
    rank: 3,
    meta: { rank: 3, price_usd_year: 24_000, limits: { seats: 100, nodes: 16, cpu_seconds: 30_000, context_bytes_written: 450_000_000, model_tokens_in: 30_000_000 }, features: { sso: true } },
  },
  {
    plan_id: 'demo-enterprise',
    name: 'Enterprise',
    rank: 4,
    meta: { rank: 4, price_usd_year: 120_000, limits: { seats: 1000, nodes: 200, cpu_seconds: 500_000, context_bytes_written: 5_000_000_000, model_tokens_in: 500_000_000 }, features: { sso: true, audit_export: true } },
  },
];

/** Quotas: the fleet (~20 jobs/s, ~3 cpu-s a job) nears them in seconds and crosses them within a minute. */
export const DEMO_QUOTAS = [
  { name: 'cpu-daily', metric: 'cpu_seconds', period: 'daily', hard_limit: 2_500, soft_threshold: 1_000 },
  { name: 'context-writes-monthly', metric: 'context_bytes_written', period: 'monthly', hard_limit: 120_000_000, soft_threshold: 60_000_000 },
];
export const DEMO_BUDGETS = [
  // ~30k input tokens/s from the LLM agents: the throttle budget is crossed in about half a minute.
  { scope: 'tokens-daily', metric: 'model_tokens_in', period: 'daily', limit_units: 1_000_000, action: 'throttle', action_params: { max_concurrency: 4 } },
  // ~1 ¢ per LLM job at the demo prices: five dollars last well under a minute.
  { scope: 'llm-cost-daily', metric: 'cost_usd', period: 'daily', limit_units: 5, action: 'fallback_model', action_params: { model: 'llama3.1:8b-q4' } },
];
export const DEMO_PRICES = [
  { provider: 'anthropic', model_name: 'claude-sonnet-4', input_per_1m_micro_usd: 3_000_000, output_per_1m_micro_usd: 15_000_000 },
  { provider: 'openai', model_name: 'gpt-4o', input_per_1m_micro_usd: 2_500_000, output_per_1m_micro_usd: 10_000_000 },
  { provider: 'local', model_name: 'llama3.1:70b', input_per_1m_micro_usd: 0, output_per_1m_micro_usd: 0, gpu_second_micro_usd: 800 },
];

async function tableExists(pool: pg.Pool, table: string): Promise<boolean> {
  const r = await pool.query('select to_regclass($1) as t', [table]);
  return r.rows[0]?.t != null;
}

export async function seedDemo(pool: pg.Pool, home: string): Promise<DemoSeed> {
  const orgId = DEMO_ORG_ID;
  const deploymentId = DEMO_DEPLOYMENT_ID;
  await pool.query('insert into org (org_id, name) values ($1, $2) on conflict (org_id) do nothing', [orgId, 'Demo Org']);
  await pool.query(
    `insert into deployment (deployment_id, org_id, name, timezone, enforcement)
     values ($1, $2, 'demo-fleet', 'UTC', 'hard')
     on conflict (deployment_id) do update set enforcement = 'hard'`,
    [deploymentId, orgId],
  );
  for (const p of PLAN_LADDER) {
    await pool.query(
      `insert into pricing_plan (plan_id, name, rank, meta) values ($1, $2, $3, $4)
       on conflict (plan_id) do update set name = excluded.name, rank = excluded.rank, meta = excluded.meta`,
      [p.plan_id, p.name, p.rank, JSON.stringify(p.meta)],
    );
  }
  for (const q of DEMO_QUOTAS) {
    await pool.query(
      `insert into quota (quota_id, deployment_id, org_id, name, metric, period, hard_limit, soft_threshold)
       values ($1, $2, $3, $4, $5, $6, $7, $8)
       on conflict (deployment_id, name) do update set metric = excluded.metric, period = excluded.period,
         hard_limit = excluded.hard_limit, soft_threshold = excluded.soft_threshold, updated_at = now()`,
      [uuidV5(`quota/${q.name}`, DEMO_NS), deploymentId, orgId, q.name, q.metric, q.period, q.hard_limit, q.soft_threshold],
    );
  }
  for (const b of DEMO_BUDGETS) {
    await pool.query(
      `insert into budget (budget_id, deployment_id, org_id, scope, metric, period, limit_units, action, action_params)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       on conflict (deployment_id, scope) do update set metric = excluded.metric, period = excluded.period,
         limit_units = excluded.limit_units, action = excluded.action, action_params = excluded.action_params, updated_at = now()`,
      [uuidV5(`budget/${b.scope}`, DEMO_NS), deploymentId, orgId, b.scope, b.metric, b.period, b.limit_units, b.action, JSON.stringify(b.action_params)],
    );
  }

  const vendor = await stateKey(home, 'demo-vendor.json');
  const license = await seedLicense(pool, orgId, deploymentId, vendor);
  await seedPrices(pool);

  const token = await issueIngestToken(pool, { deploymentId, label: 'kaching up --demo' });
  const agentKey = await stateKey(home, 'demo-agent.json');
  // Named after the key itself, so a new KACHING_HOME against the same database registers a new key instead of colliding.
  const keyId = `demo-sim-${Buffer.from(agentKey.publicKey, 'base64').subarray(0, 6).toString('hex')}`;
  await registerAgentKey(pool, { deploymentId, keyId, publicKey: agentKey.publicKey });
  const user = await demoUser(pool, orgId);
  return { orgId, deploymentId, token: token.token, keyId, secretKey: agentKey.secretKey, user, license, vendorPublicKey: vendor.publicKey };
}

/** The demo org's admin, with a new random password at every start (earlier sessions are signed out). */
async function demoUser(pool: pg.Pool, orgId: string): Promise<{ login: string; password: string }> {
  const password = generatePassword();
  const existing = await pool.query<{ org_id: string }>('select org_id from org_user where login = $1', [DEMO_LOGIN]);
  if (existing.rows[0] && existing.rows[0].org_id !== orgId) throw new Error(`a user "${DEMO_LOGIN}" exists in another org; the demo cannot use that login`);
  if (existing.rows[0]) await setPassword(pool, DEMO_LOGIN, password);
  else await addUser(pool, { orgId, login: DEMO_LOGIN, role: 'admin', password });
  return { login: DEMO_LOGIN, password };
}

async function seedLicense(pool: pg.Pool, orgId: string, deploymentId: string, vendor: VendorKey): Promise<'activated' | 'existing' | 'skipped'> {
  const existing = await pool.query('select 1 from license where deployment_id = $1 and valid_to > now()', [deploymentId]);
  if (existing.rowCount) return 'existing';
  const blob = await issueLicense(
    {
      license_id: uuidV5(`license/${deploymentId}`, DEMO_NS),
      org_id: orgId,
      deployment_id: deploymentId,
      plan_id: 'demo-starter',
      // Room for the simulated fleet (12 agents on 3 nodes): the story is quotas and budgets, not seats.
      seats_limit: 25,
      nodes_limit: 4,
      features: { sso: false },
      valid_from: new Date(Date.now() - 86_400_000).toISOString(),
      valid_to: new Date(Date.now() + 365 * 86_400_000).toISOString(),
    },
    Buffer.from(vendor.secretKey, 'base64'),
  );
  await activateLicense(pool, blob, vendor.publicKey);
  return 'activated';
}

async function seedPrices(pool: pg.Pool): Promise<void> {
  if (!(await tableExists(pool, 'model_price'))) return;
  for (const p of DEMO_PRICES) {
    const has = await pool.query('select 1 from model_price where provider = $1 and model_name = $2', [p.provider, p.model_name]);
    if (has.rowCount) continue;
    await setModelPrice(pool, p);
  }
}
