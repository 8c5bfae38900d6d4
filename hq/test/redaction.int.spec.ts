import { createHash, createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, HQ_METRIC_FIELDS, HQ_POLICY, HQ_ROW_FIELDS } from '@kaching/contracts';
import { startPusher, type Pusher } from '@kaching/hq';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { makePki, type IssuedCert, type Pki } from '../../test/support/pki.js';

// What leaves an installation: the pusher sends its daily rollups to a recording mTLS server
// standing in for HQ, and the test reads every byte it received against the redaction policy.

interface Received {
  path: string;
  clientCertSha256: string;
  raw: string;
  body: { policy: string; installation_id: string; rows: Record<string, unknown>[] };
}

let env: IsolatedEnv;
let dir: string;
let pki: Pki;
let client: IssuedCert;
let hq: Server;
let hqUrl: string;
const received: Received[] = [];
let pusher: Pusher;

const org = { id: randomUUID(), name: 'Acme Secret Corp' };
const deployments = [
  { id: randomUUID(), name: 'prod-eu-finance', tz: 'Europe/Berlin' },
  { id: randomUUID(), name: 'staging-us-research', tz: 'America/Chicago' },
];
const sensitive = {
  hostname: 'gpu-node-secret-07.corp.acme.internal',
  agentType: 'SLURP_ingest_confidential',
  agentId: randomUUID(),
  nodeId: randomUUID(),
  jobId: randomUUID(),
  ucxl: 'ucxl://any:finance@project:alpha/*/quarterly-report.md',
  correlationId: 'ucxl:alpha:2030-01-05T08:03:05Z:42',
};
const days = ['2030-01-03', '2030-01-04', '2030-01-05'];

async function seedInstallation(): Promise<void> {
  const q = (sql: string, p: unknown[]) => env.pool.query(sql, p);
  await q('insert into org (org_id, name) values ($1, $2)', [org.id, org.name]);
  for (const d of deployments) await q('insert into deployment (deployment_id, org_id, name, timezone) values ($1, $2, $3, $4)', [d.id, org.id, d.name, d.tz]);
  const d0 = deployments[0]!.id;
  await q(`insert into node (deployment_id, node_id, org_id, hostname, first_seen_at, last_seen_at) values ($1, $2, $3, $4, now(), now())`, [d0, sensitive.nodeId, org.id, sensitive.hostname]);
  await q(`insert into agent (deployment_id, agent_id, org_id, node_id, agent_type, first_seen_at, last_seen_at) values ($1, $2, $3, $4, $5, now(), now())`, [d0, sensitive.agentId, org.id, sensitive.nodeId, sensitive.agentType]);
  await q(
    `insert into job (deployment_id, correlation_id, org_id, job_id, agent_id, node_id, agent_type, ucxl_addr, started_at, status, revision, stream_seq)
     values ($1, $2, $3, $4, $5, $6, $7, $8, '2030-01-05T08:03:00Z', 'succeeded', 'r1', 1)`,
    [d0, sensitive.correlationId, org.id, sensitive.jobId, sensitive.agentId, sensitive.nodeId, sensitive.agentType, sensitive.ucxl],
  );
  let i = 0;
  for (const d of deployments) {
    for (const day of days) {
      i++;
      const values = HQ_METRIC_FIELDS.map((_, k) => i * 100 + k);
      await q(
        `insert into usage_rollup_daily (deployment_id, day, org_id, ${HQ_METRIC_FIELDS.join(', ')})
         values ($1, $2, $3, ${HQ_METRIC_FIELDS.map((_, k) => `$${k + 4}`).join(', ')})`,
        [d.id, day, org.id, ...values.map((v, k) => (k < 2 ? v + 0.125 : v))],
      );
    }
  }
}

function startRecordingHq(server: IssuedCert): Promise<void> {
  hq = createServer({ cert: server.cert, key: server.key, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      const body = JSON.parse(raw) as Received['body'];
      received.push({ path: req.url ?? '', clientCertSha256: createHash('sha256').update(peer.raw).digest('hex'), raw, body });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ received: body.rows.length, applied: body.rows.length, ignored: 0 }));
    });
  });
  return new Promise((resolve) => hq.listen(0, '127.0.0.1', () => {
    hqUrl = `https://127.0.0.1:${(hq.address() as AddressInfo).port}`;
    resolve();
  }));
}

beforeAll(async () => {
  env = await isolatedEnv();
  dir = mkdtempSync(join(tmpdir(), 'kaching-hq-redact-'));
  pki = makePki(dir);
  client = pki.client('installation');
  await startRecordingHq(pki.server('hq'));
  await seedInstallation();
  pusher = startPusher({
    pool: env.pool,
    namespace: env.namespace,
    log: createLogger('hq-test', 'warn'),
    config: { url: hqUrl, intervalMs: 3_600_000, retryMinMs: 60_000, batchRows: 4, timeoutMs: 10_000, tls: { certFile: client.certFile, keyFile: client.keyFile, caFile: pki.ca.certFile } },
  });
});

