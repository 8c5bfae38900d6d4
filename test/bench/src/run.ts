import { randomBytes } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats, baseConfig, cryptoReady, generateSigningKeyPair, migrate, names, type BaseConfig, type StreamRecord } from '@kaching/contracts';
import { benchIngest, ingestStageCosts } from '@kaching/ingest';
import { benchProjector, benchReplay, projectorStageCosts, replayPhaseText } from '@kaching/projector';
import { benchDecisionLatency } from '@kaching/enforcer';
import { benchArchiveWrite, type BenchArchiveResult } from '@kaching/archiver';
import { signedUsage } from '@kaching/ingest';
import { benchEventToRollup, type EventToRollupResult } from './eventToRollup.js';
import { benchOutside, OUTSIDE_FULL, OUTSIDE_QUICK, type HttpPathFigure, type OutsidePlan } from './harness/outside.js';
import { cpuText } from './harness/proc.js';
import { benchScale } from './harness/scale.js';
import { benchArchiveReplay } from './harness/archiveReplay.js';

export interface BenchPlan {
  /** Messages per raw-publish ceiling run. */
  ingestEvents: number;
  outside: OutsidePlan;
  projectorJobs: number;
  decisionRate: number;
  decisionSeconds: number;
  /** Offered ingest rates (events/s) at which event-to-rollup latency is measured, and for how long. */
  rollupRates: number[];
  rollupSeconds: number;
  /** Jobs projected at each partition count of the scale run (1, 2, 4 partitions and projector processes). */
  scaleJobs: number;
  /** Events written to Parquet archive segments (in the bench process) for the archive write figure. */
  archiveEvents: number;
}

export const QUICK: BenchPlan = {
  ingestEvents: 20_000, outside: OUTSIDE_QUICK, projectorJobs: 16_000, decisionRate: 2_000, decisionSeconds: 8, rollupRates: [2_000, 5_000], rollupSeconds: 6, scaleJobs: 8_000, archiveEvents: 20_000,
};
// ~780k jobs make ~1M events (revisions, heartbeats and 10% duplicates); the 5k/s latency target is for 60 s
export const FULL: BenchPlan = {
  ingestEvents: 60_000, outside: OUTSIDE_FULL, projectorJobs: 780_000, decisionRate: 2_000, decisionSeconds: 30, rollupRates: [2_000, 5_000], rollupSeconds: 60, scaleJobs: 60_000, archiveEvents: 100_000,
};

/** 1/1, 2/2, 4/4 (partitions/processes) as the issue asks, and 4 partitions on 1 process: the same partition
 * count as the 4/4 shape, so the difference between the two is what more processes cost, not more partitions. */
export const SCALE_SHAPES = [
  { partitions: 1, instances: 1 },
  { partitions: 4, instances: 1 },
  { partitions: 2, instances: 2 },
  { partitions: 4, instances: 4 },
];

export const RESULTS_DIR = fileURLToPath(new URL('../results/', import.meta.url));

interface Row {
  figure: string;
  value: string;
  ceiling?: string;
  ratio?: number;
  target?: string;
}

