import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createPool, cryptoReady, migrate, type BaseConfig } from '@kaching/contracts';
import { benchIngest, seedBenchDeployment, type PacedResult, type PathResult } from '@kaching/ingest';
import { cpuBetween, cpuSnapshot, type CpuUse } from './proc.js';
import { presignBodies, type Signing } from './presign.js';
import { startStack, type RunningStack, type Topology } from './stack.js';
import { runWrk, type WrkResult } from './wrk.js';

export interface HttpPathFigure extends WrkResult {
  /** Events acknowledged per second (requests × events per request). */
  eventsPerSecond: number;
  eventsPerRequest: number;
  /** CPU while wrk ran, per process (the services, wrk itself, nats-server, postgres). */
  cpu: Record<string, CpuUse>;
}

export interface OutsideResult {
  topology: Topology;
  /** The ceiling: a no-op route on the same server (`GET /healthz`), same generator, same run. */
  noop: HttpPathFigure;
  single: HttpPathFigure;
  batch: HttpPathFigure;
  signedBatch: HttpPathFigure;
  bytesPerEvent: number;
  /** Ack latency of 100-event batches offered on a schedule at half the batch throughput (Node client in the bench process). */
  paced?: PacedResult;
  /** Single events as NATS requests (Node client in the bench process). */
  nats?: PathResult;
}

export interface OutsidePlan {
  seconds: number;
  singleEvents: number;
  batchEvents: number;
  batchSize: number;
  singleConnections: number;
  batchConnections: number;
  /** Single events sent as NATS requests. */
  natsEvents: number;
}

export const OUTSIDE_QUICK: OutsidePlan = { seconds: 5, singleEvents: 40_000, batchEvents: 150_000, batchSize: 100, singleConnections: 64, batchConnections: 8, natsEvents: 5_000 };
export const OUTSIDE_FULL: OutsidePlan = { seconds: 15, singleEvents: 120_000, batchEvents: 450_000, batchSize: 100, singleConnections: 64, batchConnections: 8, natsEvents: 10_000 };

/**
 * Ingest driven over HTTP by wrk from its own process, against the services in processes of their own, in
 * both topologies. Bodies are signed before the run and sent once each. The same deployment, token and
 * agent key are copied into each topology's namespace, so one set of bodies serves both (each namespace has
 * its own stream, so nothing is a duplicate).
 */
