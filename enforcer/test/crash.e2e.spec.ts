import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lanesCaughtUp } from '../../test/e2e/scale-support.js';
import { decisionsBucket, ensureEventsStream, type PolicyDecision } from '@kaching/contracts';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { addQuota, alertCodes, checkpoint, controlMessages, publish, seedDeployment, seedOrg, usageRecord, waitFor } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENTRY = fileURLToPath(new URL('./fixtures/run-enforcer.ts', import.meta.url));

function spawnEnforcer(env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const child = spawn(process.execPath, [`${ROOT}node_modules/vite-node/vite-node.mjs`, ENTRY], { cwd: ROOT, env: { ...env, LOG_LEVEL: 'error', ENFORCER_BATCH: '20' }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => b.toString().includes('ready') && resolve(child));
    child.once('exit', (code) => reject(new Error(`enforcer exited ${code}`)));
  });
}

describe('enforcer killed with SIGKILL mid-stream', () => {
  let env: IsolatedEnv;
  let child: ChildProcess | null = null;

  beforeAll(async () => {
    env = await isolatedEnv();
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await env?.cleanup();
  });

  it('restarts without double-counting, alerting or publishing twice', async () => {
    const nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    const org = await seedOrg(env.pool);
    const dep = await seedDeployment(env.pool, org, { timezone: 'America/New_York' });
    await addQuota(env.pool, dep, org, { name: 'cpu', metric: 'cpu_seconds', period: 'rolling_30d', soft: 1000, hard: 1500 });
    const last = await publish(nc, env.names, Array.from({ length: 400 }, () => usageRecord(dep, org, new Date(), { cpu: 5 })));
    child = await spawnEnforcer(env.env);
    await waitFor(async () => (await checkpoint(env.pool)) >= 60, 30_000, 'some progress');
    child.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    const mid = await checkpoint(env.pool);
    child = await spawnEnforcer(env.env);
    await waitFor(async () => (await checkpoint(env.pool)) >= last, 30_000, 'caught up');
    await waitFor(async () => (await env.pool.query('select 1 from enforcer_outbox where published_at is null')).rows.length === 0, 10_000, 'outbox drained');
    expect(mid).toBeLessThan(last);
    const used = await env.pool.query(`select sum(value)::text as v from enforcer_usage_daily where deployment_id = $1 and metric = 'cpu_seconds'`, [dep]);
    expect(used.rows[0].v).toBe('2000');
    expect(await alertCodes(env.pool, dep)).toEqual(['QUOTA_NEARING', 'QUOTA_EXCEEDED']);
    const msgs = (await controlMessages(nc, env.names)).filter((m) => m.deployment_id === dep && m.state === 'active');
    expect(msgs.map((m) => m.code).sort()).toEqual(['QUOTA_EXCEEDED', 'QUOTA_NEARING']);
    const kv = await decisionsBucket(nc, env.names);
    expect((await kv.get(env.names.decisionKey(dep, 'cpu')))!.json<PolicyDecision>()).toMatchObject({ code: 'QUOTA_EXCEEDED', state: 'active' });
    // the enforcer's lanes hold nothing after their checkpoints
    expect(await lanesCaughtUp(env.pool, nc, env.names, ['enforcer'])).toBe(true);
  });
});