/** One run: ceilings and pipeline side by side, in a database and namespace of its own (dropped afterwards). */
export async function runBench(plan: BenchPlan, progress: (line: string) => void): Promise<{ machine: Record<string, string>; rows: Row[]; raw: Record<string, unknown> }> {
  const base = baseConfig();
  const suffix = randomBytes(4).toString('hex');
  const dbName = `kaching_bench_${suffix}`;
  const admin = new pg.Client({ connectionString: withDb(base.databaseUrl, 'postgres') });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  const cfg = (ns: string): BaseConfig => ({ ...base, databaseUrl: withDb(base.databaseUrl, dbName), namespace: ns });
  const raw: Record<string, unknown> = {};
  try {
    await cryptoReady();
    const machine = await machineFacts(cfg(`bench${suffix}`));

    progress('per-event stage costs (microbenchmark in the bench process, one thread)');
    const stages = { ...(await ingestStageCosts()), ...(await projectorStageCosts()) };
    raw.stages = stages;

    // The bench process is only a load generator: every service under test runs in a process of its own.
    progress('ceilings: raw JetStream publish from the bench process (stock client, then KACHING publisher)');
    const kp = generateSigningKeyPair();
    const ceilingNs = `bc${suffix}`;
    const ing = await benchIngest({
      ingestUrl: 'http://unused', natsUrl: base.natsUrl, namespace: ceilingNs, deploymentId: '00000000-0000-4000-8000-000000000000',
      token: 'unused', keyId: 'bench', secretKey: kp.secretKey, events: plan.ingestEvents, paths: ['raw'], progress,
    });
    raw.ingest = ing;

    const outside = await benchOutside({
      config: cfg('x'), namespaces: { 'all-in-one': `bo${suffix}a`, 'per-service': `bo${suffix}b` }, plan: plan.outside, progress,
    });
    raw.outside = outside;
    for (const ns of [`bo${suffix}a`, `bo${suffix}b`]) await dropStream(base.natsUrl, ns);

    progress('projector: live consumers');
    const projNs = `bp${suffix}`;
    await migrate({ databaseUrl: cfg(projNs).databaseUrl, namespace: projNs });
    const proj = await benchProjector({ config: cfg(projNs), jobs: plan.projectorJobs, onProgress: progress });
    raw.projector = proj;
    progress('projector: replay of the same stream, next to a raw COPY');
    const rep = await benchReplay({ config: cfg(projNs), jobs: plan.projectorJobs, reuseStream: true, onProgress: progress });
    raw.replay = rep;
    progress('replay from the archive: the same stream archived, then purged from the stream');
    const archRep = await benchArchiveReplay(cfg(projNs), progress);
    raw.archiveReplay = archRep;

    progress('scale-out: the same load over 1, 2 and 4 partitions and projector processes, and 4 partitions on 1 process');
    const scale = await benchScale({ config: cfg('x'), shapes: SCALE_SHAPES, jobs: plan.scaleJobs, suffix, progress });
    raw.scale = scale;

    const rollup: EventToRollupResult[] = [];
    for (const topology of ['all-in-one', 'per-service'] as const) {
      for (const rate of plan.rollupRates) {
        progress(`event-to-rollup latency at ${rate} events/s offered for ${plan.rollupSeconds} s, ${topology}`);
        const ns = `br${rate}${topology === 'all-in-one' ? 'a' : 'b'}${suffix}`;
        rollup.push(await benchEventToRollup({ config: cfg(ns), rate, seconds: plan.rollupSeconds, topology, progress }));
        await dropStream(base.natsUrl, ns);
      }
    }
    raw.eventToRollup = rollup;

    progress(`enforcer: decision latency at ${plan.decisionRate} events/s`);
    const dec = await benchDecisionLatency({
      databaseUrl: cfg('x').databaseUrl, natsUrl: base.natsUrl, namespace: `be${suffix}`,
      rate: plan.decisionRate, durationS: plan.decisionSeconds,
    });
    raw.enforcer = dec;

    progress(`archive: ${plan.archiveEvents} signed events into Parquet segments (zstd, in the bench process)`);
    const archive = await benchArchive(plan.archiveEvents, kp);
    raw.archive = archive;

    const f = (n: number) => Math.round(n).toLocaleString('en-US');
    const stockPub = ing.raw?.perSecond ?? 0;
    const topo = (t: string) => (t === 'all-in-one' ? 'all-in-one (kaching up)' : 'one process per service');
    const http = (x: HttpPathFigure) =>
      `${f(x.eventsPerSecond)} ${x.eventsPerRequest ? 'events' : 'requests'}/s, p50 ${x.p50Ms} ms, p99 ${x.p99Ms} ms${x.non2xx ? `, ${f(x.non2xx)} refused` : ''}${x.ranOut ? ' (ran out of bodies: a lower bound)' : ''}; CPU: ${cpuText(x.cpu, x.eventsPerRequest ? x.requests * x.eventsPerRequest : undefined)}`;
    const rows: Row[] = [
      { figure: 'ceiling: raw JetStream publish, stock client (js.publish per message, msg ids, file store; from the bench process)', value: `${f(stockPub)} msgs/s, ${ing.raw?.cpuUsPerEvent} µs CPU/msg in the client` },
      {
        figure: 'ceiling: raw JetStream publish, KACHING publisher (one reply subscription; what ingest uses)',
        value: ing.rawPipelined ? `${f(ing.rawPipelined.perSecond)} msgs/s, ${ing.rawPipelined.cpuUsPerEvent} µs CPU/msg in the client` : 'not measured',
      },
      { figure: 'ceiling: raw Postgres COPY into usage_sample', value: `${f(rep.rawCopy.rowsPerSecond)} rows/s` },
      {
        figure: 'per-event stage costs, µs (microbenchmark, one thread, warm): ingest parse / validate / canonicalise / digest / verify / Avro encode; projector decode / price / COPY text (each projection)',
        value: `${stages.parse} / ${stages.validate} / ${stages.canonicalise} / ${stages.digest} / ${stages.verify} / ${stages.encode}; ${stages.decode} / ${stages.price} / ${stages.copyText}`,
      },
      ...outside.flatMap((o) => [
        { figure: `ceiling: no-op GET /healthz on the ingest server, wrk ${plan.outside.singleConnections} connections, ${topo(o.topology)}`, value: http(o.noop) },
        {
          figure: `ingest single events over HTTP (wrk, ${plan.outside.singleConnections} connections, ${f(o.bytesPerEvent)} B/event), ${topo(o.topology)}`,
          value: http(o.single), ceiling: 'no-op', ratio: o.single.eventsPerSecond / o.noop.eventsPerSecond, target: o.topology === 'all-in-one' ? '≥ 0.2×' : undefined,
        },
        {
          figure: `ingest ${plan.outside.batchSize}-event batches, each event signed (wrk, ${plan.outside.batchConnections} connections), ${topo(o.topology)}`,
          value: http(o.batch), ceiling: 'stock-client publish', ratio: stockPub ? o.batch.eventsPerSecond / stockPub : undefined, target: o.topology === 'all-in-one' ? '≥ 0.5×' : undefined,
        },
        {
          figure: `ingest ${plan.outside.batchSize}-event signed batches (one Merkle-root signature each), ${topo(o.topology)}`,
          value: http(o.signedBatch), ceiling: 'stock-client publish', ratio: stockPub ? o.signedBatch.eventsPerSecond / stockPub : undefined, target: o.topology === 'all-in-one' ? '≥ 0.8×' : undefined,
        },
        {
          figure: `ingest batch ack latency, ${o.paced?.batchSize ?? 100}-event batches offered at half the batch throughput (${f(o.paced?.targetPerSecond ?? 0)} events/s; Node client in the bench process), ${topo(o.topology)}`,
          value: o.paced ? `p50 ${o.paced.p50Ms} ms, p99 ${o.paced.p99Ms} ms` : 'not measured',
          target: 'p99 < 50 ms',
        },
        {
          figure: `ingest single events as NATS requests (64 in flight; Node client in the bench process), ${topo(o.topology)}`,
          value: o.nats ? `${f(o.nats.perSecond)} events/s, p50 ${o.nats.p50Ms} ms, p99 ${o.nats.p99Ms} ms` : 'not measured',
        },
      ] as Row[]),
      ...Object.entries(proj.projections).map(([p, r]) => ({
        figure: `projector ${p} (live consumer)`,
        value: `${f(r.eventsPerSecond)} events/s`,
        ceiling: 'raw COPY',
        ratio: r.eventsPerSecond / rep.rawCopy.rowsPerSecond,
      })),
      ...Object.entries(rep.replay).map(([p, r]) => ({
        figure: `replay ${p} (${f(rep.events)} events)`,
        value: `${f(r.eventsPerSecond)} events/s (${replayPhaseText(r.phases)})`,
        ceiling: 'raw COPY',
        ratio: r.eventsPerSecond / rep.rawCopy.rowsPerSecond,
        target: '≥ 30k/s, ≥ 0.4×',
      })),
      {
        figure: `replay raw from the archive alone (${f(archRep.events)} events, ${f(archRep.archived)} read from Parquet segments; the stream purged)`,
        value: `${f(archRep.eventsPerSecond)} events/s (${replayPhaseText(archRep.phases)}); from the stream in the same run: ${f(rep.replay.raw.eventsPerSecond)} events/s`,
        ceiling: 'raw COPY',
        ratio: archRep.eventsPerSecond / rep.rawCopy.rowsPerSecond,
        target: '≥ replay from the stream',
      },
      ...scale.map((r) => ({
        figure: `projections over ${r.partitions} partition(s) and ${r.instances} projector process(es) (${f(r.events)} events after a warm-up load, all three projections in each)`,
        value: r.error
          ? `not measured: ${r.error}`
          : `${f(r.eventsPerSecond)} events/s; CPU: ${cpuText(r.cpu, r.events)}; ${r.meanBatch?.toFixed(0)} events per batch; the projector processes at rest: ${r.idlePercent?.toFixed(1)}% of a core together`,
        target: r.instances > 1 ? 'µs/event flat as instances are added' : undefined,
      })),
      ...rollup.map((r) => ({
        figure: `event-to-rollup latency (batch send → rollup committed), ${f(r.offeredPerSecond)} events/s offered for ${plan.rollupSeconds} s in ${r.batchSize}-event batches, ${topo(r.topology)}`,
        value: `p50 ${f(r.p50Ms)} ms, p99 ${f(r.p99Ms)} ms; ingest took ${f(r.achievedPerSecond)} events/s (ack p99 ${f(r.ackP99Ms)} ms${r.retried ? `; ${f(r.retried)} events answered 503/429 and sent again` : ''}); CPU while sending: ${cpuText(r.cpu, r.events)}`,
        target: r.offeredPerSecond === 5_000 && r.topology === 'per-service' ? 'p99 < 2 s at 5k/s' : undefined,
      })),
      {
        figure: `decision latency (append → published) at ${f(dec.achievedRate)} events/s`,
        value: `p50 ${Math.round(dec.p50Ms)} ms, p99 ${Math.round(dec.p99Ms)} ms (${dec.decisions} decisions)`,
        target: 'p99 < 250 ms',
      },
      {
        figure: `archive write: ${f(archive.events)} signed events into ${archive.segments} Parquet segments (DuckDB, zstd; one process, one thread)`,
        value: `${f(archive.eventsPerSecond)} events/s, ${archive.cpuUsPerEvent} µs CPU/event; ${archive.bytesPerEvent} B/event on disk vs ${archive.jsonBytesPerEvent} B/event as JSON (${(archive.jsonBytesPerEvent / archive.bytesPerEvent).toFixed(1)}× smaller) and ${archive.storedBytesPerEvent} B stored in the stream`,
      },
    ];
    return { machine, rows, raw };
  } finally {
    for (const ns of [`bench${suffix}`, `bc${suffix}`, `bo${suffix}a`, `bo${suffix}b`, `bp${suffix}`, `be${suffix}`]) await dropStream(base.natsUrl, ns).catch(() => undefined);
    await admin.query(`drop database if exists ${dbName} with (force)`).catch(() => undefined);
    await admin.end();
  }
}

