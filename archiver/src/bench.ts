import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeStreamRecord, SCHEMA_FINGERPRINT_HEADER, STREAM_SCHEMA_FINGERPRINT, type StreamRecord } from '@kaching/contracts';
import { ParquetCodec, type ArchiveRow } from './segment.js';

export interface BenchArchiveResult {
  events: number;
  segments: number;
  eventsPerSecond: number;
  /** Parquet bytes per event (zstd), next to the event's JSON and its stored (Avro) bytes. */
  bytesPerEvent: number;
  jsonBytesPerEvent: number;
  storedBytesPerEvent: number;
  cpuUsPerEvent: number;
}

/**
 * Archive write throughput: the given stream records, as the stream holds them, into Parquet segments of
 * segmentEvents (DuckDB, zstd) on local disk, in this process. Publication (rename, manifest) is excluded.
 */
export async function benchArchiveWrite(o: { records: StreamRecord[]; segmentEvents: number }): Promise<BenchArchiveResult> {
  const rows: ArchiveRow[] = o.records.map((rec, i) => ({
    seq: i + 1,
    subject: `bench.events.1.0.${rec.kind === 'usage' ? rec.usage.deployment_id : rec.job_status.deployment_id}.${rec.kind}`,
    lane: '1.0',
    streamTime: Date.now(),
    headers: { [SCHEMA_FINGERPRINT_HEADER]: STREAM_SCHEMA_FINGERPRINT, 'Nats-Msg-Id': `bench-${i}` },
    record: encodeStreamRecord(rec),
    decoded: rec,
  }));
  const json = o.records.reduce((a, r) => a + Buffer.byteLength(JSON.stringify(r.kind === 'usage' ? r.usage : r.job_status)), 0);
  const stored = rows.reduce((a, r) => a + r.record.length, 0);
  const dir = await mkdtemp(join(tmpdir(), 'kaching-bench-archive-'));
  const codec = new ParquetCodec();
  let bytes = 0;
  let segments = 0;
  try {
    await codec.write(rows.slice(0, 10), join(dir, 'warm.parquet')); // DuckDB start-up outside the figure
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < rows.length; i += o.segmentEvents) {
      const seg = await codec.write(rows.slice(i, i + o.segmentEvents), join(dir, `${i}.parquet`));
      bytes += seg.bytes;
      segments++;
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const n = rows.length;
    return {
      events: n,
      segments,
      eventsPerSecond: Math.round(n / seconds),
      bytesPerEvent: Math.round((bytes / n) * 10) / 10,
      jsonBytesPerEvent: Math.round(json / n),
      storedBytesPerEvent: Math.round(stored / n),
      cpuUsPerEvent: Math.round((cpu.user + cpu.system) / n),
    };
  } finally {
    await codec.close();
    await rm(dir, { recursive: true, force: true });
  }
}
