import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@kaching/contracts';
import { registerInstallation, revokeInstallation, startReceiver, HQ_PUSH_PATH, type Receiver } from '@kaching/hq';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { makePki, type IssuedCert, type Pki } from '../../test/support/pki.js';
import { postTls, push, row } from './support.js';

// HQ's receiving end against real TLS and a real Postgres: who may push (mTLS + pinned certificate),
// what may be pushed (exactly the policy's fields), and that pushing twice changes nothing.

let env: IsolatedEnv;
let dir: string;
let pki: Pki;
let foreign: Pki;
let receiver: Receiver;
let certA: IssuedCert;
let certB: IssuedCert;
let certStranger: IssuedCert;
let certForeign: IssuedCert;
const installationA = randomUUID();
const installationB = randomUUID();
const dep = 'd'.repeat(64);

const url = () => `${receiver.url}${HQ_PUSH_PATH}`;
const stored = async () => (await env.pool.query('select * from hq_rollup_daily order by installation_id, deployment, day')).rows;

beforeAll(async () => {
  env = await isolatedEnv();
  dir = mkdtempSync(join(tmpdir(), 'kaching-hq-pki-'));
  pki = makePki(dir, 'hqca');
  foreign = makePki(dir, 'otherca');
  const server = pki.server('hq');
  certA = pki.client('inst-a');
  certB = pki.client('inst-b');
  certStranger = pki.client('stranger');
  certForeign = foreign.client('foreign');
  await registerInstallation(env.pool, { installationId: installationA, name: 'Installation A', certPem: certA.cert });
  await registerInstallation(env.pool, { installationId: installationB, name: 'Installation B', certPem: certB.cert });
  receiver = await startReceiver({
    pool: env.pool,
    config: { port: 0, host: '127.0.0.1', tls: { certFile: server.certFile, keyFile: server.keyFile, clientCaFile: pki.ca.certFile }, bodyLimit: 4 * 1024 * 1024 },
    log: createLogger('hq-test', 'warn'),
  });
});

