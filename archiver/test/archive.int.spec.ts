import { spawnSync } from 'node:child_process';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { start as startIngest, type IngestHandle } from '@kaching/ingest';
import { loadConfig as projectorConfig, start as startProjector, type ProjectorHandle } from '@kaching/projector';
import { archiveStatus, commands, LocalStore, ParquetCodec, start, verifyArchive, type ArchiverHandle } from '@kaching/archiver';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { seedDeployment, type SeededDeployment } from '../../ingest/test/support.js';
import { waitFor } from '../../projector/test/helpers.js';
import { requireTool } from '../../test/support/tools.js';
import { archiverCheckpoint, archiverConfig, duck, fleet, ingestTestConfig, postBatch, tempDir } from './support.js';

let env: IsolatedEnv;
let nc: NatsConnection;
let ingest: IngestHandle;
let projector: ProjectorHandle;
let archiver: ArchiverHandle;
let dep: SeededDeployment;
let dir: string;
let lastSeq = 0;
const N = 240;

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  dir = await tempDir('archive');
  dep = await seedDeployment(env.pool);
  ingest = await startIngest(ingestTestConfig(env));
  projector = await startProjector({ ...projectorConfig(env.env), port: 0, host: '127.0.0.1', projections: ['raw'], logLevel: 'warn' });
  const events = fleet(dep, N);
  for (let i = 0; i < N; i += 60) await postBatch(ingest.url, dep.token, events.slice(i, i + 60));
  lastSeq = Number((await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state.last_seq);
  expect(lastSeq).toBe(N);
  // started after the appends, so the segment boundaries do not depend on how fast they came
  archiver = await start(archiverConfig(env, dir, { segmentEvents: 50, segmentSeconds: 1 }));
  // the last, partial segment closes on its timer (KACHING_ARCHIVE_SEGMENT_SECONDS)
  await waitFor(async () => (await archiverCheckpoint(env)) >= lastSeq, 20_000, 'archiver caught up');
  await waitFor(async () => Number((await env.pool.query('select count(*) as c from usage_sample')).rows[0].c) >= N, 20_000, 'raw projection caught up');
});

