import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { start as startIngest, type IngestHandle } from '@kaching/ingest';
import { loadConfig as projectorConfig, maintainPartitions, start as startProjector, type ProjectorHandle } from '@kaching/projector';
import { start, type ArchiverHandle } from '@kaching/archiver';
import { archivedThrough } from '@kaching/contracts';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { waitUntil } from '../../test/support/wait.js';
import { seedDeployment, type SeededDeployment } from '../../ingest/test/support.js';
import { archiverCheckpoint, archiverConfig, fleet, ingestTestConfig, postBatch, tempDir } from './support.js';

let env: IsolatedEnv;
let nc: NatsConnection;
let ingest: IngestHandle;
let projector: ProjectorHandle;
let archiver: ArchiverHandle | null = null;
let dep: SeededDeployment;
let dir: string;

const streamState = async () => (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state;
const rows = async () => Number((await env.pool.query('select count(*) as c from usage_sample')).rows[0].c);
const readyz = async () => (await (await fetch(`${projector.url}/readyz`)).json()) as { status: string; archive: { lag_events: number; alerting: boolean } | null };
/** usage_sample partitions holding rows (normally today's; yesterday's too just after midnight). */
const partitionsWithRows = async () =>
  (await env.pool.query<{ p: string }>(`select distinct 'usage_sample_' || to_char(started_at at time zone 'UTC', 'YYYYMMDD') as p from usage_sample order by 1`)).rows.map((r) => r.p);
// three days from now with one day of retention: every partition holding these rows is past retention
const future = { retentionDays: 1, partitionsAhead: 0, now: Date.now() + 3 * 86_400_000 };

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  dir = await tempDir('archive-hot');
  dep = await seedDeployment(env.pool);
  ingest = await startIngest(ingestTestConfig(env));
  projector = await startProjector({ ...projectorConfig(env.env), port: 0, host: '127.0.0.1', projections: ['raw'], logLevel: 'warn', archiveCheckMs: 200, archiveLagAlertEvents: 30, archiveLagAlertAfterMs: 2500 });
});

afterAll(async () => {
  await archiver?.close();
  await projector?.close();
  await ingest?.close();
  await env?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('archived events leave the stream after the hot window; with the archiver stopped nothing is purged or dropped and the lag alert fires', async () => {
  const events = fleet(dep, 100);
  archiver = await start(archiverConfig(env, dir, { segmentEvents: 20, segmentSeconds: 1, hotRetentionMs: 1000, lagAlertEvents: 30, lagAlertAfterMs: 2500, checkIntervalMs: 3_600_000 }));
  await postBatch(ingest.url, dep.token, events.slice(0, 60));
  await waitUntil(async () => (await archiverCheckpoint(env)) >= 60, 20_000, 'archived');
  expect((await streamState()).messages).toBe(60); // archived, still inside the hot window
  await waitUntil(async () => (await archiver!.maintain(), (await streamState()).messages === 0), 20_000, 'purged after the hot window');
  expect((await streamState()).first_seq).toBe(61);
  expect(await archiver.metrics.purged.get().then((m) => m.values[0]?.value)).toBe(60);

  await archiver.close();
  archiver = null;
  await postBatch(ingest.url, dep.token, events.slice(60));
  await waitUntil(async () => (await rows()) === 100, 20_000, 'raw projection caught up');
  // the projector sees the archive fall behind: metric, readyz degraded, one alert
  await waitUntil(async () => (await readyz()).status === 'degraded', 20_000, 'readyz degraded');
  expect((await readyz()).archive).toMatchObject({ lag_events: 40, alerting: true });
  expect(await (await fetch(`${projector.url}/metrics`)).text()).toMatch(/kaching_archive_lag_events 40/);
  const alerts = await env.pool.query('select lag_events, threshold, cleared_at from archive_alert');
  expect(alerts.rows).toEqual([{ lag_events: '40', threshold: '30', cleared_at: null }]);
  // nothing unarchived leaves: the stream keeps the 40, the raw partitions stay past their retention
  expect((await streamState()).messages).toBe(40);
  const parts = await partitionsWithRows();
  const kept = await maintainPartitions(env.pool, future);
  expect(kept.dropped.filter((p) => parts.includes(p))).toEqual([]);
  expect(kept.kept).toEqual(expect.arrayContaining(parts));
  expect(await rows()).toBe(100);

  // the archiver back: it catches up, the alert clears, and the raw partitions may go
  archiver = await start(archiverConfig(env, dir, { segmentEvents: 20, segmentSeconds: 1, hotRetentionMs: 3_600_000, lagAlertEvents: 30, lagAlertAfterMs: 2500, checkIntervalMs: 3_600_000 }));
  await waitUntil(async () => (await archiverCheckpoint(env)) >= 100, 20_000, 'archived again');
  await waitUntil(async () => (await readyz()).status === 'ok', 20_000, 'readyz ok again');
  await waitUntil(async () => (await archivedThrough(env.pool)) >= 100, 20_000, 'coverage measured');
  expect((await env.pool.query('select count(*) as c from archive_alert where cleared_at is not null')).rows[0].c).toBe('1');
  expect((await streamState()).messages).toBe(40); // inside the (now long) hot window
  const dropped = await maintainPartitions(env.pool, future);
  expect(dropped.dropped).toEqual(expect.arrayContaining(parts));
});
