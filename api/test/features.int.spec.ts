import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import { commands as cliCommands, featuresBucket, issueLicense, licenseKeygen, type CommandContext, type EffectiveFeatures } from '@kaching/contracts';
import { createDeployment, createOrg, issueApiKey, loadConfig, start, type ApiHandle } from '@kaching/api';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { waitUntil } from '../../test/support/wait.js';
import { client } from './support/seed.js';

// Feature flags over HTTP and the CLI, the effective features (license ∪ flags) in GET /v1/features and in
// the real NATS KV bucket an orchestrator watches, the license-grant rule and org isolation.

const NOW = new Date('2026-11-21T15:00:00Z');

let env: IsolatedEnv;
let api: ApiHandle;
let orchestrator: NatsConnection;
let kv: KV;
let vendor: { publicKey: string; privateKey: string };
let orgA: string;
let depA: string;
let depA2: string;
let depB: string;
let depC: string;
let clock = NOW.getTime();
let adminA: string;
let opA: string;
let readA: string;
let adminB: string;

const insertLicense = (org: string, dep: string | null, features: Record<string, unknown>, from = '2020-01-01', to = '2099-01-01') =>
  env.pool.query(
    `insert into license (license_id, org_id, deployment_id, plan_id, features, valid_from, valid_to, signed_blob) values ($1, $2, $3, 'team', $4, $5, $6, '\\x00')`,
    [randomUUID(), org, dep, features, from, to],
  );

beforeAll(async () => {
  env = await isolatedEnv();
  orchestrator = await env.nats();
  const a = await createOrg(env.pool, { name: 'flags-a' });
  const b = await createOrg(env.pool, { name: 'flags-b' });
  orgA = a.org_id;
  depA = String((await createDeployment(env.pool, orgA, { name: 'a-prod' })).deployment_id);
  depA2 = String((await createDeployment(env.pool, orgA, { name: 'a-lab' })).deployment_id);
  depB = String((await createDeployment(env.pool, b.org_id, { name: 'b-prod' })).deployment_id);
  depC = String((await createDeployment(env.pool, orgA, { name: 'a-trial' })).deployment_id);
  await env.pool.query(`insert into pricing_plan (plan_id, name, rank) values ('team', 'Team', 1)`);
  await insertLicense(orgA, depA, { sso: true, audit_export: false, seats_sso: 10 });
  // an expired license grants nothing, even though it names the feature
  await insertLicense(orgA, depA, { federation: true }, '2020-01-01', '2026-01-01');
  await insertLicense(b.org_id, depB, { sso: true });
  // a trial that ends an hour after NOW
  await insertLicense(orgA, depC, { beta: true }, '2026-11-01T00:00:00Z', new Date(NOW.getTime() + 3_600_000).toISOString());
  adminA = (await issueApiKey(env.pool, { orgId: orgA, scopes: ['read', 'admin'] })).apiKey;
  opA = (await issueApiKey(env.pool, { orgId: orgA, scopes: ['read', 'admin', 'operator'] })).apiKey;
  readA = (await issueApiKey(env.pool, { orgId: orgA, scopes: ['read'] })).apiKey;
  adminB = (await issueApiKey(env.pool, { orgId: b.org_id, scopes: ['read', 'admin'] })).apiKey;
  vendor = await licenseKeygen();
  api = await start({ ...loadConfig(env.env), port: 0, licensePublicKey: vendor.publicKey, featuresSweepMs: 200 }, { pool: env.pool, nc: await env.nats(), clock: () => clock });
  // the orchestrator's own connection to the bucket
  kv = await featuresBucket(orchestrator, env.names);
});

afterAll(async () => {
  await api?.close();
  await env?.cleanup();
});

/** Watches one deployment's key the way an orchestrator would; collects every value seen. */
async function watch(dep: string): Promise<{ seen: EffectiveFeatures[]; stop(): void }> {
  const seen: EffectiveFeatures[] = [];
  const it = await kv.watch({ key: env.names.featuresKey(dep) });
  void (async () => {
    for await (const e of it) if (e.operation === 'PUT') seen.push(e.json<EffectiveFeatures>());
  })();
  return { seen, stop: () => it.stop() };
}

