import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '@kaching/contracts';

export function createMetrics() {
  const registry = new Registry();
  collectProcessMetrics(registry, 'kaching_archiver_');
  return {
    registry,
    segments: new Counter({ name: 'kaching_archive_segments_total', help: 'Segments published (file + manifest entry + checkpoint)', registers: [registry] }),
    events: new Counter({ name: 'kaching_archive_events_total', help: 'Events written to published segments', registers: [registry] }),
    bytes: new Counter({ name: 'kaching_archive_bytes_total', help: 'Bytes of published segments', registers: [registry] }),
    publish: new Histogram({ name: 'kaching_archive_publish_seconds', help: 'Write, publish and list one segment', buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] }),
    lag: new Gauge({ name: 'kaching_archive_lag_events', help: 'Events-stream messages not yet in a published segment', registers: [registry] }),
    archivedThrough: new Gauge({ name: 'kaching_archive_archived_through_seq', help: 'Every stream message at or below this sequence is archived', registers: [registry] }),
    alerting: new Gauge({ name: 'kaching_archive_lag_alert', help: '1 while the archive lag alert is raised', registers: [registry] }),
    purged: new Counter({ name: 'kaching_archive_purged_events_total', help: 'Archived events purged from the stream past the hot window', registers: [registry] }),
    failures: new Counter({ name: 'kaching_archive_failures_total', help: 'Segment publications or batches that failed and were retried', registers: [registry] }),
  };
}
export type ArchiverMetrics = ReturnType<typeof createMetrics>;
