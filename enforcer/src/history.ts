import { ArchiveHistory, type ArchivedMessage } from '@kaching/archiver';
import type { Lane, Logger, Names } from '@kaching/contracts';

/** The archive (KACHING_ARCHIVE_DIR / KACHING_ARCHIVE_URL as the archiver has them; archiveDir overrides the directory). */
export function openHistory(namespace: string, archiveDir: string | undefined, env: NodeJS.ProcessEnv = process.env): ArchiveHistory {
  return ArchiveHistory.open(namespace, archiveDir ? { ...env, KACHING_ARCHIVE_DIR: archiveDir } : env);
}

/** Whether a NATS subject matches a subject filter ('*' one token, '>' the rest). */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '>') return s.length > i;
    if (i >= s.length || (f[i] !== '*' && f[i] !== s[i])) return false;
  }
  return f.length === s.length;
}

/**
 * Where a lane resumes when its checkpoint lies before the stream's first message (after `kaching replay
 * enforcer`, once the archiver purged history): the lane's archived messages after the checkpoint are applied
 * first, batch by batch, through `apply` (the engine's normal batch path, fenced by the lane's lease). The archive
 * holds a lane's messages without a gap up to its last segment, and also those purged inside the stream's range
 * (lanes are purged separately), so the runner continues from the stream after the last one applied.
 */
export async function catchUpFromArchive(o: {
  names: Names;
  history: ArchiveHistory;
  lane: Lane;
  checkpoint: number;
  streamFirstSeq: number;
  batchSize: number;
  log: Logger;
  apply(batch: ArchivedMessage[]): Promise<number>;
}): Promise<number> {
  if (o.checkpoint >= o.streamFirstSeq - 1 || o.checkpoint >= (await o.history.lastSeq())) return o.checkpoint;
  const filter = o.names.laneFilter(o.lane);
  let position = o.checkpoint;
  let batch: ArchivedMessage[] = [];
  let applied = 0;
  const flush = async () => {
    if (!batch.length) return;
    position = Math.max(position, await o.apply(batch));
    applied += batch.length;
    batch = [];
  };
  for await (const m of o.history.messages({ fromSeq: o.checkpoint + 1 })) {
    if (!subjectMatches(filter, m.subject)) continue;
    batch.push(m);
    if (batch.length >= o.batchSize) await flush();
  }
  await flush();
  if (applied) o.log.info({ lane: o.lane.id, applied, position }, 'lane history applied from the archive');
  return position;
}