afterAll(async () => {
  await receiver?.close();
  await env?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('who may push', () => {
  it('without a client certificate the TLS handshake is refused; nothing is stored', async () => {
    await expect(postTls(url(), push(installationA, [row(dep, '2030-01-01', 1)]), { ca: pki.ca.cert })).rejects.toThrow(/certificate required|socket hang up|ECONNRESET/);
    expect(await stored()).toEqual([]);
  });

  it('a client certificate from another CA is refused in the handshake', async () => {
    await expect(postTls(url(), push(installationA, [row(dep, '2030-01-01', 1)]), { ca: pki.ca.cert, client: certForeign })).rejects.toThrow(/unknown ca|socket hang up|ECONNRESET/);
    expect(await stored()).toEqual([]);
  });

  it('a certificate of the right CA that no installation registered: 403 HQ_INSTALLATION_UNKNOWN', async () => {
    const r = await postTls(url(), push(installationA, [row(dep, '2030-01-01', 1)]), { ca: pki.ca.cert, client: certStranger });
    expect([r.status, r.json.error.code]).toEqual([403, 'HQ_INSTALLATION_UNKNOWN']);
    expect(await stored()).toEqual([]);
  });

  it("installation B's certificate cannot push as installation A: 403 HQ_INSTALLATION_MISMATCH", async () => {
    const r = await postTls(url(), push(installationA, [row(dep, '2030-01-01', 1)]), { ca: pki.ca.cert, client: certB });
    expect([r.status, r.json.error.code]).toEqual([403, 'HQ_INSTALLATION_MISMATCH']);
    expect(await stored()).toEqual([]);
  });
});

describe('what may be pushed', () => {
  it('a row with a field the policy does not list (hostname, ucxl_addr, agent_type) is refused whole with 400 FIELD_UNKNOWN', async () => {
    for (const extra of ['hostname', 'ucxl_addr', 'agent_type']) {
      const rows = [row(dep, '2030-01-01', 1), { ...row(dep, '2030-01-02', 1), [extra]: 'gpu-node-07' }];
      const r = await postTls(url(), push(installationA, rows as never), { ca: pki.ca.cert, client: certA });
      expect([r.status, r.json.error.code, r.json.error.field]).toEqual([400, 'FIELD_UNKNOWN', `rows.1.${extra}`]);
    }
    const top = await postTls(url(), { ...push(installationA, [row(dep, '2030-01-01', 1)]), deployment_names: ['prod'] }, { ca: pki.ca.cert, client: certA });
    expect([top.status, top.json.error.code]).toEqual([400, 'FIELD_UNKNOWN']);
    const clearId = await postTls(url(), push(installationA, [row(randomUUID(), '2030-01-01', 1)]), { ca: pki.ca.cert, client: certA });
    expect([clearId.status, clearId.json.error.code, clearId.json.error.field]).toEqual([400, 'FIELD_FORMAT', 'rows.0.deployment']);
    const policy = await postTls(url(), { ...push(installationA, [row(dep, '2030-01-01', 1)]), policy: 'kaching.hq.rollup_daily.v0' }, { ca: pki.ca.cert, client: certA });
    expect([policy.status, policy.json.error.code]).toEqual([400, 'FIELD_ENUM']);
    expect(await stored()).toEqual([]);
  });
});

describe('idempotent by (installation, deployment, day, revision)', () => {
  it('applies a push once: the same push again, and an older revision later, change nothing; a newer one does', async () => {
    const first = push(installationA, [row(dep, '2030-01-01', 100, '5'), row(dep, '2030-01-02', 100, '7')]);
    const r1 = await postTls(url(), first, { ca: pki.ca.cert, client: certA });
    expect([r1.status, r1.json]).toEqual([200, { received: 2, applied: 2, ignored: 0 }]);
    const after1 = await stored();
    const r2 = await postTls(url(), first, { ca: pki.ca.cert, client: certA });
    expect(r2.json).toEqual({ received: 2, applied: 0, ignored: 2 });
    expect(await stored()).toEqual(after1);

    const older = await postTls(url(), push(installationA, [row(dep, '2030-01-01', 99, '1000')]), { ca: pki.ca.cert, client: certA });
    expect(older.json).toEqual({ received: 1, applied: 0, ignored: 1 });
    expect((await stored()).find((r) => r.day.toISOString().startsWith('2030-01-01'))!.jobs).toBe('5');

    const newer = await postTls(url(), push(installationA, [row(dep, '2030-01-01', 101, '6')]), { ca: pki.ca.cert, client: certA });
    expect(newer.json).toEqual({ received: 1, applied: 1, ignored: 0 });
    const total = await env.pool.query(`select sum(jobs)::text as jobs, count(*)::int as rows from hq_rollup_daily where not deleted`);
    expect(total.rows[0]).toEqual({ jobs: '13', rows: 2 });
  });

  it('the same deployment and day from two installations are two rows; a tombstone outranks older revisions', async () => {
    const b = await postTls(url(), push(installationB, [row(dep, '2030-01-01', 1, '3')]), { ca: pki.ca.cert, client: certB });
    expect(b.json.applied).toBe(1);
    const gone = await postTls(url(), push(installationA, [row(dep, '2030-01-02', 102, '0', { deleted: true })]), { ca: pki.ca.cert, client: certA });
    expect(gone.json.applied).toBe(1);
    const late = await postTls(url(), push(installationA, [row(dep, '2030-01-02', 100, '7')]), { ca: pki.ca.cert, client: certA });
    expect(late.json.applied).toBe(0);
    const total = await env.pool.query(`select installation_id, sum(jobs)::text as jobs from hq_rollup_daily where not deleted group by 1 order by 2`);
    expect(total.rows).toEqual([
      { installation_id: installationB, jobs: '3' },
      { installation_id: installationA, jobs: '6' },
    ]);
  });

  it('a revoked installation is refused from then on (what it pushed stays)', async () => {
    await revokeInstallation(env.pool, installationB);
    const r = await postTls(url(), push(installationB, [row(dep, '2030-01-03', 1)]), { ca: pki.ca.cert, client: certB });
    expect([r.status, r.json.error.code]).toEqual([403, 'HQ_INSTALLATION_UNKNOWN']);
    expect((await env.pool.query('select count(*)::int as n from hq_rollup_daily where installation_id = $1', [installationB])).rows[0].n).toBe(1);
  });
});
