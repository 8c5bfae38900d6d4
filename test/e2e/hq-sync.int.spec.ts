import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKeyPair, cryptoReady, HQ_METRIC_FIELDS, installationIdentity, issueIngestToken, registerAgentKey } from '@kaching/contracts';
import { signedUsage, loadConfig as ingestConfig, start as startIngest, type IngestHandle } from '@kaching/ingest';
import { loadConfig as projectorConfig, start as startProjector, type ProjectorHandle } from '@kaching/projector';
import { issueApiKey, loadConfig as apiConfig, start as startApi, type ApiHandle } from '@kaching/api';
import { commands as hqCommands, loadConfig as hqConfig, registerInstallation, start as startHq, type HqHandle } from '@kaching/hq';
import { isolatedEnv, type IsolatedEnv } from '../support/isolation.js';
import { makePki, type IssuedCert, type Pki } from '../support/pki.js';

// Two installations (own namespace, database, ingest and projector, on loopback ports) push their
// redacted daily rollups to a third KACHING in the HQ role over mTLS. HQ's totals must equal the sum
// of the installations' rollups — after a normal push, and again after HQ was down and one
// installation was offline for a while, during which ingest kept taking events.

type Metric = (typeof HQ_METRIC_FIELDS)[number];
type Totals = Record<Metric, string>;

interface Installation {
  name: string;
  env: IsolatedEnv;
  cert: IssuedCert;
  deployments: { id: string; token: string; keyId: string; secretKey: Uint8Array }[];
  ingest: IngestHandle;
  projector: ProjectorHandle;
  pusher?: HqHandle;
  sent: number;
}

let dir: string;
let pki: Pki;
let hqEnv: IsolatedEnv;
let hqHandle: HqHandle | undefined;
let hqPort: number;
let hqApi: ApiHandle;
let operatorKey: string;
let A: Installation;
let B: Installation;

/** Exact decimal addition (scale 6, non-negative), so totals are compared digit for digit. */
function addDecimal(a: string, b: string): string {
  const scaled = (s: string) => {
    const [i, f = ''] = s.split('.');
    return BigInt(i!) * 1_000_000n + BigInt((f + '000000').slice(0, 6));
  };
  const t = scaled(a) + scaled(b);
  return norm(`${t / 1_000_000n}.${(t % 1_000_000n).toString().padStart(6, '0')}`);
}
function norm(s: string): string {
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}

async function localTotals(inst: Installation): Promise<Totals> {
  const r = await inst.env.pool.query(`select ${HQ_METRIC_FIELDS.map((f) => `coalesce(sum(${f}), 0)::text as ${f}`).join(', ')} from usage_rollup_daily`);
  return Object.fromEntries(HQ_METRIC_FIELDS.map((f) => [f, norm(r.rows[0][f])])) as Totals;
}

async function hqTotals(installationId?: string): Promise<Totals> {
  const r = await hqEnv.pool.query(
    `select ${HQ_METRIC_FIELDS.map((f) => `coalesce(sum(${f}), 0)::text as ${f}`).join(', ')} from hq_rollup_daily where not deleted ${installationId ? 'and installation_id = $1' : ''}`,
    installationId ? [installationId] : [],
  );
  return Object.fromEntries(HQ_METRIC_FIELDS.map((f) => [f, norm(r.rows[0][f])])) as Totals;
}

const sum = (a: Totals, b: Totals) => Object.fromEntries(HQ_METRIC_FIELDS.map((f) => [f, addDecimal(a[f], b[f])])) as Totals;

async function waitFor(cond: () => Promise<boolean>, what: string, timeoutMs = 90_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

async function installation(name: string, deploymentCount: number): Promise<Installation> {
  const env = await isolatedEnv();
  const orgId = randomUUID();
  await env.pool.query('insert into org (org_id, name) values ($1, $2)', [orgId, `${name} org`]);
  const deployments: Installation['deployments'] = [];
  for (let i = 0; i < deploymentCount; i++) {
    const id = randomUUID();
    await env.pool.query('insert into deployment (deployment_id, org_id, name) values ($1, $2, $3)', [id, orgId, `${name}-dep-${i}`]);
    const token = (await issueIngestToken(env.pool, { deploymentId: id, scopes: ['ingest:usage'] })).token;
    const kp = generateSigningKeyPair();
    await registerAgentKey(env.pool, { deploymentId: id, keyId: 'k1', publicKey: Buffer.from(kp.publicKey).toString('base64'), validFrom: new Date(Date.now() - 3600_000) });
    deployments.push({ id, token, keyId: 'k1', secretKey: kp.secretKey });
  }
  const ingest = await startIngest({ ...ingestConfig(env.env), port: 0, host: '127.0.0.1', natsService: false, verifyWorkers: 0 });
  const projector = await startProjector({ ...projectorConfig(env.env), port: 0, host: '127.0.0.1' });
  return { name, env, cert: pki.client(`${name}-client`), deployments, ingest, projector, sent: 0 };
}

/** n signed events spread over the installation's deployments; every batch must be accepted (207, each 202). */
async function send(inst: Installation, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const d = inst.deployments[i % inst.deployments.length]!;
    const res = await fetch(`${inst.ingest.url}/v1/ingest/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${d.token}` },
      body: JSON.stringify({ events: [signedUsage(d.id, d.keyId, d.secretKey, { correlationId: `${inst.name}-${inst.sent}` })] }),
    });
    const body = (await res.json()) as { results: { status: number }[] };
    expect([res.status, body.results[0]!.status]).toEqual([207, 202]);
    inst.sent++;
  }
}

