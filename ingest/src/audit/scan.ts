import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import type { ArchiveHistory } from '@kaching/archiver';
import { SCHEMA_FINGERPRINT_HEADER, decodeStreamRecord, type Names, type StreamRecord } from '@kaching/contracts';
import { verifyRecord, type AuditResult, type AuditVerdict } from './verifyStored.js';

/** Which stored events of one deployment an audit covers. */
export type AuditSelection =
  | { deploymentId: string; correlationId: string }
  /** Events appended in [since, until): the stream's own append time, which the archive keeps too. */
  | { deploymentId: string; since: Date; until: Date };

export interface AuditSummary {
  deployment_id: string;
  scanned: number;
  verified: number;
  failed: number;
  unverifiable: number;
  /** How many events got each verdict. */
  verdicts: Partial<Record<AuditVerdict, number>>;
  /** Every failure, and every event when a correlation id was asked for. */
  results: AuditResult[];
}

const UNVERIFIABLE: AuditVerdict[] = ['unverifiable_redacted', 'unverifiable_unsigned'];

/** Audits every stored event the selection names: each verified alone, counted by verdict. */
export async function auditSelection(nc: NatsConnection, pool: pg.Pool, n: Names, sel: AuditSelection, history: ArchiveHistory | null = null): Promise<AuditSummary> {
  const sum: AuditSummary = { deployment_id: sel.deploymentId, scanned: 0, verified: 0, failed: 0, unverifiable: 0, verdicts: {}, results: [] };
  const byCorrelation = 'correlationId' in sel;
  const stored = await deploymentRecords(nc, n, sel.deploymentId, byCorrelation ? undefined : sel.since);
  if (history) {
    // the archive holds what left the stream (and copies of what did not: each sequence is audited once)
    const inStream = new Set(stored.map((r) => r.seq));
    const filter = byCorrelation ? { deploymentId: sel.deploymentId, correlationId: sel.correlationId } : { deploymentId: sel.deploymentId, since: sel.since.getTime(), until: sel.until.getTime() };
    for await (const m of history.messages(filter)) {
      if (!inStream.has(m.seq)) stored.push({ seq: m.seq, rec: decodeStreamRecord(m.data, m.fingerprint), at: m.streamTime });
    }
    stored.sort((a, b) => a.seq - b.seq);
  }
  for (const { seq, rec, at } of stored) {
    if (!byCorrelation && at >= sel.until.getTime()) break;
    const event = rec.kind === 'usage' ? rec.usage! : rec.job_status!;
    if (byCorrelation && event.job.correlation_id !== sel.correlationId) continue;
    const r = await verifyRecord(pool, seq, rec);
    sum.scanned++;
    sum.verdicts[r.verdict] = (sum.verdicts[r.verdict] ?? 0) + 1;
    if (r.failed) sum.failed++;
    else if (UNVERIFIABLE.includes(r.verdict)) sum.unverifiable++;
    else sum.verified++;
    if (r.failed || byCorrelation) sum.results.push(r);
  }
  return sum;
}

/**
 * Every stored record of one deployment in stream order, from `since` (append time): one ordered
 * pass per subject form (partitioned and the legacy 4-token one). nats-server 2.9 takes one filter per consumer.
 */
async function deploymentRecords(nc: NatsConnection, n: Names, deploymentId: string, since?: Date): Promise<{ seq: number; rec: StreamRecord; at: number }[]> {
  const ns = n.legacyEventSubject(deploymentId, 'usage').split('.events.')[0];
  const filters = [`${ns}.events.*.*.${deploymentId}.*`, `${ns}.events.${deploymentId}.*`];
  const js = jetstream(nc);
  const last = (await (await jetstreamManager(nc)).streams.info(n.eventsStream)).state.last_seq;
  const passes: { seq: number; rec: StreamRecord; at: number }[][] = [];
  for (const filter of filters) {
    const out: { seq: number; rec: StreamRecord; at: number }[] = [];
    const c = await js.consumers.get(n.eventsStream, {
      filter_subjects: filter,
      ...(since ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: since.toISOString() } : { deliver_policy: DeliverPolicy.All }),
    });
    const pending = (await c.info(true)).num_pending;
    if (pending > 0) {
      const it = await c.consume({ max_messages: 512 });
      for await (const m of it) {
        const fp = m.headers?.get(SCHEMA_FINGERPRINT_HEADER) || undefined;
        out.push({ seq: m.seq, rec: decodeStreamRecord(m.data, fp), at: Math.floor(m.info.timestampNanos / 1e6) });
        if (m.info.pending === 0 || m.seq >= last) break;
      }
      it.stop();
    }
    await c.delete().catch(() => undefined);
    passes.push(out);
  }
  // the two forms interleave only across a partitioning change: merge them back into stream order
  return passes.flat().sort((a, b) => a.seq - b.seq);
}
