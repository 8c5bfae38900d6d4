import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '@kaching/contracts';

export interface ProjectorMetrics {
  registry: Registry;
  pending: Gauge<'projection'>;
  lastSeq: Gauge<'projection'>;
  latency: Histogram<'projection'>;
  applied: Counter<'projection'>;
  skipped: Counter<'projection'>;
  poison: Counter<'projection'>;
  failures: Counter<'projection'>;
  batchSeconds: Histogram<'projection'>;
  /** The archive seen from here (the projector keeps running when the archiver stops). */
  archiveLag: Gauge;
  archiveAlert: Gauge;
  billingSent: Counter<'format'>;
  billingFailed: Counter<'format'>;
  billingDead: Counter<'format'>;
}

export function createMetrics(): ProjectorMetrics {
  const registry = new Registry();
  collectProcessMetrics(registry, 'kaching_projector_');
  const labelNames = ['projection'] as const;
  return {
    registry,
    archiveLag: new Gauge({ name: 'kaching_archive_lag_events', help: 'Events-stream messages not yet in a published archive segment', registers: [registry] }),
    archiveAlert: new Gauge({ name: 'kaching_archive_lag_alert', help: '1 while the archive lag alert is raised', registers: [registry] }),
    pending: new Gauge({ name: 'kaching_projector_pending_messages', help: 'Messages not yet applied (consumer pending + unacked)', labelNames, registers: [registry] }),
    lastSeq: new Gauge({ name: 'kaching_projector_last_applied_seq', help: 'Stream sequence of the last committed checkpoint', labelNames, registers: [registry] }),
    latency: new Histogram({
      name: 'kaching_projector_event_latency_seconds',
      help: 'From ingest received_at to the commit of the projection',
      labelNames,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    applied: new Counter({ name: 'kaching_projector_events_applied_total', help: 'Events applied', labelNames, registers: [registry] }),
    skipped: new Counter({ name: 'kaching_projector_events_skipped_total', help: 'Redelivered events at or below the checkpoint', labelNames, registers: [registry] }),
    poison: new Counter({ name: 'kaching_projector_events_undecodable_total', help: 'Messages that could not be decoded (skipped)', labelNames, registers: [registry] }),
    failures: new Counter({ name: 'kaching_projector_batch_failures_total', help: 'Batches rolled back (retried)', labelNames, registers: [registry] }),
    batchSeconds: new Histogram({ name: 'kaching_projector_batch_seconds', help: 'Time to apply and commit one batch', labelNames, buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5], registers: [registry] }),
    billingSent: new Counter({ name: 'kaching_billing_records_sent_total', help: 'Billing records the billing service accepted', labelNames: ['format'], registers: [registry] }),
    billingFailed: new Counter({ name: 'kaching_billing_send_failures_total', help: 'Failed attempts to send a billing record (retried with backoff)', labelNames: ['format'], registers: [registry] }),
    billingDead: new Counter({ name: 'kaching_billing_records_dead_total', help: 'Billing records moved to dead-letter (past BILLING_MAX_ATTEMPTS, or refused with a 4xx)', labelNames: ['format'], registers: [registry] }),
  };
}
