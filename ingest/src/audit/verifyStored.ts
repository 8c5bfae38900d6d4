import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { SCHEMA_FINGERPRINT_HEADER, decodeStreamRecord, fetchAgentKey, verifyStoredRecord, type AuditResult, type Names } from '@kaching/contracts';

export type { AuditResult, AuditVerdict } from '@kaching/contracts';

/** Re-verifies a stored event's signature against the key that was valid when it was signed (contracts' verifyStoredRecord). */
export async function auditVerify(nc: NatsConnection, pool: pg.Pool, n: Names, seq: number): Promise<AuditResult> {
  const jsm = await jetstreamManager(nc);
  const sm = await jsm.streams.getMessage(n.eventsStream, { seq }).catch(() => null);
  if (!sm) return { seq, verdict: 'not_found', failed: true, detail: `no message with seq ${seq} in ${n.eventsStream}` };
  const fp = sm.header?.get(SCHEMA_FINGERPRINT_HEADER) || undefined;
  return verifyStoredRecord(seq, decodeStreamRecord(sm.data, fp), (d, k) => fetchAgentKey(pool, d, k));
}
