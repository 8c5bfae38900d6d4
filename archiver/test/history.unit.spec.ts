import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DuckDBInstance } from '@duckdb/node-api';
import { ArchiveHistory, LocalStore, segmentKey, type ManifestEntry } from '@kaching/archiver';

// The history's reader over hand-made segments (no services): lanes merged by sequence, chunks of DuckDB's
// 2048 rows read ahead, segments before the asked sequence left unread, a segment out of order refused.
let root: string;
const seqs = { a: [] as number[], b: [] as number[], c: [] as number[] };

async function segment(lane: string, index: number, list: number[]): Promise<ManifestEntry> {
  const file = segmentKey(lane, list[0]!, 1);
  await mkdir(join(root, lane), { recursive: true });
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    // headers absent now and then, a fingerprint that changes, and one record small enough for DuckDB to inline
    await c.run(`copy (select s::bigint as seq, 'ev.' || s as subject,
      (case when s = 10001 then 'r' else 'rec-' || s || '-' || repeat('x', 20) end)::blob as record,
      case when s % 1500 = 0 or s = 10001 then null when s > 5000 then 'fp-longer-than-twelve' else 'fp' end as schema_fingerprint,
      case when s % 1000 = 0 or s = 10001 then null else 'id-' || s end as msg_id,
      make_timestamp(s * 1000) as stream_time from unnest([${list.join(',')}]) t(s)) to '${join(root, file)}' (format parquet)`);
  } finally {
    c.closeSync();
    db.closeSync();
  }
  const sorted = [...list].sort((x, y) => x - y);
  return {
    v: 1, lane, index, file, first_seq: sorted[0]!, last_seq: sorted.at(-1)!, count: list.length, bytes: 0, sha256: '', oldest_received_at: null,
    newest_received_at: null, archived_at: '2026-01-01T00:00:00.000Z', prev: '', hash: '',
  };
}

const manifest = (lane: string, entries: ManifestEntry[]) => writeFile(join(root, lane, 'manifest.jsonl'), entries.map((e) => JSON.stringify(e)).join('\n') + '\n');

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kaching-history-unit-'));
  // lane 1.0: odd sequences 1..9999 in two segments; lane 2.0: even ones, and 7777 again (a repartitioning's copy)
  seqs.a = Array.from({ length: 2500 }, (_, i) => 2 * i + 1);
  seqs.b = Array.from({ length: 2500 }, (_, i) => 5001 + 2 * i);
  seqs.c = [...Array.from({ length: 5000 }, (_, i) => 2 * i + 2), 10_001].sort((x, y) => x - y);
  await manifest('1.0', [await segment('1.0', 0, seqs.a), await segment('1.0', 1, seqs.b)]);
  await manifest('2.0', [await segment('2.0', 0, [...seqs.c.filter((s) => s < 7777), 7777, ...seqs.c.filter((s) => s > 7777)])]);
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

it('merges the lanes into one ordered sequence, each sequence once, chunk after chunk', async () => {
  const h = new ArchiveHistory(new LocalStore(root));
  try {
    const got: number[] = [];
    for await (const m of h.messages({ fromSeq: 1 })) {
      got.push(m.seq);
      if (m.seq === 4242) expect(m).toMatchObject({ subject: 'ev.4242', fingerprint: 'fp', msgId: 'id-4242', streamTime: 4242 });
      if (m.seq === 4242) expect(Buffer.from(m.data).toString()).toBe(`rec-4242-${'x'.repeat(20)}`);
      if (m.seq === 3000) expect(m).toMatchObject({ fingerprint: undefined, msgId: undefined });
      if (m.seq === 1500 || m.seq === 1501) expect(m).toMatchObject({ fingerprint: m.seq === 1500 ? undefined : 'fp', msgId: `id-${m.seq}` });
      if (m.seq === 6001) expect(m).toMatchObject({ fingerprint: 'fp-longer-than-twelve', msgId: 'id-6001' });
      if (m.seq === 10_001) expect({ ...m, data: Buffer.from(m.data).toString() }).toMatchObject({ data: 'r', fingerprint: undefined, msgId: undefined });
    }
    expect(got).toEqual(Array.from({ length: 10_001 }, (_, i) => i + 1));
    expect(await h.count(1, 10_002)).toBe(10_002); // the manifest counts the copy of 7777 twice: what count() is given
    expect(await h.get(7777)).toMatchObject({ seq: 7777, subject: 'ev.7777' });
  } finally {
    await h.close();
  }
});

it('a record cursor reads what decoding needs, jumps ahead and stops at beforeSeq', async () => {
  const h = new ArchiveHistory(new LocalStore(root));
  try {
    const c = await h.recordCursor({ fromSeq: 100, beforeSeq: 9000 });
    const first = await c.next(100);
    expect(first).toEqual({ seq: 100, data: expect.any(Uint8Array), fingerprint: 'fp', msgId: 'id-100' });
    expect((await c.next(101))?.seq).toBe(101);
    // past lane 1.0's first segment: it is left, the second read from 6001 on
    expect((await c.next(6001))?.seq).toBe(6001);
    expect((await c.next(8999))?.seq).toBe(8999);
    expect(await c.next(9000)).toBeNull();
    await c.close();
  } finally {
    await h.close();
  }
});

it('a segment whose rows are not in sequence order is refused, not misread', async () => {
  const dir = join(root, '3.0');
  const e = await segment('3.0', 0, [20_003, 20_001, 20_002]);
  await manifest('3.0', [e]);
  const h = new ArchiveHistory(new LocalStore(root));
  try {
    await expect((async () => {
      for await (const _ of h.messages({ fromSeq: 20_000 })) void _;
    })()).rejects.toThrow(/not in sequence order \(20001 follows 20003\)/);
  } finally {
    await h.close();
    await rm(dir, { recursive: true, force: true });
  }
});