export async function benchOutside(o: {
  config: BaseConfig;
  /** One namespace per topology, in the same database. */
  namespaces: Record<Topology, string>;
  plan: OutsidePlan;
  progress(line: string): void;
}): Promise<OutsideResult[]> {
  await cryptoReady();
  const [first, second] = [o.namespaces['all-in-one'], o.namespaces['per-service']];
  for (const ns of [first, second]) await migrate({ databaseUrl: o.config.databaseUrl, namespace: ns });
  const pool = createPool({ databaseUrl: o.config.databaseUrl, namespace: first, max: 2 });
  const dir = await mkdtemp(path.join(tmpdir(), 'kaching-bench-'));
  try {
    const dep = await seedBenchDeployment(pool);
    for (const t of ['org', 'deployment', 'ingest_token', 'agent_key']) {
      await pool.query(`insert into ${pg.escapeIdentifier(second)}.${t} select * from ${pg.escapeIdentifier(first)}.${t}`);
    }
    const files: Record<'single' | 'batch' | 'signedBatch', { file: string; batchSize: number; signing: Signing; events: number }> = {
      single: { file: path.join(dir, 'single.txt'), batchSize: 1, signing: 'per-event', events: o.plan.singleEvents },
      batch: { file: path.join(dir, 'batch.txt'), batchSize: o.plan.batchSize, signing: 'per-event', events: o.plan.batchEvents },
      signedBatch: { file: path.join(dir, 'signed-batch.txt'), batchSize: o.plan.batchSize, signing: 'batch', events: o.plan.batchEvents },
    };
    let bytesPerEvent = 0;
    for (const [name, f] of Object.entries(files)) {
      o.progress(`signing ${f.events.toLocaleString('en-US')} events for the ${name} path`);
      const r = await presignBodies({ ...f, deploymentId: dep.deploymentId, keyId: dep.keyId, secretKey: dep.secretKey });
      if (name === 'single') bytesPerEvent = r.bytesPerEvent;
    }
    const out: OutsideResult[] = [];
    for (const topology of ['all-in-one', 'per-service'] as const) {
      const env = { ...process.env, DATABASE_URL: o.config.databaseUrl, NATS_URL: o.config.natsUrl, KACHING_NAMESPACE: o.namespaces[topology] };
      o.progress(`HTTP from wrk against ${topology === 'all-in-one' ? 'kaching up' : 'one process per service'}`);
      const stack = await startStack({ topology, env });
      try {
        const run = async (label: string, p: { path: string; connections: number; bodiesFile?: string; eventsPerRequest: number }): Promise<HttpPathFigure> => {
          const before = cpuSnapshot(labelled(stack));
          const r = await runWrk({
            url: stack.ingestUrl, path: p.path, seconds: o.plan.seconds, connections: p.connections, token: dep.token,
            ...(p.bodiesFile ? { bodiesFile: p.bodiesFile } : {}),
          });
          const cpu = { ...cpuBetween(before, cpuSnapshot(labelled(stack))), wrk: { seconds: r.cpuSeconds, percent: Math.round((r.cpuSeconds / r.seconds) * 100) } };
          // the no-op counts requests: its "events" are requests
          const per = p.eventsPerRequest || 1;
          const fig = { ...r, eventsPerRequest: p.eventsPerRequest, eventsPerSecond: Math.round(((r.requests - r.non2xx) * per) / r.seconds), cpu };
          o.progress(`  ${label}: ${fig.eventsPerSecond.toLocaleString('en-US')} ${p.eventsPerRequest ? 'events' : 'requests'}/s, p99 ${r.p99Ms} ms${r.non2xx ? `, ${r.non2xx} refused` : ''}${r.ranOut ? ' (ran out of bodies)' : ''}`);
          return fig;
        };
        const noop = await run('no-op GET /healthz', { path: '/healthz', connections: o.plan.singleConnections, eventsPerRequest: 0 });
        const single = await run('single events', { path: '/v1/ingest/usage', connections: o.plan.singleConnections, bodiesFile: files.single.file, eventsPerRequest: 1 });
        const batch = await run(`${o.plan.batchSize}-event batches`, { path: '/v1/ingest/batch', connections: o.plan.batchConnections, bodiesFile: files.batch.file, eventsPerRequest: o.plan.batchSize });
        const signedBatch = await run(`${o.plan.batchSize}-event signed batches`, { path: '/v1/ingest/batch', connections: o.plan.batchConnections, bodiesFile: files.signedBatch.file, eventsPerRequest: o.plan.batchSize });
        o.progress('  paced batch ack latency and the NATS request path (Node client in the bench process)');
        const node = await benchIngest({
          ingestUrl: stack.ingestUrl, natsUrl: o.config.natsUrl, namespace: o.namespaces[topology],
          deploymentId: dep.deploymentId, token: dep.token, keyId: dep.keyId, secretKey: dep.secretKey,
          paths: ['paced', 'nats'], pacedPerSecond: batch.eventsPerSecond / 2, events: o.plan.natsEvents * 4,
        });
        out.push({ topology, noop, single, batch, signedBatch, bytesPerEvent, ...(node.paced ? { paced: node.paced } : {}), ...(node.nats ? { nats: node.nats } : {}) });
      } finally {
        await stack.close();
      }
    }
    return out;
  } finally {
    await pool.end();
    await rm(dir, { recursive: true, force: true });
  }
}

function labelled(stack: RunningStack): Record<string, number | undefined> {
  return Object.fromEntries(Object.entries(stack.pids));
}