afterAll(async () => {
  await archiver?.close();
  await projector?.close();
  await ingest?.close();
  await env?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const glob = () => `read_parquet('${dir}/${env.namespace}/*/*.parquet')`;

describe('archiver', () => {
  it('archives every signed event; DuckDB sums over the segments equal the raw samples', async () => {
    const [row] = await duck(`select count(*), count(distinct seq), min(seq), max(seq), sum(cpu_seconds), sum(tokens_in), sum(context_bytes_read), count(distinct correlation_id), bool_and(signature is not null and key_id = '${dep.keyId}') from ${glob()}`);
    const raw = (await env.pool.query(`select count(*) as n, sum(cpu_seconds)::float8 as cpu, sum(model_tokens_in)::bigint as tin, sum(context_bytes_read)::bigint as cbr from usage_sample`)).rows[0];
    expect(row!.slice(0, 4).map(Number)).toEqual([N, N, 1, N]);
    expect(Number(raw.n)).toBe(N);
    expect(Number(row![4])).toBeCloseTo(raw.cpu, 6);
    expect(Number(row![5])).toBe(Number(raw.tin));
    expect(Number(row![6])).toBe(Number(raw.cbr));
    expect(Number(row![7])).toBe(N);
    expect(row![8]).toBe(true);
    // the stored bytes are the stream's bytes exactly
    const sm = await (await jetstreamManager(nc)).streams.getMessage(env.names.eventsStream, { seq: 7 });
    const [blob] = await duck(`select record, received_at is not null, schema_fingerprint from ${glob()} where seq = 7`);
    expect(Buffer.from((blob![0] as { bytes: Uint8Array }).bytes).equals(Buffer.from(sm!.data))).toBe(true);
    expect(blob![1]).toBe(true);
    expect(blob![2]).toBe(sm!.header?.get('Kaching-Schema'));
  });

  it('segments close by count and by time; status reports them and no lag', async () => {
    const s = await archiveStatus({ store: new LocalStore(join(dir, env.namespace)), nc, pool: env.pool, names: env.names });
    expect(s.segments).toBe(5); // 4 full segments of 50, one of 40 closed by its timer
    expect(s).toMatchObject({ events: N, first_seq: 1, last_seq: N, lag_events: 0, archived_through: N, stream_last_seq: N });
    expect(s.bytes).toBeGreaterThan(0);
    expect(Date.parse(s.oldest_event_at!)).toBeLessThanOrEqual(Date.now());
    const m = await (await fetch(`${archiver.url}/metrics`)).text();
    expect(m).toMatch(/kaching_archive_segments_total 5/);
    const lint = spawnSync(requireTool('promtool', 'prometheus'), ['check', 'metrics'], { input: m, encoding: 'utf8' });
    expect({ status: lint.status, problems: `${lint.stdout}${lint.stderr}`.trim() }).toEqual({ status: 0, problems: '' });
    expect(await (await fetch(`${archiver.url}/readyz`)).json()).toMatchObject({ ready: true, status: 'ok' });
  });

  it('archive verify --deep re-verifies every signature', async () => {
    const codec = new ParquetCodec();
    try {
      const r = await verifyArchive({ store: new LocalStore(join(dir, env.namespace)), codec, pool: env.pool, deep: true });
      expect(r).toMatchObject({ ok: true, first_break: null, events_verified: N, events_unverifiable: 0 });
    } finally {
      await codec.close();
    }
  });

  describe('tampering is caught by `archive verify` (exit 1, naming the break)', () => {
    const verify = async (archiveDir: string, deep: boolean) => {
      const cmd = commands.find((c) => c.name === 'archive verify')!;
      const saved = process.env.KACHING_ARCHIVE_DIR;
      process.env.KACHING_ARCHIVE_DIR = archiveDir;
      try {
        return await cmd.run({ args: { deep }, positionals: [], config: { ...env.env, natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'warn' }, json: true, progress: () => undefined, signal: new AbortController().signal });
      } finally {
        process.env.KACHING_ARCHIVE_DIR = saved;
      }
    };
    const copy = async () => {
      const c = await tempDir('tampered');
      await cp(dir, c, { recursive: true });
      return c;
    };
    const lane = () => join(env.namespace, '1.0');

    it('clean copy: exit 0', async () => {
      const c = await copy();
      expect((await verify(c, false)).exitCode).toBe(0);
      await rm(c, { recursive: true });
    });

    it('a flipped byte', async () => {
      const c = await copy();
      const f = join(c, lane(), '00000000000000000101-1.parquet');
      const b = await readFile(f);
      const at = Math.floor(b.length / 2);
      b[at] = b[at]! ^ 0x01;
      await writeFile(f, b);
      const r = await verify(c, true);
      expect(r.exitCode).toBe(1);
      expect(r.text).toMatch(/entry 2 \(1\.0\/00000000000000000101-1\.parquet\): segment .* was altered: SHA-256/);
      await rm(c, { recursive: true });
    });

    it('a deleted segment', async () => {
      const c = await copy();
      await rm(join(c, lane(), '00000000000000000151-1.parquet'));
      const r = await verify(c, false);
      expect(r.exitCode).toBe(1);
      expect(r.text).toMatch(/entry 3 .*segment 1\.0\/00000000000000000151-1\.parquet \(sequences 151\.\.200\) is missing/);
      await rm(c, { recursive: true });
    });

    it('a reordered manifest', async () => {
      const c = await copy();
      const m = join(c, lane(), 'manifest.jsonl');
      const lines = (await readFile(m, 'utf8')).trim().split('\n');
      [lines[1], lines[2]] = [lines[2]!, lines[1]!];
      await writeFile(m, lines.join('\n') + '\n');
      const r = await verify(c, false);
      expect(r.exitCode).toBe(1);
      expect(r.text).toMatch(/BROKEN at lane 1\.0, entry 1 .*reordered/);
      await rm(c, { recursive: true });
    });

    it('a truncated manifest (the head recorded in Postgres is gone)', async () => {
      const c = await copy();
      const m = join(c, lane(), 'manifest.jsonl');
      const lines = (await readFile(m, 'utf8')).trim().split('\n');
      await writeFile(m, lines.slice(0, -1).join('\n') + '\n');
      const r = await verify(c, false);
      expect(r.exitCode).toBe(1);
      expect(r.text).toMatch(/does not hold the head the archiver recorded \(segment ending at 240/);
      await rm(c, { recursive: true });
    });
  });

  it('a segment published but never listed (a crash in between, a deposed owner) is reported, not a break, and removed when its lane starts again', async () => {
    const laneDir = join(dir, env.namespace, '1.0');
    const orphan = join(laneDir, '00000000000000000241-7.parquet');
    await writeFile(orphan, 'not listed');
    const codec = new ParquetCodec();
    try {
      const r = await verifyArchive({ store: new LocalStore(join(dir, env.namespace)), codec, pool: env.pool, deep: false });
      expect(r).toMatchObject({ ok: true, unlisted: ['1.0/00000000000000000241-7.parquet'] });
      await archiver.close();
      archiver = await start(archiverConfig(env, dir));
      await waitFor(async () => !(await readFile(orphan).then(() => true, () => false)), 20_000, 'orphan removed');
      expect((await verifyArchive({ store: new LocalStore(join(dir, env.namespace)), codec, pool: env.pool, deep: false })).unlisted).toEqual([]);
    } finally {
      await codec.close();
    }
  });
});