/** Signed usage events as the stream holds them (ingest facts added), written to archive segments of 10 000. */
async function benchArchive(events: number, kp: { secretKey: Uint8Array }): Promise<BenchArchiveResult> {
  const org = '00000000-0000-4000-8000-00000000000a';
  const deployments = Array.from({ length: 8 }, (_, i) => `00000000-0000-4000-8000-00000000010${i}`);
  const records: StreamRecord[] = Array.from({ length: events }, (_, i) => {
    const usage = signedUsage(deployments[i % deployments.length]!, 'bench', kp.secretKey, { correlationId: `job-${i}` });
    return { kind: 'usage', usage, ingest: { received_at: new Date().toISOString(), org_id: org, clock_skew_ms: 0, redacted_segments: [], flags: [] } };
  });
  return benchArchiveWrite({ records, segmentEvents: 10_000 });
}

export function toMarkdown(r: { machine: Record<string, string>; rows: Row[] }, mode: string): string {
  const lines = [
    `# kaching bench (${mode}) — ${new Date().toISOString()}`,
    '',
    Object.entries(r.machine).map(([k, v]) => `- ${k}: ${v}`).join('\n'),
    '',
    '| figure | value | vs ceiling | target |',
    '|---|---|---|---|',
    ...r.rows.map((x) => `| ${x.figure} | ${x.value} | ${x.ratio !== undefined ? `${x.ratio.toFixed(2)}× ${x.ceiling}` : ''} | ${x.target ?? ''} |`),
  ];
  return lines.join('\n') + '\n';
}

