import { createHash } from 'node:crypto';

/**
 * Event partitions. A deployment's events go to partition FNV-1a-32(deployment id, UTF-8) mod N: the
 * hash nats-server's `partition(N, i)` subject-mapping function applies to a token (server/subject_transform.go,
 * getHashPartition: fnv.New32a over the token bytes, Sum32() % N). So on 2.10+ a server-side mapping
 * `<ns>.events.*.* -> <ns>.events.N.{{partition(N,1)}}.{{wildcard(1)}}.{{wildcard(2)}}` gives the same subjects.
 */

const FNV_OFFSET_32 = 0x811c9dc5;
const FNV_PRIME_32 = 0x01000193;

export function fnv1a32(key: string | Uint8Array): number {
  const bytes = typeof key === 'string' ? new TextEncoder().encode(key) : key;
  let h = FNV_OFFSET_32;
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, FNV_PRIME_32) >>> 0;
  }
  return h >>> 0;
}

export function partitionOf(deploymentId: string, count: number): number {
  if (!Number.isInteger(count) || count < 1) throw new Error(`partition count must be a positive integer (got ${count})`);
  return fnv1a32(deploymentId) % count;
}

/**
 * A lane is what one consumer instance reads in order: one partition of one partition count, or the
 * legacy lane of 4-token subjects written before partitions existed. Lane ids: "legacy", "<N>.<p>".
 */
export interface Lane {
  id: string;
  /** Partition count the lane belongs to; null for the legacy lane. */
  count: number | null;
  partition: number | null;
}

export const LEGACY_LANE: Lane = { id: 'legacy', count: null, partition: null };

export function lanesOf(count: number): Lane[] {
  return Array.from({ length: count }, (_, p) => ({ id: `${count}.${p}`, count, partition: p }));
}

export function parseLane(id: string): Lane {
  if (id === 'legacy') return LEGACY_LANE;
  const m = /^(\d+)\.(\d+)$/.exec(id);
  if (!m) throw new Error(`not a lane id: ${id}`);
  const count = Number(m[1]);
  const partition = Number(m[2]);
  if (count < 1 || partition >= count) throw new Error(`not a lane id: ${id}`);
  return { id, count, partition };
}

/** Orders lanes: legacy first, then by count and partition (lock order, display order). */
export function compareLanes(a: Lane, b: Lane): number {
  return (a.count ?? -1) - (b.count ?? -1) || (a.partition ?? -1) - (b.partition ?? -1);
}

/**
 * Which member owns which lane. Rendezvous (highest-random-weight) hashing ranks the members for each
 * lane; every member gets floor(lanes / members) or one more, so every instance computes the same
 * balanced map from the same member list, no member is left without a lane while another holds two more
 * than it, and a member joining or leaving moves few lanes.
 */
export function assignLanes(laneIds: readonly string[], members: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (!members.length) return out;
  const base = Math.floor(laneIds.length / members.length);
  // members allowed one lane above base; together the quotas are exactly the lane count
  let extra = laneIds.length % members.length;
  const load = new Map<string, number>(members.map((m) => [m, 0]));
  for (const lane of [...laneIds].sort()) {
    const ranked = [...members].sort((a, b) => score(b, lane) - score(a, lane) || (a < b ? -1 : 1));
    const owner = ranked.find((m) => load.get(m)! < base) ?? ranked.find((m) => load.get(m)! === base && extra > 0)!;
    if (load.get(owner)! === base) extra--;
    load.set(owner, load.get(owner)! + 1);
    out.set(lane, owner);
  }
  return out;
}

/**
 * The lanes of the current partition count carry the traffic; the legacy lane and lanes of an older count
 * only drain. Each group is balanced on its own, so no instance ends up with only a draining lane while
 * another reads two live partitions.
 */
export function assignLaneGroups(live: readonly string[], draining: readonly string[], members: readonly string[]): Map<string, string> {
  return new Map([...assignLanes(live, members), ...assignLanes(draining, members)]);
}

function score(member: string, lane: string): number {
  return createHash('sha256').update(member).update('\u0000').update(lane).digest().readUInt32BE(0);
}