async function projected(inst: Installation): Promise<void> {
  await waitFor(async () => {
    const r = await inst.env.pool.query<{ jobs: string }>('select coalesce(sum(jobs), 0)::text as jobs from usage_rollup_daily');
    return Number(r.rows[0]!.jobs) === inst.sent;
  }, `${inst.name}'s rollups to count ${inst.sent} jobs`);
}

async function startPusher(inst: Installation): Promise<void> {
  inst.pusher = await startHq(
    hqConfig({
      ...inst.env.env,
      KACHING_HQ_URL: `https://127.0.0.1:${hqPort}`,
      KACHING_HQ_TLS_CERT: inst.cert.certFile,
      KACHING_HQ_TLS_KEY: inst.cert.keyFile,
      KACHING_HQ_TLS_CA: pki.ca.certFile,
      KACHING_HQ_INTERVAL_MS: '400',
      KACHING_HQ_RETRY_MIN_MS: '100',
      KACHING_HQ_TIMEOUT_MS: '5000',
    }),
  );
}

async function startHqReceiver(port: number): Promise<void> {
  const server = pki.server('hq');
  hqHandle = await startHq(hqConfig({ ...hqEnv.env, KACHING_ROLE: 'hq', HQ_PORT: String(port), HQ_HOST: '127.0.0.1', HQ_TLS_CERT: server.certFile, HQ_TLS_KEY: server.keyFile, HQ_TLS_CLIENT_CA: pki.ca.certFile }));
  hqPort = Number(new URL(hqHandle.url!).port);
}

async function hqAgrees(insts: Installation[]): Promise<boolean> {
  const want = (await Promise.all(insts.map(localTotals))).reduce(sum);
  const got = await hqTotals();
  return HQ_METRIC_FIELDS.every((f) => got[f] === want[f]);
}

beforeAll(async () => {
  await cryptoReady();
  dir = mkdtempSync(join(tmpdir(), 'kaching-hq-sync-'));
  pki = makePki(dir);
  hqEnv = await isolatedEnv();
  await startHqReceiver(0);
  hqApi = await startApi({ ...apiConfig(hqEnv.env), port: 0 }, { pool: hqEnv.pool, nc: await hqEnv.nats() });
  const hqOrg = randomUUID();
  await hqEnv.pool.query(`insert into org (org_id, name) values ($1, 'HQ operators')`, [hqOrg]);
  operatorKey = (await issueApiKey(hqEnv.pool, { orgId: hqOrg, scopes: ['read', 'operator'] })).apiKey;
  A = await installation('alpha', 2);
  B = await installation('beta', 1);
  for (const inst of [A, B]) {
    const id = (await installationIdentity(inst.env.pool)).installationId;
    await registerInstallation(hqEnv.pool, { installationId: id, name: inst.name, certPem: inst.cert.cert });
  }
});

