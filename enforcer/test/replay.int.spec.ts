import { readFile, rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { CommandContext } from '@kaching/contracts';
import { start as startIngest, type IngestHandle } from '@kaching/ingest';
import { archivedLanes, openStore, start as startArchiver, type ArchiverHandle } from '@kaching/archiver';
import { commands, start, type EnforcerHandle } from '@kaching/enforcer';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { waitUntil } from '../../test/support/wait.js';
import { seedDeployment, type SeededDeployment } from '../../ingest/test/support.js';
import { tableSnapshot, waitCaughtUp } from '../../projector/test/helpers.js';
import { archiverCheckpoint, archiverConfig, fleet, ingestTestConfig, postBatch, tempDir } from '../../archiver/test/support.js';

// `kaching replay enforcer` once the archiver purged the stream's head: refused (REPLAY_HISTORY_GAP, nothing reset)
// unless the archive the enforcer reads holds every purged message, or the operator accepts the loss.
let env: IsolatedEnv;
let nc: NatsConnection;
let ingest: IngestHandle;
let enforcer: EnforcerHandle;
let archiver: ArchiverHandle | null = null;
let dep: SeededDeployment;
let dir: string;
let empty: string;

const state = () => Promise.all([
  tableSnapshot(env.pool, 'enforcer_usage_daily', 'deployment_id, metric, day'),
  tableSnapshot(env.pool, 'enforcer_contribution', 'deployment_id, correlation_id'),
  tableSnapshot(env.pool, 'enforcer_deployment_state', 'deployment_id'),
]);
const lanes = async () => (await env.pool.query(`select lane, last_seq::text, retired_at from consumer_checkpoint where consumer = 'enforcer' order by lane`)).rows;
const fences = async () => (await env.pool.query(`select lane, fence::text from consumer_lease where consumer = 'enforcer' order by lane`)).rows;

/** The CLI command, reading the archive from KACHING_ARCHIVE_DIR as an operator's shell would give it. */
async function replayCli(archiveDir: string, args: CommandContext['args'] = {}) {
  const saved = process.env.KACHING_ARCHIVE_DIR;
  process.env.KACHING_ARCHIVE_DIR = archiveDir;
  try {
    return await commands.find((c) => c.name === 'replay enforcer')!.run({
      args, positionals: [], json: true, progress: () => undefined, signal: new AbortController().signal,
      config: { natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'silent' },
    });
  } finally {
    if (saved === undefined) delete process.env.KACHING_ARCHIVE_DIR;
    else process.env.KACHING_ARCHIVE_DIR = saved;
  }
}

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  dir = await tempDir('enforcer-replay-archive');
  empty = await tempDir('enforcer-replay-no-archive');
  dep = await seedDeployment(env.pool);
  ingest = await startIngest(ingestTestConfig(env));
  enforcer = await start({ natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'error', port: 0, host: '127.0.0.1', licensePublicKey: null, batchSize: 15, archiveDir: dir });
  archiver = await startArchiver(archiverConfig(env, dir, { segmentEvents: 20, segmentSeconds: 1, hotRetentionMs: 500, checkIntervalMs: 3_600_000 }));
  // 40 events archived (two segments) and purged from the stream, 20 more only in the stream
  const events = fleet(dep, 60);
  await postBatch(ingest.url, dep.token, events.slice(0, 40));
  await waitUntil(async () => (await archiverCheckpoint(env)) >= 40, 20_000, 'archived');
  await waitCaughtUp(env.pool, 40, ['enforcer'], 20_000);
  const info = async () => (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state;
  await waitUntil(async () => (await archiver!.maintain(), (await info()).messages === 0), 20_000, 'purged after the hot window');
  await archiver.close();
  archiver = null;
  await postBatch(ingest.url, dep.token, events.slice(40));
  await waitCaughtUp(env.pool, 60, ['enforcer'], 20_000);
  expect(await info()).toMatchObject({ first_seq: 41, last_seq: 60 });
}, 60_000);

afterAll(async () => {
  await archiver?.close();
  await enforcer?.close();
  await ingest?.close();
  await env?.cleanup();
  for (const d of [dir, empty]) if (d) await rm(d, { recursive: true, force: true });
});

it('without the archive the replay is refused and the live counters stay as they are', async () => {
  const before = { state: await state(), lanes: await lanes(), fences: await fences() };
  expect(JSON.parse(before.state[0]).length).toBeGreaterThan(0);
  await expect(replayCli(empty)).rejects.toMatchObject({
    code: 'REPLAY_HISTORY_GAP',
    message: expect.stringMatching(/starts at seq 41: messages 1\.\.40, which the enforcer already counts, .* holds 0 of them/),
  });
  expect({ state: await state(), lanes: await lanes(), fences: await fences() }).toEqual(before);
});

it('an archive missing a segment is refused too', async () => {
  const store = openStore(archiverConfig(env, dir));
  const [lane] = await archivedLanes(store);
  const manifest = store.localPath(`${lane}/manifest.jsonl`)!;
  const full = await readFile(manifest, 'utf8');
  const before = await state();
  // only the first segment (1..20) listed
  await writeFile(manifest, `${full.split('\n')[0]}\n`);
  try {
    await expect(replayCli(dir)).rejects.toMatchObject({ code: 'REPLAY_HISTORY_GAP', message: expect.stringMatching(/holds 20 of them/) });
  } finally {
    await writeFile(manifest, full);
  }
  expect(await state()).toEqual(before);
});

it('with the archive the replay resets; the running enforcer re-applies the archive, then the stream: the same counters', async () => {
  const before = await state();
  const r = await replayCli(dir);
  expect(r.data).toMatchObject({ lanes: expect.any(Number), fromArchive: true });
  await waitCaughtUp(env.pool, 60, ['enforcer'], 20_000);
  expect(await state()).toEqual(before);
});

it('--accept-history-loss resets without the archive check', async () => {
  const before = await state();
  const fenced = await fences();
  const r = await replayCli(empty, { 'accept-history-loss': true });
  expect(r.data).toMatchObject({ fromArchive: false });
  // reset: every lease fenced on
  expect((await fences()).map((f) => Number(f.fence))).toEqual(fenced.map((f) => Number(f.fence) + 1));
  // this enforcer still reads its own archive (archiveDir): the counters come back whole
  await waitCaughtUp(env.pool, 60, ['enforcer'], 20_000);
  expect(await state()).toEqual(before);
});
