import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { SCHEMA_FINGERPRINT_HEADER, decodeStreamRecord, fetchAgentKey, verifyStoredRecord, type AuditOptions, type AuditResult, type Names, type StreamRecord } from '@kaching/contracts';

export type { AuditOptions, AuditResult, AuditVerdict } from '@kaching/contracts';

/** Re-verifies a stored event's signature against the key that was valid when it was signed (contracts' verifyStoredRecord). */
export async function auditVerify(nc: NatsConnection, pool: pg.Pool, n: Names, seq: number, opts: AuditOptions = {}): Promise<AuditResult> {
  const jsm = await jetstreamManager(nc);
  const sm = await jsm.streams.getMessage(n.eventsStream, { seq }).catch(() => null);
  if (!sm) return { seq, verdict: 'not_found', failed: true, detail: `no message with seq ${seq} in ${n.eventsStream}` };
  const fp = sm.header?.get(SCHEMA_FINGERPRINT_HEADER) || undefined;
  return verifyRecord(pool, seq, decodeStreamRecord(sm.data, fp), opts);
}

/** The audit of one decoded stream record (from the stream or the archive), keys read from Postgres. */
export function verifyRecord(pool: pg.Pool, seq: number, rec: StreamRecord, opts: AuditOptions = {}): Promise<AuditResult> {
  return verifyStoredRecord(seq, rec, (d, k) => fetchAgentKey(pool, d, k), opts);
}