afterAll(async () => {
  for (const inst of [A, B]) {
    await inst?.pusher?.close();
    await inst?.projector.close();
    await inst?.ingest.close();
    await inst?.env.cleanup();
  }
  await hqApi?.close();
  await hqHandle?.close();
  await hqEnv?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('HQ sync with two installations on loopback', () => {
  it("HQ's totals equal the sum of both installations' rollups, in its tables and in its API's cross-installation view", async () => {
    await send(A, 30);
    await send(B, 20);
    await projected(A);
    await projected(B);
    await startPusher(A);
    await startPusher(B);
    await waitFor(() => hqAgrees([A, B]), 'HQ to hold the sum of A and B');

    const want = sum(await localTotals(A), await localTotals(B));
    expect(await hqTotals()).toEqual(want);
    expect(want.jobs).toBe('50');
    const view = await fetch(`${hqApi.url}/v1/hq/usage/daily`, { headers: { authorization: `Bearer ${operatorKey}` } });
    const body = (await view.json()) as { totals: Record<string, string | number>; items: unknown[] };
    for (const f of HQ_METRIC_FIELDS) expect(norm(String(body.totals[f])), f).toBe(want[f]);
    expect(body.totals.installations).toBe(2);
    expect(body.totals.deployments).toBe(3);
    const list = (await (await fetch(`${hqApi.url}/v1/hq/installations`, { headers: { authorization: `Bearer ${operatorKey}` } })).json()) as { items: { name: string; deployments: number }[] };
    expect(list.items.map((i) => [i.name, i.deployments])).toEqual([['alpha', 2], ['beta', 1]]);
  });

  it('with HQ down and A offline, ingest keeps taking events and the outboxes hold them; once both are back HQ equals the sum again', async () => {
    const aInstallation = (await installationIdentity(A.env.pool)).installationId;
    const aAtHqBefore = await hqTotals(aInstallation);
    await hqHandle!.close();
    await A.pusher!.close(); // installation A goes offline
    A.pusher = undefined;

    // ingest never waits for HQ: events keep being accepted and projected
    await send(A, 12);
    await send(B, 9);
    await projected(A);
    await projected(B);
    // B keeps trying and failing while HQ is down; its changed rows wait in its outbox
    await waitFor(async () => {
      const s = (await B.env.pool.query('select consecutive_failures from hq_sync_state')).rows[0];
      return (s?.consecutive_failures ?? 0) >= 2;
    }, 'B to fail to push at least twice');
    const pendingB = (await B.env.pool.query('select count(*)::int as n from hq_outbox where revision > pushed_revision')).rows[0].n;
    expect(pendingB).toBeGreaterThan(0);
    // the operator sees it: B's API and `kaching hq status`
    const bApi = await startApi({ ...apiConfig(B.env.env), port: 0 }, { pool: B.env.pool, nc: await B.env.nats() });
    try {
      const bOrg = (await B.env.pool.query('select org_id from org limit 1')).rows[0].org_id;
      const key = (await issueApiKey(B.env.pool, { orgId: bOrg, scopes: ['operator'] })).apiKey;
      const sync = (await (await fetch(`${bApi.url}/v1/hq/sync`, { headers: { authorization: `Bearer ${key}` } })).json()) as { outbox: { pending: number }; last_error: string };
      expect(sync.outbox.pending).toBeGreaterThan(0);
      expect(sync.last_error).toMatch(/HQ unreachable/);
    } finally {
      await bApi.close();
    }
    const status = await hqCommands.find((c) => c.name === 'hq status')!.run({
      args: {}, positionals: [], config: hqConfig(B.env.env), json: true, progress: () => undefined, signal: new AbortController().signal,
    });
    expect((status.data as { outbox: { pending: number } }).outbox.pending).toBeGreaterThan(0);

    // HQ back (same port): B catches up on its own; A's rows at HQ are still those from before
    await startHqReceiver(hqPort);
    const bInstallation = (await installationIdentity(B.env.pool)).installationId;
    const bLocal = await localTotals(B);
    await waitFor(async () => JSON.stringify(await hqTotals(bInstallation)) === JSON.stringify(bLocal), 'B to catch up at HQ');
    expect(await hqTotals(aInstallation)).toEqual(aAtHqBefore);
    expect((await localTotals(A)).jobs).toBe('42');

    // A comes back online and resumes from its outbox
    await startPusher(A);
    await waitFor(() => hqAgrees([A, B]), 'HQ to hold the sum of A and B again');
    const want = sum(await localTotals(A), await localTotals(B));
    expect(await hqTotals()).toEqual(want);
    expect(want.jobs).toBe('71');
    // one HQ row per (installation, deployment, day), however many pushes and retries it took
    const keys = await hqEnv.pool.query('select count(*)::int as rows, count(distinct (installation_id, deployment, day))::int as keys from hq_rollup_daily');
    const localRows = (await A.env.pool.query('select count(*)::int as n from usage_rollup_daily')).rows[0].n + (await B.env.pool.query('select count(*)::int as n from usage_rollup_daily')).rows[0].n;
    expect(keys.rows[0]).toEqual({ rows: localRows, keys: localRows });
    const state = (await B.env.pool.query('select consecutive_failures, last_error from hq_sync_state')).rows[0];
    expect(state).toEqual({ consecutive_failures: 0, last_error: null });
  });
});
