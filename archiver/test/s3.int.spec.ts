import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import S3rver from 's3rver';
import { start as startIngest, type IngestHandle } from '@kaching/ingest';
import { ArchiveHistory, archiveStatus, ParquetCodec, S3Store, start, verifyArchive, type ArchiverHandle } from '@kaching/archiver';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { waitUntil } from '../../test/support/wait.js';
import { seedDeployment, type SeededDeployment } from '../../ingest/test/support.js';
import { archiverCheckpoint, archiverConfig, fleet, ingestTestConfig, postBatch, tempDir } from './support.js';

let env: IsolatedEnv;
let ingest: IngestHandle;
let archiver: ArchiverHandle;
let dep: SeededDeployment;
let s3: S3rver;
let s3dir: string;
let store: S3Store;
let unknownKey: S3Store;
const codec = new ParquetCodec();

beforeAll(async () => {
  env = await isolatedEnv();
  s3dir = await tempDir('s3rver');
  s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: s3dir, configureBuckets: [{ name: 'kaching-archive' }] });
  const addr = await s3.run();
  const settings = { bucket: 'kaching-archive', prefix: 'prod/events', endpoint: `http://127.0.0.1:${addr.port}`, region: 'us-east-1', accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  // the archiver adds the namespace to the prefix (one root per installation)
  store = new S3Store({ ...settings, prefix: `prod/events/${env.namespace}` });
  unknownKey = new S3Store({ ...settings, accessKeyId: 'NOBODY' });
  dep = await seedDeployment(env.pool);
  ingest = await startIngest(ingestTestConfig(env));
  await postBatch(ingest.url, dep.token, fleet(dep, 70));
  archiver = await start(archiverConfig(env, '/nonexistent', { s3: settings, segmentEvents: 30, segmentSeconds: 1 }));
});

afterAll(async () => {
  await archiver?.close();
  await ingest?.close();
  await codec.close();
  await s3?.close();
  await env?.cleanup();
  if (s3dir) await rm(s3dir, { recursive: true, force: true });
});

it('archives to S3-compatible object storage (one PUT per object) and verifies from there', async () => {
  await waitUntil(async () => (await archiverCheckpoint(env)) >= 70, 20_000, 'archived to S3');
  expect(await store.list('')).toEqual(['1.0/00000000000000000001-1.parquet', '1.0/00000000000000000031-1.parquet', '1.0/00000000000000000061-1.parquet', '1.0/manifest.jsonl']);
  const status = await archiveStatus({ store, nc: null, pool: env.pool, names: env.names });
  expect(status).toMatchObject({ location: `s3://kaching-archive/prod/events/${env.namespace}`, segments: 3, events: 70, first_seq: 1, last_seq: 70 });
  expect(await verifyArchive({ store, codec, pool: env.pool, deep: true })).toMatchObject({ ok: true, events_verified: 70 });
  // s3rver checks the access key id (not the V4 signature itself, which it does not implement)
  await expect(unknownKey.list('')).rejects.toThrow(/403/);

  // the history reads the segments back through scratch copies: in order, each once, filters and jumps included
  const history = new ArchiveHistory(store);
  try {
    const seqs: number[] = [];
    for await (const m of history.messages({ fromSeq: 1 })) seqs.push(m.seq);
    expect(seqs).toEqual(Array.from({ length: 70 }, (_, i) => i + 1));
    const c = await history.recordCursor({ fromSeq: 5, beforeSeq: 65 });
    expect((await c.next(5))?.seq).toBe(5);
    expect((await c.next(40))?.seq).toBe(40);
    expect(await c.next(65)).toBeNull();
    expect(await history.get(33)).toMatchObject({ seq: 33, subject: expect.stringContaining(dep.deploymentId) });
    expect(await history.count(1, 71)).toBe(70);
    const one = [];
    for await (const m of history.messages({ deploymentId: dep.deploymentId, correlationId: 'job-3' })) one.push(m.seq);
    expect(one).toHaveLength(1);
  } finally {
    await history.close();
  }

  // a segment replaced in the bucket is caught
  const key = '1.0/00000000000000000031-1.parquet';
  const bytes = (await store.get(key))!;
  bytes[100] = bytes[100]! ^ 0xff;
  await store.putBytes(key, bytes);
  const r = await verifyArchive({ store, codec, pool: env.pool, deep: true });
  expect(r.ok).toBe(false);
  expect(r.first_break).toMatchObject({ lane: '1.0', index: 1, file: key });
  expect(r.first_break!.problem).toMatch(/was altered: SHA-256/);
});
