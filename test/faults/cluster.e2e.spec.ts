import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, decisionsBucket, names, type PolicyDecision, issueIngestToken } from '@kaching/contracts';
import { verifyProjections } from '@kaching/projector';
import { createAgent, type KachingAgent } from '@kaching/sdk';
import { startNatsCluster, type NatsCluster } from '../../deploy/nats-cluster.mjs';
import { addQuota } from '../../enforcer/test/helpers.js';
import { seedDeployment } from '../../ingest/test/support.js';
import { candidatePort } from '../support/ports.js';
import { isolatedEnv, type IsolatedEnv } from '../support/isolation.js';
import { ServiceProcess } from '../support/instances.js';
import { deploymentsCovering, lanesCaughtUp, waitFor } from '../e2e/scale-support.js';

/**
 * KACHING on a 3-node JetStream cluster at R3 with 4 partitions: three projector processes, two enforcer
 * processes, ingest and the api, and agents sending signed batches over HTTP (retrying 503s as the SDK does).
 * While they send, the events stream's leader node is SIGKILLed and later restarted, a projector is SIGKILLed
 * and another started, and an enforcer is SIGSTOPped past its lease, then continued. Afterwards every
 * acknowledged event is counted once, verify-projections is clean, each threshold alerted once, each decision
 * was published once, and an orchestrator watching the KV bucket saw every current decision.
 * `npm run test:faults` (KACHING_FAULTS=full) sends for longer and repeats the leader kill.
 */
