import { randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connectNats, createPool, currentPartitioning, ensureEventsStream, lanesOf, migrate, names, partitionOf, type BaseConfig } from '@kaching/contracts';
import { generateMessages, publishMessages } from '@kaching/projector';
import { cpuBetween, cpuSnapshot, type CpuUse } from './proc.js';
import { SHIPPED_NODE_ARGS } from './stack.js';

const KACHING_BIN = fileURLToPath(new URL('../../../../deploy/bin/kaching.mjs', import.meta.url));

export interface ScaleRow {
  partitions: number;
  /** Projector processes (each runs all three projections). */
  instances: number;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  /** CPU over the run: the projector instances together, postgres, nats-server (and µs per event). */
  cpu: Record<string, CpuUse>;
  /** CPU the projector processes use together while idle (leases, heartbeats, pull requests), % of one core. */
  idlePercent?: number;
  /** Events per committed batch, over all projections and instances (from their /metrics). */
  meanBatch?: number;
  /** Why this count was not measured (the instances did not settle in time); the other counts still are. */
  error?: string;
}

export interface ScaleShape {
  partitions: number;
  instances: number;
}

/**
 * The partitioned pipeline over several (partitions, projector processes) shapes: the same number of events
 * (spread over deployments on every partition) published while the instances, already started, holding their
 * leases and warmed up by a first load (JIT, prepared plans, catalog caches: once per process), project them.
 * On a 2-core machine more instances cannot add cores; what the rows show is whether CPU per event stays flat —
 * the price of leases, fencing and per-partition batches — and, at rest, what the instances cost while idle.
 */