describe('feature flags and effective features', () => {
  it('GET /v1/features: the license in force (never an expired one), no flags yet', async () => {
    const r = await client(api.url, readA)('GET', `/v1/features?deployment_id=${depA}`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ schema: 'kaching.v1.features', deployment_id: depA, org_id: orgA, features: { sso: true, audit_export: false, seats_sso: 10 }, flags: [] });
    expect(r.json.features).not.toHaveProperty('federation');
  });

  it('a flag change reaches a real KV watcher and GET /v1/features (license ∪ flags)', async () => {
    const w = await watch(depA);
    try {
      const off = await client(api.url, adminA)('PUT', `/v1/deployments/${depA}/flags/sso`, { enabled: false });
      expect(off.status).toBe(200);
      expect(off.json).toMatchObject({ deployment_id: depA, flag: 'sso', enabled: false, override: false, published: true });
      await waitUntil(() => w.seen.some((d) => d.features.sso === false), 5000, 'sso off in KV');
      // a licensed feature may be switched on by an admin too
      const on = await client(api.url, adminA)('PUT', `/v1/deployments/${depA}/flags/seats_sso`, { enabled: true });
      expect(on.status).toBe(200);
      await waitUntil(() => w.seen.some((d) => d.features.seats_sso === true), 5000, 'seats_sso on in KV');
      const last = w.seen.at(-1)!;
      expect(last.features).toEqual({ sso: false, audit_export: false, seats_sso: true });
      expect(last.flags.map((f) => [f.flag, f.enabled, f.effective])).toEqual([['seats_sso', true, true], ['sso', false, true]]);
      const get = await client(api.url, readA)('GET', `/v1/features?deployment_id=${depA}`);
      expect(get.json.features).toEqual(last.features);
      expect(get.json.generated_at).toBe(NOW.toISOString());
      expect((await client(api.url, readA)('GET', `/v1/deployments/${depA}/flags`)).json.items.map((f: { flag: string }) => f.flag)).toEqual(['seats_sso', 'sso']);
    } finally {
      w.stop();
    }
  });

  it('a feature the license does not grant: refused for an admin (FEATURE_NOT_LICENSED, FEATURE_OVERRIDE_SCOPE), allowed with override by an operator key', async () => {
    const admin = client(api.url, adminA);
    const r1 = await admin('PUT', `/v1/deployments/${depA}/flags/federation`, { enabled: true });
    expect([r1.status, r1.json.error.code, r1.json.error.field]).toEqual([403, 'FEATURE_NOT_LICENSED', 'enabled']);
    expect(r1.json.error.message).toContain('does not grant "federation"');
    const r2 = await admin('PUT', `/v1/deployments/${depA}/flags/federation`, { enabled: true, override: true });
    expect([r2.status, r2.json.error.code, r2.json.error.rule]).toEqual([403, 'FEATURE_OVERRIDE_SCOPE', 'scope:operator']);
    // the operator key without asking for the override is refused too: overrides are never implicit
    const r3 = await client(api.url, opA)('PUT', `/v1/deployments/${depA}/flags/federation`, { enabled: true });
    expect([r3.status, r3.json.error.code]).toEqual([403, 'FEATURE_NOT_LICENSED']);
    expect((await env.pool.query(`select count(*)::int as n from feature_flag where flag = 'federation'`)).rows[0].n).toBe(0);
    // switching an unlicensed feature off needs nothing special
    expect((await admin('PUT', `/v1/deployments/${depA}/flags/audit_export`, { enabled: false })).status).toBe(200);

    const w = await watch(depA);
    try {
      const ok = await client(api.url, opA)('PUT', `/v1/deployments/${depA}/flags/federation`, { enabled: true, override: true });
      expect(ok.status).toBe(200);
      expect(ok.json).toMatchObject({ flag: 'federation', enabled: true, override: true, updated_by: expect.stringMatching(/^api_key:/), published: true });
      await waitUntil(() => w.seen.some((d) => d.features.federation === true), 5000, 'federation in KV');
    } finally {
      w.stop();
    }
    const f = await client(api.url, readA)('GET', `/v1/features?deployment_id=${depA}`);
    expect(f.json.features).toEqual({ sso: false, audit_export: false, seats_sso: true, federation: true });
    // /v1/limits/effective tells the same, in its stored part and in the enforcer's view
    const lim = await client(api.url, readA)('GET', `/v1/limits/effective?deployment_id=${depA}`);
    expect(lim.json.features).toEqual(f.json.features);
    expect(lim.json.effective.features).toEqual(f.json.features);
  });

  it('an "on" flag without grant or override (e.g. written before this rule) does not take effect; DELETE restores the license value', async () => {
    await env.pool.query(`insert into feature_flag (deployment_id, org_id, flag, enabled) values ($1, $2, 'temporal_nav', true)`, [depA, orgA]);
    const f = await client(api.url, readA)('GET', `/v1/features?deployment_id=${depA}`);
    expect(f.json.features).not.toHaveProperty('temporal_nav');
    expect((await client(api.url, readA)('GET', `/v1/limits/effective?deployment_id=${depA}`)).json.effective.features).not.toHaveProperty('temporal_nav');
    expect(f.json.flags.find((x: { flag: string }) => x.flag === 'temporal_nav')).toMatchObject({ enabled: true, override: false, effective: false });

    const w = await watch(depA);
    try {
      const del = await client(api.url, adminA)('DELETE', `/v1/deployments/${depA}/flags/sso`);
      expect(del.json).toMatchObject({ deleted: true, flag: 'sso', published: true });
      await waitUntil(() => w.seen.some((d) => d.features.sso === true && !d.flags.some((x) => x.flag === 'sso')), 5000, 'sso back to the license value');
    } finally {
      w.stop();
    }
    const again = await client(api.url, adminA)('DELETE', `/v1/deployments/${depA}/flags/sso`);
    expect([again.status, again.json.error.code, again.json.error.field]).toEqual([404, 'NOT_FOUND', 'flag']);
  });

  it('activating a license republishes: its features reach KV at once', async () => {
    const lic = await issueLicense({ org_id: orgA, deployment_id: depA2, plan_id: 'team', valid_from: '2020-01-01T00:00:00Z', valid_to: '2099-01-01T00:00:00Z', features: { temporal_nav: true } }, vendor.privateKey);
    const w = await watch(depA2);
    try {
      const r = await client(api.url, adminA)('POST', '/v1/license/activate', { license: lic });
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ activated: true, deployment_id: depA2, features_published: true });
      await waitUntil(() => w.seen.some((d) => d.features.temporal_nav === true && d.license?.license_id === r.json.license_id), 5000, 'license features in KV');
    } finally {
      w.stop();
    }
    const e = await kv.get(env.names.featuresKey(depA2));
    expect(e?.json<EffectiveFeatures>().features).toEqual({ temporal_nav: true });
  });

  it('bad input names the field and the rule; a read key may not write', async () => {
    const admin = client(api.url, adminA);
    const bad = await admin('PUT', `/v1/deployments/${depA}/flags/Not%20A%20Flag`, { enabled: true });
    expect([bad.status, bad.json.error.code, bad.json.error.field]).toEqual([400, 'FIELD_FORMAT', 'flag']);
    const missing = await admin('PUT', `/v1/deployments/${depA}/flags/sso`, {});
    expect([missing.status, missing.json.error.code, missing.json.error.field]).toEqual([400, 'FIELD_REQUIRED', 'enabled']);
    const extra = await admin('PUT', `/v1/deployments/${depA}/flags/sso`, { enabled: true, evil: 1 });
    expect([extra.status, extra.json.error.code]).toEqual([400, 'FIELD_UNKNOWN']);
    const ro = await client(api.url, readA)('PUT', `/v1/deployments/${depA}/flags/sso`, { enabled: true });
    expect([ro.status, ro.json.error.code]).toEqual([403, 'API_KEY_SCOPE']);
  });

  it("org isolation: B neither sees nor changes A's features, and A's never leak into B's", async () => {
    const b = client(api.url, adminB);
    const before = (await env.pool.query('select flag, enabled from feature_flag where deployment_id = $1 order by flag', [depA])).rows;
    for (const [m, p, body] of [
      ['GET', `/v1/features?deployment_id=${depA}`, undefined],
      ['GET', `/v1/deployments/${depA}/flags`, undefined],
      ['PUT', `/v1/deployments/${depA}/flags/sso`, { enabled: false }],
      ['DELETE', `/v1/deployments/${depA}/flags/seats_sso`, undefined],
    ] as const) {
      const r = await b(m, p, body);
      expect({ m, p, status: r.status, code: r.json?.error?.code }).toEqual({ m, p, status: 404, code: 'NOT_FOUND' });
      expect(r.text).not.toContain(orgA);
    }
    expect((await env.pool.query('select flag, enabled from feature_flag where deployment_id = $1 order by flag', [depA])).rows).toEqual(before);
    const own = await b('PUT', `/v1/deployments/${depB}/flags/sso`, { enabled: false });
    expect(own.status).toBe(200);
    const mine = await b('GET', `/v1/features?deployment_id=${depB}`);
    expect(mine.json.features).toEqual({ sso: false });
    expect((await kv.get(env.names.featuresKey(depB)))?.json<EffectiveFeatures>().org_id).not.toBe(orgA);
  });

  it('CLI: kaching flag set (refused without --override for an unlicensed feature), flag list, flag remove; KV follows', async () => {
    const cmd = (name: string) => cliCommands.find((c) => c.name === name)!;
    const ctx = (args: CommandContext['args'], positionals: string[] = []): CommandContext => ({
      args, positionals, json: true, progress: () => undefined, signal: new AbortController().signal,
      config: { databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'error' },
    });
    await expect(cmd('flag set').run(ctx({ deployment: depB }, ['federation']))).rejects.toMatchObject({ code: 'FEATURE_NOT_LICENSED' });
    await expect(cmd('flag set').run(ctx({ deployment: 'nope' }, ['federation']))).rejects.toThrow('--deployment must be a deployment id');
    const set = await cmd('flag set').run(ctx({ deployment: depB, override: true }, ['federation']));
    expect(set.data).toMatchObject({ flag: 'federation', enabled: true, override: true, updated_by: 'cli', published: true });
    expect((await kv.get(env.names.featuresKey(depB)))?.json<EffectiveFeatures>().features).toEqual({ sso: false, federation: true });
    const list = await cmd('flag list').run(ctx({ deployment: depB }));
    expect((list.data as EffectiveFeatures).flags.map((f) => f.flag)).toEqual(['federation', 'sso']);
    await cmd('flag remove').run(ctx({ deployment: depB }, ['federation']));
    expect((await kv.get(env.names.featuresKey(depB)))?.json<EffectiveFeatures>().features).toEqual({ sso: false });
  });

  it('the sweep fills the bucket without any write, and drops a license\'s features when it expires', async () => {
    await waitUntil(async () => (await kv.get(env.names.featuresKey(depC)))?.json<EffectiveFeatures>().features.beta === true, 5000, 'trial features in KV');
    const w = await watch(depC);
    try {
      clock = NOW.getTime() + 2 * 3_600_000;
      await waitUntil(() => w.seen.some((d) => d.license === null && !('beta' in d.features)), 5000, 'expired trial dropped');
    } finally {
      w.stop();
      clock = NOW.getTime();
    }
    const f = await client(api.url, readA)('GET', `/v1/features?deployment_id=${depC}`);
    expect(f.json).toMatchObject({ features: { beta: true }, license: { valid_to: new Date(NOW.getTime() + 3_600_000).toISOString() } });
  });
});