afterAll(async () => {
  await pusher?.close();
  await new Promise((r) => hq?.close(r));
  await env?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const allRows = () => received.flatMap((r) => r.body.rows);

describe('the redaction policy, checked on the received bytes', () => {
  it('sends every daily rollup once, in batches, with the installation client certificate over mTLS', async () => {
    const r = await pusher.pushNow();
    expect(r).toMatchObject({ skipped: false, staged: 6, pushed: 6 });
    expect(received.map((x) => x.body.rows.length)).toEqual([4, 2]);
    const fp = createHash('sha256').update(new (await import('node:crypto')).X509Certificate(client.cert).raw).digest('hex');
    for (const x of received) {
      expect(x.path).toBe('/v1/hq/rollups');
      expect(x.clientCertSha256).toBe(fp);
    }
  });

  it('a push holds exactly policy, installation_id and rows; each row exactly the fields the policy lists', async () => {
    const installation = (await env.pool.query('select installation_id from installation')).rows[0].installation_id;
    for (const x of received) {
      expect(Object.keys(x.body).sort()).toEqual(['installation_id', 'policy', 'rows']);
      expect(x.body.policy).toBe(HQ_POLICY);
      expect(x.body.installation_id).toBe(installation);
      for (const row of x.body.rows) expect(Object.keys(row).sort()).toEqual([...HQ_ROW_FIELDS].sort());
    }
  });

  it('ids are HMAC-SHA-256 under the installation salt; no id, name, hostname, agent, ucxl address, time zone or the salt itself appears', async () => {
    const salt: Buffer = (await env.pool.query('select hq_salt from installation')).rows[0].hq_salt;
    const hmac = (s: string) => createHmac('sha256', salt).update(s).digest('hex');
    const pseudonyms = new Set(allRows().map((r) => r.deployment));
    expect(pseudonyms).toEqual(new Set(deployments.map((d) => hmac(`deployment:${d.id}`))));
    expect(new Set(allRows().map((r) => r.org))).toEqual(new Set([hmac(`org:${org.id}`)]));
    const raw = received.map((x) => x.raw).join('\n');
    const forbidden = [
      org.id, org.name, ...deployments.flatMap((d) => [d.id, d.name, d.tz]),
      ...Object.values(sensitive), 'ucxl', 'hostname', 'agent', salt.toString('hex'), salt.toString('base64'),
    ];
    for (const s of forbidden) expect(raw, `"${s}" left the installation`).not.toContain(s);
    // no uuid of any kind, except the installation's own id (HQ registered it)
    const installation = (await env.pool.query('select installation_id from installation')).rows[0].installation_id;
    expect(raw.replaceAll(installation, '')).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/);
  });

  it("the values are the rollups' own, as exact decimal strings", async () => {
    const salt: Buffer = (await env.pool.query('select hq_salt from installation')).rows[0].hq_salt;
    const local = await env.pool.query(`select deployment_id, day::text as day, ${HQ_METRIC_FIELDS.map((f) => `${f}::text`).join(', ')} from usage_rollup_daily`);
    const byKey = new Map(allRows().map((r) => [`${r.deployment}/${r.day}`, r]));
    expect(byKey.size).toBe(local.rows.length);
    for (const l of local.rows) {
      const sent = byKey.get(`${createHmac('sha256', salt).update(`deployment:${l.deployment_id}`).digest('hex')}/${l.day}`)!;
      expect(sent.deleted).toBe(false);
      for (const f of HQ_METRIC_FIELDS) expect(sent[f], f).toBe(l[f]);
    }
  });

  it('sends nothing when nothing changed; a changed row goes again with a higher revision, a vanished one as a tombstone', async () => {
    const before = received.length;
    expect(await pusher.pushNow()).toMatchObject({ staged: 0, pushed: 0 });
    expect(received.length).toBe(before);
    const revisions = new Map(allRows().map((r) => [`${r.deployment}/${r.day}`, r.revision as number]));

    const [d0, d1] = deployments;
    await env.pool.query(`update usage_rollup_daily set jobs = jobs + 1 where deployment_id = $1 and day = $2`, [d0!.id, days[2]]);
    await env.pool.query(`delete from usage_rollup_daily where deployment_id = $1 and day = $2`, [d1!.id, days[0]]);
    expect(await pusher.pushNow()).toMatchObject({ staged: 2, pushed: 2 });
    const last = received.slice(before).flatMap((r) => r.body.rows);
    expect(last).toHaveLength(2);
    const changed = last.find((r) => r.deleted === false)!;
    const gone = last.find((r) => r.deleted === true)!;
    expect(changed.revision).toBeGreaterThan(revisions.get(`${changed.deployment}/${changed.day}`)!);
    expect(changed.day).toBe(days[2]);
    expect(gone.day).toBe(days[0]);
    expect(gone.revision).toBeGreaterThan(revisions.get(`${gone.deployment}/${gone.day}`)!);
    for (const f of HQ_METRIC_FIELDS) expect(gone[f]).toBe('0');
    expect(Object.keys(gone).sort()).toEqual([...HQ_ROW_FIELDS].sort());
  });

  it('hq/README.md documents every field the policy sends', () => {
    const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
    const section = readme.slice(readme.indexOf('## Redaction policy'));
    for (const f of HQ_ROW_FIELDS) expect(section, f).toContain(`\`${f}\``);
    expect(section).toContain(HQ_POLICY);
  });
});
