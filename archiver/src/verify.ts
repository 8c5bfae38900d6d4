import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type pg from 'pg';
import { decodeStreamRecord, fetchAgentKey, verifyStoredRecord, type AgentKey } from '@kaching/contracts';
import { archivedLanes, checkChain, isSegmentOf, readManifest, type ChainBreak, type ManifestEntry } from './manifest.js';
import { removeQuietly, type ParquetCodec } from './segment.js';
import type { ArchiveStore } from './store.js';

export interface LaneSummary {
  lane: string;
  segments: number;
  events: number;
  bytes: number;
  first_seq: number | null;
  last_seq: number | null;
  oldest_received_at: string | null;
  last_archived_at: string | null;
}

export interface VerifyReport {
  ok: boolean;
  deep: boolean;
  location: string;
  lanes: LaneSummary[];
  /** The first break found (lanes in order, entries in order), or null. */
  first_break: ChainBreak | null;
  breaks: ChainBreak[];
  /** Segment files no manifest lists (left by a crash or a deposed owner; removed at the lane's next start). Not a break. */
  unlisted: string[];
  /** --deep: events whose signature was re-verified, and those that cannot be (redacted, unsigned). */
  events_verified: number;
  events_unverifiable: number;
}

export function summarize(lane: string, entries: ManifestEntry[]): LaneSummary {
  return {
    lane,
    segments: entries.length,
    events: entries.reduce((a, e) => a + e.count, 0),
    bytes: entries.reduce((a, e) => a + e.bytes, 0),
    first_seq: entries[0]?.first_seq ?? null,
    last_seq: entries.at(-1)?.last_seq ?? null,
    oldest_received_at: entries.map((e) => e.oldest_received_at).filter((x): x is string => !!x).sort()[0] ?? null,
    last_archived_at: entries.at(-1)?.archived_at ?? null,
  };
}

/**
 * Recomputes every lane's hash chain and checks each listed segment is there with its size; with deep,
 * re-hashes each file, reads it back (sequences as listed) and re-verifies every event signature with
 * the key valid when it was signed (contracts' verifyStoredRecord, as `kaching audit verify` does).
 * With a pool, each lane's chain must contain the head the archiver recorded in Postgres.
 */
export async function verifyArchive(o: { store: ArchiveStore; codec: ParquetCodec; pool?: pg.Pool; deep: boolean }): Promise<VerifyReport> {
  const { store, codec, pool, deep } = o;
  const breaks: ChainBreak[] = [];
  const lanes: LaneSummary[] = [];
  let verified = 0;
  let unverifiable = 0;
  const keys = new Map<string, Promise<AgentKey | null>>();
  const lookup = (d: string, k: string) => {
    const id = `${d}/${k}`;
    if (!keys.has(id)) keys.set(id, fetchAgentKey(pool!, d, k));
    return keys.get(id)!;
  };
  const heads = new Map<string, { last_seq: string; entry_hash: string }>();
  if (pool) for (const h of (await pool.query<{ lane: string; last_seq: string; entry_hash: string }>('select lane, last_seq, entry_hash from archive_head')).rows) heads.set(h.lane, h);
  const names = [...new Set([...(await archivedLanes(store)), ...heads.keys()])].sort();
  const unlisted: string[] = [];
  for (const lane of names) {
    const { entries, garbage } = await readManifest(store, lane);
    const listed = new Set(entries.map((e) => e.file));
    for (const k of await store.list(`${lane}/`)) if (k.endsWith('.parquet') && !listed.has(k)) unlisted.push(k);
    lanes.push(summarize(lane, entries));
    const laneBreak = (b: Omit<ChainBreak, 'lane'>) => breaks.push({ lane, ...b });
    if (garbage.length) {
      laneBreak({ index: -1, problem: `manifest line ${garbage[0]} is not an entry` });
      continue;
    }
    const chain = checkChain(lane, entries);
    if (chain) {
      breaks.push(chain);
      continue;
    }
    const head = heads.get(lane);
    if (head && !entries.some((e) => e.hash === head.entry_hash && e.last_seq === Number(head.last_seq))) {
      laneBreak({ index: entries.length, problem: `the manifest does not hold the head the archiver recorded (segment ending at ${head.last_seq}, entry ${head.entry_hash.slice(0, 12)}…): entries were removed or the manifest rewritten` });
      continue;
    }
    for (const [i, e] of entries.entries()) {
      const at = { index: i, file: e.file };
      if (!isSegmentOf(lane, e.first_seq, e.file)) {
        laneBreak({ ...at, problem: `entry ${i} names ${e.file}, not the file of a segment starting at ${e.first_seq}` });
        break;
      }
      const size = await store.size(e.file);
      if (size === null) {
        laneBreak({ ...at, problem: `segment ${e.file} (sequences ${e.first_seq}..${e.last_seq}) is missing` });
        break;
      }
      if (size !== e.bytes) {
        laneBreak({ ...at, problem: `segment ${e.file} is ${size} bytes, the manifest says ${e.bytes}` });
        break;
      }
      if (!deep) continue;
      const local = store.localPath(e.file);
      const scratch = local ? null : await store.scratchPath('verify.parquet');
      try {
        const bytes = local ? await readFile(local) : await store.get(e.file);
        if (!bytes) throw new Error(`segment ${e.file} vanished while being read`);
        if (scratch) await writeFile(scratch, bytes);
        const sha = createHash('sha256').update(bytes).digest('hex');
        if (sha !== e.sha256) {
          laneBreak({ ...at, problem: `segment ${e.file} was altered: SHA-256 ${sha.slice(0, 12)}… is not the manifest's ${e.sha256.slice(0, 12)}…` });
          break;
        }
        const rows = await codec.readRecords(scratch ?? local!);
        const seqProblem = checkSeqs(rows.map((r) => r.seq), e);
        if (seqProblem) {
          laneBreak({ ...at, problem: `segment ${e.file}: ${seqProblem}` });
          break;
        }
        if (!pool) continue;
        let bad: string | null = null;
        for (const r of rows) {
          let res;
          try {
            res = await verifyStoredRecord(r.seq, decodeStreamRecord(r.record, r.fingerprint ?? undefined), lookup);
          } catch (err) {
            bad = `event ${r.seq} does not decode: ${(err as Error).message}`;
            break;
          }
          if (res.failed) {
            bad = `event ${r.seq}: ${res.verdict}: ${res.detail}`;
            break;
          }
          if (res.verdict === 'verified') verified++;
          else unverifiable++;
        }
        if (bad) {
          laneBreak({ ...at, problem: `segment ${e.file}: ${bad}` });
          break;
        }
      } finally {
        if (scratch) await removeQuietly(scratch);
      }
    }
  }
  return { ok: breaks.length === 0, deep, location: store.location, lanes, first_break: breaks[0] ?? null, breaks, unlisted, events_verified: verified, events_unverifiable: unverifiable };
}

function checkSeqs(seqs: number[], e: ManifestEntry): string | null {
  if (seqs.length !== e.count) return `${seqs.length} events, the manifest says ${e.count}`;
  for (let i = 1; i < seqs.length; i++) if (seqs[i]! <= seqs[i - 1]!) return `sequence ${seqs[i]} follows ${seqs[i - 1]}`;
  if (seqs[0] !== e.first_seq || seqs.at(-1) !== e.last_seq) return `holds ${seqs[0]}..${seqs.at(-1)}, the manifest says ${e.first_seq}..${e.last_seq}`;
  return null;
}
