import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats, names, type BaseConfig } from '@kaching/contracts';
import { ArchiveHistory, loadConfig as archiverConfig, start as startArchiver } from '@kaching/archiver';
import { replay } from '@kaching/projector';

export interface ArchiveReplayFigure {
  events: number;
  archived: number;
  /** Archiving the stream with the archiver service (in this process), for context. */
  archiveSeconds: number;
  eventsPerSecond: number;
  phases: { load: number; build: number; catchUp: number; swap: number };
}

/**
 * Replay from the archive: the archiver archives an already filled stream, the stream is purged, and a replay of
 * raw reads every event back from the Parquet segments (the projector's history feed) instead of the stream.
 */
export async function benchArchiveReplay(config: BaseConfig, progress: (l: string) => void): Promise<ArchiveReplayFigure> {
  const dir = await mkdtemp(join(tmpdir(), 'kaching-bench-archive-replay-'));
  const env = { ...process.env, KACHING_ARCHIVE_DIR: dir, KACHING_ARCHIVE_SEGMENT_SECONDS: '1' };
  const n = names(config.namespace);
  const nc = await connectNats(config.natsUrl);
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 1, options: `-c search_path=${n.dbSchema},public` });
  try {
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info(n.eventsStream)).state.last_seq;
    progress(`archive replay: archiving ${last} events`);
    const t0 = performance.now();
    const archiver = await startArchiver({ ...archiverConfig(env), ...config, port: 0, host: '127.0.0.1' });
    try {
      for (;;) {
        const r = await pool.query<{ s: string | null }>(`select max(last_seq) as s from consumer_checkpoint where consumer = 'archiver'`);
        if (Number(r.rows[0]?.s ?? 0) >= last) break;
        await new Promise((res) => setTimeout(res, 200));
      }
    } finally {
      await archiver.close();
    }
    const archiveSeconds = (performance.now() - t0) / 1000;
    await jsm.streams.purge(n.eventsStream);
    progress('archive replay: raw from the archive alone (the stream purged)');
    const history = ArchiveHistory.open(config.namespace, env);
    try {
      const r = await replay(config, 'raw', { history, batchSize: 2000 });
      return { events: r.events, archived: r.archived, archiveSeconds, eventsPerSecond: r.eventsPerSecond, phases: r.phases };
    } finally {
      await history.close().catch(() => undefined);
    }
  } finally {
    await pool.end();
    await nc.close();
    await rm(dir, { recursive: true, force: true });
  }
}
