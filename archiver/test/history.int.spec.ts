import { rename, rm } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { auditSelection, auditVerify, commands as ingestCommands, start as startIngest, type IngestHandle } from '@kaching/ingest';
import { commands as projectorCommands, loadConfig as projectorConfig, replay, start as startProjector, type ProjectorHandle } from '@kaching/projector';
import type { Command, CommandContext } from '@kaching/contracts';
import { resetEnforcerState, start as startEnforcer, type EnforcerHandle } from '@kaching/enforcer';
import { ArchiveHistory, archivedLanes, openStore, start, type ArchiverHandle } from '@kaching/archiver';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { waitUntil } from '../../test/support/wait.js';
import { seedDeployment, type SeededDeployment } from '../../ingest/test/support.js';
import { tableSnapshot, waitCaughtUp } from '../../projector/test/helpers.js';
import { archiverCheckpoint, archiverConfig, fleet, ingestTestConfig, postBatch, tempDir } from './support.js';

const TABLES: Record<'raw' | 'rollups' | 'concurrency', [string, string][]> = {
  raw: [['job', 'deployment_id, correlation_id'], ['usage_sample', 'deployment_id, correlation_id']],
  rollups: [
    ['usage_rollup_hourly', 'deployment_id, bucket_start, agent_type'],
    ['usage_rollup_daily', 'deployment_id, day'],
    ['usage_rollup_model_daily', 'deployment_id, day, provider, model_name, agent_type'],
    ['projector_rollup_job', 'deployment_id, correlation_id'],
    ['projector_rollup_member', 'deployment_id, day, kind, member_id'],
  ],
  concurrency: [['concurrency_minute', 'deployment_id, minute'], ['projector_concurrency_job', 'deployment_id, correlation_id']],
};

let env: IsolatedEnv;
let nc: NatsConnection;
let ingest: IngestHandle;
let projector: ProjectorHandle;
let enforcer: EnforcerHandle;
let archiver: ArchiverHandle | null = null;
let dep: SeededDeployment;
let dir: string;
let history: ArchiveHistory;
const t0 = Date.now() - 1000;

const streamState = async () => (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state;
const snapshot = async (p: keyof typeof TABLES) => Promise.all(TABLES[p].map(([t, o]) => tableSnapshot(env.pool, t, o)));

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  dir = await tempDir('archive-history');
  dep = await seedDeployment(env.pool);
  ingest = await startIngest(ingestTestConfig(env));
  projector = await startProjector({ ...projectorConfig(env.env), port: 0, host: '127.0.0.1', logLevel: 'warn', archiveCheckMs: 0 });
  enforcer = await startEnforcer({ natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'error', port: 0, host: '127.0.0.1', licensePublicKey: null, batchSize: 30, archiveDir: dir });
  const cfg = archiverConfig(env, dir, { segmentEvents: 20, segmentSeconds: 1, hotRetentionMs: 500, checkIntervalMs: 3_600_000 });
  archiver = await start(cfg);
  history = new ArchiveHistory(openStore(cfg));
  // 60 events archived and purged from the stream (hot window of half a second) ...
  const events = fleet(dep, 100);
  await postBatch(ingest.url, dep.token, events.slice(0, 60));
  await waitUntil(async () => (await archiverCheckpoint(env)) >= 60, 20_000, 'archived');
  await waitUntil(async () => (await archiver!.maintain(), (await streamState()).messages === 0), 20_000, 'purged after the hot window');
  // ... and 40 more, archived but still in the stream (no purge runs: the maintenance tick is an hour)
  await postBatch(ingest.url, dep.token, events.slice(60));
  await waitUntil(async () => (await archiverCheckpoint(env)) >= 100, 20_000, 'archived again');
  await archiver.close();
  archiver = null;
  await waitCaughtUp(env.pool, 100, ['raw', 'rollups', 'concurrency', 'enforcer'], 20_000);
  // holes inside the stream, as when one lane is purged further than another: only the archive has 70 and 85
  const jsm = await jetstreamManager(nc);
  for (const seq of [70, 85]) await jsm.streams.deleteMessage(env.names.eventsStream, seq, false);
}, 60_000);