const FULL = process.env.KACHING_FAULTS === 'full';
const DEPLOYMENTS = 8; // two per partition
const EVENTS_PER_DEPLOYMENT = FULL ? 1500 : 300;
const CPU_EACH = 2;
// thresholds crossed about a third and two thirds of the way: both decisions happen while the faults do
const SOFT = (EVENTS_PER_DEPLOYMENT * CPU_EACH) / 3;
const HARD = (EVENTS_PER_DEPLOYMENT * CPU_EACH * 2) / 3;
const LEASE_MS = 2000;
// sending is paced over this long, so every fault below lands while events flow
const SEND_MS = FULL ? 60_000 : 12_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('a 3-node NATS cluster at R3, 4 partitions, several instances of everything, nodes and instances dying', () => {
  let env: IsolatedEnv;
  let cluster: NatsCluster;
  let nc: NatsConnection;
  let dir: string;
  const procs: ServiceProcess[] = [];
  const agents: KachingAgent[] = [];
  const faults: string[] = [];

  beforeAll(async () => {
    env = await isolatedEnv();
    dir = mkdtempSync(path.join(tmpdir(), 'kaching-cluster-'));
    // nine ports the nodes must know of each other in advance: candidates, and a fresh set if one was taken meanwhile
    for (let attempt = 1; ; attempt++) {
      const ports = { client: [] as number[], route: [] as number[], http: [] as number[] };
      for (let i = 0; i < 3; i++) for (const k of ['client', 'route', 'http'] as const) ports[k].push(await candidatePort());
      try {
        cluster = await startNatsCluster({ ports, dir: path.join(dir, String(attempt)) });
        break;
      } catch (e) {
        if (attempt >= 3) throw e;
      }
    }
    nc = await connectNats(cluster.url, { name: 'cluster-test' });
  }, 120_000);

  afterAll(async () => {
    for (const a of agents) await a.close().catch(() => undefined);
    await Promise.all(procs.map((p) => p.stop()));
    await nc?.close().catch(() => undefined);
    await cluster?.stop();
    await env?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('counts every acknowledged event once, alerts once per threshold, publishes each decision once', async () => {
    const childEnv = { ...env.env, NATS_URL: cluster.url, KACHING_PARTITIONS: '4', KACHING_STREAM_REPLICAS: '3', KACHING_LEASE_MS: String(LEASE_MS), INGEST_RATE_LIMIT_PER_S: '0' };
    const start = async (kind: 'ingest' | 'api' | 'projector' | 'enforcer', name: string) => {
      const p = new ServiceProcess(kind, childEnv, name);
      procs.push(p);
      return p.start(90_000);
    };
    const ingest = await start('ingest', 'ingest');
    await start('api', 'api');
    const projectors = [await start('projector', 'projector-1'), await start('projector', 'projector-2'), await start('projector', 'projector-3')];
    const enforcers = [await start('enforcer', 'enforcer-1'), await start('enforcer', 'enforcer-2')];
    const jsm = await jetstreamManager(nc);
    const n = names(env.namespace);
    // created by the services at R3, as KACHING_STREAM_REPLICAS says
    expect((await jsm.streams.info(n.eventsStream)).config.num_replicas).toBe(3);
    expect((await jsm.streams.info(n.decisionsStream)).config.num_replicas).toBe(3);
    expect((await jsm.streams.info(`KV_${n.decisionsBucket}`)).config.num_replicas).toBe(3);

    // an orchestrator watching every decision from the start
    const kv = await decisionsBucket(nc, n);
    const seen = new Map<string, PolicyDecision>();
    const watch = await kv.watch({ key: '>' });
    const watching = (async () => {
      for await (const e of watch) if (e.operation === 'PUT') seen.set(e.key, e.json<PolicyDecision>());
    })();

    // deployments on every partition, each with a daily cpu quota, and one agent each
    const first = await seedDeployment(env.pool);
    const deps = deploymentsCovering(4, DEPLOYMENTS / 4);
    for (const d of deps) {
      await env.pool.query('insert into deployment (deployment_id, org_id, name) values ($1, $2, $3)', [d, first.orgId, d.slice(0, 8)]);
      // the agents share one signing key, registered for each deployment
      await env.pool.query(
        'insert into agent_key (deployment_id, key_id, org_id, public_key, valid_from) select $1, key_id, org_id, public_key, valid_from from agent_key where deployment_id = $2',
        [d, first.deploymentId],
      );
      await addQuota(env.pool, d, first.orgId, { name: 'cpu', metric: 'cpu_seconds', period: 'daily', soft: SOFT, hard: HARD });
    }
    // an ingest token is bound to its deployment: one per deployment, and one agent each
    for (const d of deps) {
      const t = await issueIngestToken(env.pool, { deploymentId: d, scopes: ['ingest:usage', 'ingest:jobs'], label: 'cluster' });
      agents.push(
        await createAgent({
          ingestUrl: ingest.url, token: t.token, deploymentId: d, keyId: first.keyId, secretKey: Buffer.from(first.secretKey).toString('base64'),
          agentType: 'worker', flushIntervalMs: 50, maxBatch: 50, backoffBaseMs: 100, backoffMaxMs: 1000, requestTimeoutMs: 5000,
        }),
      );
    }

    const sendStart = Date.now();
    const sendAll = (async () => {
      const now = new Date();
      for (let i = 0; i < EVENTS_PER_DEPLOYMENT; i++) {
        await Promise.all(agents.map((a) => a.emitUsage({ ucxlAddr: 'ucxl://worker:dev@p:t', step: i, startedAt: now, endedAt: now, metrics: { cpu_seconds: CPU_EACH } })));
        const due = sendStart + ((i + 1) * SEND_MS) / EVENTS_PER_DEPLOYMENT;
        if (due > Date.now()) await sleep(due - Date.now());
      }
    })();

    const at = (ms: number) => sleep(Math.max(0, sendStart + ms - Date.now()));
    const faultsAt: number[] = [];
    const note = (what: string) => {
      faults.push(what);
      faultsAt.push(Date.now() - sendStart);
    };
    const leaderKill = async (ms: number) => {
      await at(ms);
      const leader = (await jsm.streams.info(n.eventsStream)).cluster?.leader;
      const node = cluster.nodes.find((x) => x.name === leader)!;
      await node.kill();
      note(`SIGKILL events-stream leader ${leader}`);
      await sleep(3000);
      await node.start();
      note(`restarted ${leader}`);
    };
    // three fault lines, overlapping, all while the agents produce
    const faultLines = Promise.all([
      (async () => {
        await leaderKill(SEND_MS / 8);
        if (FULL) await leaderKill(SEND_MS / 2);
      })(),
      (async () => {
        await at(SEND_MS / 4);
        await projectors[0]!.kill();
        note('SIGKILL projector-1');
        projectors.push(await start('projector', 'projector-4'));
      })(),
      (async () => {
        await at(SEND_MS / 3);
        enforcers[0]!.signal('SIGSTOP');
        note('SIGSTOP enforcer-1');
        await sleep(LEASE_MS * 2.5);
        enforcers[0]!.signal('SIGCONT');
        note('SIGCONT enforcer-1');
      })(),
    ]);
    await sendAll;
    await faultLines;
    // every fault struck while events were still being produced
    expect(Math.max(...faultsAt)).toBeLessThan(SEND_MS);
    for (const a of agents) expect(await a.flush(120_000)).toBe(0);
    await cluster.waitReady();

    await waitFor(() => lanesCaughtUp(env.pool, nc, n, ['raw', 'rollups', 'concurrency', 'enforcer']), 120_000, 'every lane of every consumer caught up');
    await waitFor(async () => (await env.pool.query('select 1 from enforcer_outbox where published_at is null')).rows.length === 0, 60_000, 'outbox drained');

    // every acknowledged event once, with its cpu
    const accepted = agents.reduce((s, a) => s + a.stats().accepted + a.stats().duplicates, 0);
    expect(accepted).toBe(DEPLOYMENTS * EVENTS_PER_DEPLOYMENT);
    expect(agents.reduce((s, a) => s + a.stats().failed, 0)).toBe(0);
    const samples = await env.pool.query<{ n: string; cpu: string }>(`select count(*)::text as n, sum(cpu_seconds)::text as cpu from usage_sample`);
    expect(samples.rows[0]).toEqual({ n: String(DEPLOYMENTS * EVENTS_PER_DEPLOYMENT), cpu: (DEPLOYMENTS * EVENTS_PER_DEPLOYMENT * CPU_EACH).toFixed(6) });
    expect(await verifyProjections(env.pool)).toEqual([]);

    const control = await (async () => {
      const info = await jsm.streams.info(n.decisionsStream);
      const out: PolicyDecision[] = [];
      for (let s = info.state.first_seq; s <= info.state.last_seq && info.state.messages > 0; s++) {
        const m = await jsm.streams.getMessage(n.decisionsStream, { seq: s }).catch(() => null);
        if (m) out.push(m.json<PolicyDecision>());
      }
      return out;
    })();
    await waitFor(async () => deps.every((d) => seen.get(n.decisionKey(d, 'cpu'))?.code === 'QUOTA_EXCEEDED'), 30_000, 'the orchestrator saw every current decision');
    for (const d of deps) {
      const used = await env.pool.query(`select sum(value)::text as v from enforcer_usage_daily where deployment_id = $1 and metric = 'cpu_seconds'`, [d]);
      expect(Number(used.rows[0].v), d).toBe(EVENTS_PER_DEPLOYMENT * CPU_EACH);
      const alerts = await env.pool.query<{ code: string }>('select code from alert where deployment_id = $1 order by code', [d]);
      expect(alerts.rows.map((r) => r.code)).toEqual(['QUOTA_EXCEEDED', 'QUOTA_NEARING']);
      const published = control.filter((m) => m.deployment_id === d && m.state === 'active').map((m) => m.code).sort();
      expect(published).toEqual(['QUOTA_EXCEEDED', 'QUOTA_NEARING']);
      expect(seen.get(n.decisionKey(d, 'cpu'))).toMatchObject({ code: 'QUOTA_EXCEEDED', state: 'active' });
    }
    watch.stop();
    await watching;
    // eslint-disable-next-line no-console
    const retries = agents.reduce((s, a) => s + a.stats().retries, 0);
    console.log(`cluster faults: ${faults.join('; ')}; events acknowledged ${accepted}, counted ${samples.rows[0]!.n}, lost 0, double counts 0; agent retries ${retries}`);
  });
});
