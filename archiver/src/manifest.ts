import { createHash } from 'node:crypto';
import type { ArchiveStore } from './store.js';

/**
 * Each lane's segments are listed in `<lane>/manifest.jsonl`, one entry a line, each entry holding the
 * hash of the one before it: a flipped byte, a missing segment or a reordered entry breaks the chain.
 */
export interface ManifestEntry {
  v: 1;
  lane: string;
  index: number;
  /** Segment key relative to the archive root. */
  file: string;
  first_seq: number;
  last_seq: number;
  count: number;
  bytes: number;
  /** hex SHA-256 of the segment file. */
  sha256: string;
  oldest_received_at: string | null;
  newest_received_at: string | null;
  /** When the segment was published (the hot window counts from here). */
  archived_at: string;
  /** hash of the previous entry (GENESIS for the first). */
  prev: string;
  /** hex SHA-256 over every field above, in this order (see entryHash). */
  hash: string;
}

export const GENESIS = '0'.repeat(64);
export const MANIFEST = 'manifest.jsonl';

const FIELDS = ['v', 'lane', 'index', 'file', 'first_seq', 'last_seq', 'count', 'bytes', 'sha256', 'oldest_received_at', 'newest_received_at', 'archived_at', 'prev'] as const;

export function entryHash(e: Omit<ManifestEntry, 'hash'>): string {
  return createHash('sha256').update(JSON.stringify(FIELDS.map((f) => e[f]))).digest('hex');
}

export const manifestKey = (lane: string) => `${lane}/${MANIFEST}`;
/**
 * A segment's key: lane, first sequence, and the fence of the lease it was written under, so a deposed owner
 * still writing can never overwrite a listed segment (its file is unlisted, and removed at the lane's next start).
 */
export const segmentKey = (lane: string, firstSeq: number, fence: number) => `${lane}/${String(firstSeq).padStart(20, '0')}-${fence}.parquet`;
export const isSegmentOf = (lane: string, firstSeq: number, key: string) => new RegExp(`^${lane.replace('.', '\\.')}/${String(firstSeq).padStart(20, '0')}-\\d+\\.parquet$`).test(key);

/** Lanes that have a manifest in the store. */
export async function archivedLanes(store: ArchiveStore): Promise<string[]> {
  return (await store.list('')).filter((k) => k.endsWith(`/${MANIFEST}`)).map((k) => k.slice(0, -MANIFEST.length - 1));
}

export interface ParsedManifest {
  entries: ManifestEntry[];
  /** Lines that are not JSON entries (1-based line numbers). */
  garbage: number[];
}

export async function readManifest(store: ArchiveStore, lane: string): Promise<ParsedManifest> {
  const raw = await store.get(manifestKey(lane));
  const entries: ManifestEntry[] = [];
  const garbage: number[] = [];
  if (!raw) return { entries, garbage };
  raw.toString('utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      entries.push(JSON.parse(line) as ManifestEntry);
    } catch {
      garbage.push(i + 1);
    }
  });
  return { entries, garbage };
}

export function nextEntry(prev: ManifestEntry | undefined, e: Omit<ManifestEntry, 'v' | 'index' | 'prev' | 'hash'>): ManifestEntry {
  const body = { v: 1 as const, ...e, index: prev ? prev.index + 1 : 0, prev: prev ? prev.hash : GENESIS };
  const ordered = Object.fromEntries(FIELDS.map((f) => [f, body[f]])) as Omit<ManifestEntry, 'hash'>;
  return { ...ordered, hash: entryHash(ordered) };
}

export function serializeManifest(entries: ManifestEntry[]): Buffer {
  return Buffer.from(entries.map((e) => JSON.stringify(e)).join('\n') + '\n');
}

export interface ChainBreak {
  lane: string;
  index: number;
  file?: string;
  problem: string;
}

/** The first break of a lane's chain (entry order, hashes, sequence order), or null. */
export function checkChain(lane: string, entries: ManifestEntry[]): ChainBreak | null {
  let prev: ManifestEntry | undefined;
  for (const [i, e] of entries.entries()) {
    const at = { lane, index: i, file: e.file };
    if (e.index !== i) return { ...at, problem: `entry ${i} says it is entry ${e.index} (entries reordered, removed or inserted)` };
    if (e.prev !== (prev ? prev.hash : GENESIS)) return { ...at, problem: `entry ${i} does not follow entry ${i - 1}: its prev hash ${e.prev.slice(0, 12)}… is not ${prev ? prev.hash.slice(0, 12) : 'the genesis hash'}… (entries reordered or altered)` };
    const { hash, ...rest } = e;
    if (entryHash(rest) !== hash) return { ...at, problem: `entry ${i} was altered: its hash does not match its fields` };
    if (e.lane !== lane) return { ...at, problem: `entry ${i} belongs to lane ${e.lane}` };
    if (e.first_seq > e.last_seq || e.count < 1 || e.count > e.last_seq - e.first_seq + 1) return { ...at, problem: `entry ${i} has an impossible range ${e.first_seq}..${e.last_seq} for ${e.count} events` };
    if (prev && e.first_seq <= prev.last_seq) return { ...at, problem: `entry ${i} starts at ${e.first_seq}, not after entry ${i - 1}'s last sequence ${prev.last_seq}` };
    prev = e;
  }
  return null;
}
