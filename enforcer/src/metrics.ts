import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '@kaching/contracts';

export function createMetrics() {
  const registry = new Registry();
  collectProcessMetrics(registry, 'kaching_enforcer_');
  return {
    registry,
    decisions: new Counter({ name: 'kaching_enforcer_decisions_total', help: 'Decisions issued, by code, action and state', labelNames: ['code', 'action', 'state'], registers: [registry] }),
    evaluation: new Histogram({ name: 'kaching_enforcer_evaluation_seconds', help: 'Apply + evaluate one batch (one transaction)', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry] }),
    lag: new Gauge({ name: 'kaching_enforcer_consumer_lag', help: 'Messages pending for the enforcer consumer', registers: [registry] }),
    lastSeq: new Gauge({ name: 'kaching_enforcer_checkpoint_seq', help: 'Last stream sequence applied', registers: [registry] }),
    applied: new Counter({ name: 'kaching_enforcer_events_applied_total', help: 'Usage revisions applied', registers: [registry] }),
    rewinds: new Counter({ name: 'kaching_enforcer_rewinds_total', help: 'Consumer re-read from the checkpoint because an earlier message was missing from a delivery', registers: [registry] }),
    failures: new Counter({ name: 'kaching_enforcer_batch_failures_total', help: 'Batches rolled back and retried', registers: [registry] }),
    configChanges: new Counter({ name: 'kaching_enforcer_config_changes_total', help: 'Configuration changes applied (limits re-read, deployment re-evaluated), by kind', labelNames: ['kind'], registers: [registry] }),
    admissions: new Counter({ name: 'kaching_enforcer_admissions_total', help: 'Admission checks by outcome', labelNames: ['outcome'], registers: [registry] }),
  };
}
export type EnforcerMetrics = ReturnType<typeof createMetrics>;