afterAll(async () => {
  await history?.close();
  await archiver?.close();
  await projector?.close();
  await enforcer?.close();
  await ingest?.close();
  await env?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const base = () => ({ databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'warn' as const });

it('the stream starts after the purged history and has holes; the archive holds all of it', async () => {
  expect(await streamState()).toMatchObject({ first_seq: 61, last_seq: 100, messages: 38 });
  expect(await history.count(1, 61)).toBe(60);
  const seqs: number[] = [];
  for await (const m of history.messages({ fromSeq: 1 })) seqs.push(m.seq);
  expect(seqs).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
});

for (const projection of ['raw', 'rollups', 'concurrency'] as const) {
  it(`replay ${projection} from the archive and the stream yields the live tables`, async () => {
    const before = await snapshot(projection);
    // without the archive, the full replay still refuses to drop the purged history
    await expect(replay(base(), projection, { history: null })).rejects.toMatchObject({ code: 'REPLAY_HISTORY_GAP' });
    const r = await replay(base(), projection, { history });
    expect(r).toMatchObject({ events: 100, archived: 62, lastSeq: 100 });
    expect(await snapshot(projection)).toEqual(before);
  });
}

it('a replay refuses when the archive has a gap', async () => {
  const lanes = await archivedLanes(history.store);
  const manifest = history.store.localPath!(`${lanes[0]}/manifest.jsonl`)!;
  await rename(manifest, `${manifest}.away`);
  const holed = new ArchiveHistory(history.store);
  try {
    await expect(replay(base(), 'raw', { history: holed })).rejects.toMatchObject({ code: 'REPLAY_HISTORY_GAP' });
  } finally {
    await holed.close();
    await rename(`${manifest}.away`, manifest);
  }
});

it('audit verify reads a purged event from the archive; a range audit counts every event once', async () => {
  expect(await auditVerify(nc, env.pool, env.names, 1)).toMatchObject({ verdict: 'not_found', failed: true });
  expect(await auditVerify(nc, env.pool, env.names, 1, {}, history)).toMatchObject({ seq: 1, verdict: 'verified', failed: false });
  expect(await auditVerify(nc, env.pool, env.names, 85, {}, history)).toMatchObject({ seq: 85, verdict: 'verified' });
  const range = await auditSelection(nc, env.pool, env.names, { deploymentId: dep.deploymentId, since: new Date(t0), until: new Date(Date.now() + 60_000) }, history);
  expect(range).toMatchObject({ scanned: 100, verified: 100, failed: 0 });
  const one = await auditSelection(nc, env.pool, env.names, { deploymentId: dep.deploymentId, correlationId: 'job-3' }, history);
  expect(one).toMatchObject({ scanned: 1, verified: 1 });
  expect(one.results[0]).toMatchObject({ correlation_id: 'job-3', verdict: 'verified' });
});

it('replay enforcer: after the reset, the lanes apply the archived history, then the stream; the counters come back the same', async () => {
  const ledger = () => Promise.all([
    tableSnapshot(env.pool, 'enforcer_usage_daily', 'deployment_id, metric, day'),
    tableSnapshot(env.pool, 'enforcer_contribution', 'deployment_id, correlation_id'),
  ]);
  const before = await ledger();
  expect(JSON.parse(before[0]).length).toBeGreaterThan(0);
  await resetEnforcerState(env.pool);
  await waitCaughtUp(env.pool, 100, ['enforcer'], 20_000);
  expect(await ledger()).toEqual(before);
});

it('the CLI reads the archive the archiver writes (KACHING_ARCHIVE_DIR): audit verify --seq of a purged event, replay', async () => {
  const ctx = (args: CommandContext['args'], positionals: string[] = []): CommandContext => ({
    args, positionals, json: true, progress: () => undefined, signal: new AbortController().signal, config: base(),
  });
  const cmd = (list: Command[], name: string) => list.find((c) => c.name === name)!;
  const saved = process.env.KACHING_ARCHIVE_DIR;
  process.env.KACHING_ARCHIVE_DIR = dir;
  try {
    const one = await cmd(ingestCommands, 'audit verify').run(ctx({ seq: '2' }));
    expect(one).toMatchObject({ exitCode: 0, data: { seq: 2, verdict: 'verified' } });
    const range = await cmd(ingestCommands, 'audit verify').run(ctx({ deployment: dep.deploymentId, since: new Date(t0).toISOString() }));
    expect(range).toMatchObject({ exitCode: 0, data: { scanned: 100, verified: 100 } });
    const r = await cmd(projectorCommands, 'replay').run(ctx({}, ['raw']));
    expect(r.text).toMatch(/replayed raw: 100 events \(62 from the archive\) up to seq 100/);
  } finally {
    if (saved === undefined) delete process.env.KACHING_ARCHIVE_DIR;
    else process.env.KACHING_ARCHIVE_DIR = saved;
  }
});

it('replay --since starts at the first message appended at or after T, in the archive or the stream', async () => {
  const at = (await history.get(30))!.streamTime;
  // the archive keeps append times in milliseconds (as --since has them): the first of that millisecond
  let first = 0;
  for await (const m of history.messages()) if (!first && m.streamTime >= at) first = m.seq;
  expect(first).toBeLessThanOrEqual(30);
  const r = await replay(base(), 'raw', { history, since: new Date(at).toISOString() });
  // first..60 archived before the stream, 70 and 85 from its holes
  expect(r).toMatchObject({ events: 101 - first, archived: 61 - first + 2, lastSeq: 100 });
  expect(Number((await env.pool.query('select min(stream_seq) as s from usage_sample')).rows[0].s)).toBe(first);
});
