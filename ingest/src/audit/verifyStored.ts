import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import type { ArchiveHistory } from '@kaching/archiver';
import { SCHEMA_FINGERPRINT_HEADER, decodeStreamRecord, fetchAgentKey, verifyStoredRecord, type AuditOptions, type AuditResult, type Names, type StreamRecord } from '@kaching/contracts';

export type { AuditOptions, AuditResult, AuditVerdict } from '@kaching/contracts';

/** Re-verifies a stored event's signature against the key that was valid when it was signed (contracts' verifyStoredRecord). */
export async function auditVerify(nc: NatsConnection, pool: pg.Pool, n: Names, seq: number, opts: AuditOptions = {}, history: ArchiveHistory | null = null): Promise<AuditResult> {
  const jsm = await jetstreamManager(nc);
  const sm = await jsm.streams.getMessage(n.eventsStream, { seq }).catch(() => null);
  if (sm) return verifyRecord(pool, seq, decodeStreamRecord(sm.data, sm.header?.get(SCHEMA_FINGERPRINT_HEADER) || undefined), opts);
  // past the hot window (or purged): the archive holds the same bytes
  const am = await history?.get(seq);
  if (am) return verifyRecord(pool, seq, decodeStreamRecord(am.data, am.fingerprint), opts);
  return { seq, verdict: 'not_found', failed: true, detail: `no message with seq ${seq} in ${n.eventsStream}${history ? ` or the archive (${history.store.location})` : ''}` };
}

/** The audit of one decoded stream record (from the stream or the archive), keys read from Postgres. */
export function verifyRecord(pool: pg.Pool, seq: number, rec: StreamRecord, opts: AuditOptions = {}): Promise<AuditResult> {
  return verifyStoredRecord(seq, rec, (d, k) => fetchAgentKey(pool, d, k), opts);
}