export async function benchScale(o: { config: BaseConfig; shapes: ScaleShape[]; jobs: number; suffix: string; progress(line: string): void }): Promise<ScaleRow[]> {
  const rows: ScaleRow[] = [];
  for (const { partitions: k, instances } of o.shapes) {
    const namespace = `bs${k}x${instances}${o.suffix}`;
    const cfg = { ...o.config, namespace };
    await migrate({ databaseUrl: cfg.databaseUrl, namespace });
    const pool = createPool({ databaseUrl: cfg.databaseUrl, namespace, max: 2 });
    const nc = await connectNats(cfg.natsUrl);
    const children: ChildProcess[] = [];
    try {
      const n = names(namespace);
      await ensureEventsStream(nc, n);
      await currentPartitioning(pool, k);
      // two deployments per partition, the jobs split evenly over them
      const org = randomUUID();
      await pool.query('insert into org (org_id, name) values ($1, $2)', [org, 'bench']);
      const deps: string[] = [];
      while (deps.length < 2 * k) {
        const d = randomUUID();
        if (deps.filter((x) => partitionOf(x, k) === partitionOf(d, k)).length >= 2) continue;
        deps.push(d);
        await pool.query('insert into deployment (deployment_id, org_id, name) values ($1, $2, $3)', [d, org, d.slice(0, 8)]);
      }
      const load = (seed: number, jobs: number) =>
        deps.flatMap((d, i) => generateMessages(n, { deploymentId: d, orgId: org, jobs: Math.ceil(jobs / deps.length), seed: seed + i, partitions: k }));
      const warmup = load(1_000, Math.max(deps.length, Math.round(o.jobs / 4)));
      const msgs = load(11, o.jobs);
      o.progress(`scale: ${k} partition(s), ${instances} projector process(es), ${msgs.length} events (after ${warmup.length} to warm up)`);
      const env = { ...process.env, DATABASE_URL: cfg.databaseUrl, NATS_URL: cfg.natsUrl, KACHING_NAMESPACE: namespace, KACHING_PARTITIONS: String(k), LOG_LEVEL: 'warn' };
      const ports: number[] = [];
      for (let i = 0; i < instances; i++) {
        ports.push(await freePort());
        children.push(spawn(process.execPath, [...SHIPPED_NODE_ARGS, KACHING_BIN, 'projector'], { env: { ...env, PROJECTOR_PORT: String(ports[i]), PROJECTOR_HOST: '127.0.0.1' }, stdio: 'ignore' }));
      }
      // every lane of every projection leased before the load starts (the instances have rebalanced)
      const lanes = lanesOf(k).length + 1;
      await until(async () => {
        const r = await pool.query<{ n: string; owners: string }>(
          `select count(*)::text as n, count(distinct owner)::text as owners from consumer_lease where owner is not null and expires_at > now()`,
        );
        return Number(r.rows[0]!.n) >= 3 * lanes && Number(r.rows[0]!.owners) === instances;
      }, 90_000, 'every lane leased by the instances');
      const pids = Object.fromEntries(children.map((c, i) => [`projector ${i + 1}`, c.pid]));
      const projectorsOf = (raw: Record<string, CpuUse>) =>
        Object.entries(raw).filter(([key]) => key.startsWith('projector')).reduce((a, [, v]) => ({ seconds: a.seconds + v.seconds, percent: a.percent + v.percent }), { seconds: 0, percent: 0 });
      const js = jetstream(nc);
      const jsm = await jetstreamManager(nc);
      // caught up: every lane's checkpoint is at the last message of its subject
      const caughtUp = async () => {
        const last = (await jsm.streams.info(n.eventsStream)).state.last_seq;
        const tails = await Promise.all(
          lanesOf(k).map(async (lane) => {
            const m = await jsm.streams.getMessage(n.eventsStream, { last_by_subj: n.laneFilter(lane) }).catch(() => null);
            return { lane: lane.id, seq: m?.seq ?? 0 };
          }),
        );
        await until(async () => {
          const r = await pool.query<{ consumer: string; lane: string; last_seq: string }>(`select consumer, lane, last_seq from consumer_checkpoint`);
          return ['raw', 'rollups', 'concurrency'].every((c) =>
            tails.every((t) => t.seq === 0 || Number(r.rows.find((x) => x.consumer === c && x.lane === t.lane)?.last_seq ?? 0) >= t.seq),
          );
        }, 600_000, `projections at ${last}`);
      };
      await publishMessages(js, warmup);
      await caughtUp();
      // at rest: what the instances cost with nothing to do
      const idleFrom = cpuSnapshot(pids);
      await new Promise((r) => setTimeout(r, 3_000));
      const idlePercent = projectorsOf(cpuBetween(idleFrom, cpuSnapshot(pids))).percent;
      const batchesBefore = await batchTotals(ports);
      const before = cpuSnapshot(pids);
      const t0 = performance.now();
      await publishMessages(js, msgs);
      await caughtUp();
      const seconds = (performance.now() - t0) / 1000;
      const raw = cpuBetween(before, cpuSnapshot(pids));
      const batchesAfter = await batchTotals(ports);
      const meanBatch = (batchesAfter.events - batchesBefore.events) / Math.max(1, batchesAfter.batches - batchesBefore.batches);
      const cpu: Record<string, CpuUse> = { [`projector ×${instances}`]: projectorsOf(raw) };
      for (const key of ['postgres', 'nats-server']) if (raw[key]) cpu[key] = raw[key]!;
      rows.push({ partitions: k, instances, events: msgs.length, seconds, eventsPerSecond: Math.round(msgs.length / seconds), cpu, idlePercent, meanBatch });
    } catch (err) {
      rows.push({ partitions: k, instances, events: 0, seconds: 0, eventsPerSecond: 0, cpu: {}, error: (err as Error).message });
      o.progress(`scale: ${k} partition(s) not measured: ${(err as Error).message}`);
    } finally {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((r) => {
              if (c.exitCode !== null) return r();
              c.once('exit', () => r());
              c.kill('SIGTERM');
            }),
        ),
      );
      const jsm = await jetstreamManager(nc).catch(() => null);
      await jsm?.streams.delete(names(namespace).eventsStream).catch(() => undefined);
      await nc.close().catch(() => undefined);
      await pool.end().catch(() => undefined);
    }
  }
  return rows;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Committed batches and the events in them, summed over the instances' /metrics. */
async function batchTotals(ports: number[]): Promise<{ batches: number; events: number }> {
  let batches = 0;
  let events = 0;
  for (const port of ports) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const line of text.split('\n')) {
      if (line.startsWith('kaching_projector_batch_seconds_count')) batches += Number(line.split(' ').at(-1));
      if (line.startsWith('kaching_projector_events_applied_total')) events += Number(line.split(' ').at(-1));
    }
  }
  return { batches, events };
}

async function until(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