export async function writeResults(md: string, json: unknown): Promise<string[]> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const files = [`${RESULTS_DIR}latest.md`, `${RESULTS_DIR}latest.json`, `${RESULTS_DIR}${stamp}.md`];
  await writeFile(files[0]!, md);
  await writeFile(files[1]!, JSON.stringify(json, null, 2) + '\n');
  await writeFile(files[2]!, md);
  return files;
}

async function machineFacts(c: BaseConfig): Promise<Record<string, string>> {
  const nc = await connectNats(c.natsUrl);
  const natsVersion = nc.info?.version ?? 'unknown';
  await nc.close();
  const client = new pg.Client({ connectionString: c.databaseUrl });
  await client.connect();
  const pgVersion = (await client.query<{ v: string }>('select current_setting($$server_version$$) as v')).rows[0]?.v ?? 'unknown';
  await client.end();
  return {
    cores: String(cpus().length),
    cpu: cpus()[0]?.model ?? 'unknown',
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    'nats-server': natsVersion,
    postgres: pgVersion,
  };
}

/** Deletes a bench namespace's streams and KV bucket, so runs leave nothing behind on the NATS server. */
async function dropStream(natsUrl: string, namespace: string): Promise<void> {
  const n = names(namespace);
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    for (const s of [n.eventsStream, n.decisionsStream, `KV_${n.decisionsBucket}`]) await jsm.streams.delete(s).catch(() => undefined);
  } finally {
    await nc.close();
  }
}

function withDb(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}
