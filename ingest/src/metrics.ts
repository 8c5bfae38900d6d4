import { Counter, Histogram, Registry, Gauge } from 'prom-client';
import { collectProcessMetrics } from '@kaching/contracts';

/** The ingest service's own registry (several services share a process under `kaching up`). */
export class IngestMetrics {
  readonly registry = new Registry();
  readonly accepted = new Counter({
    name: 'kaching_ingest_accepted_total',
    help: 'Events appended to the stream (acknowledged by JetStream)',
    labelNames: ['kind', 'path'] as const,
    registers: [this.registry],
  });
  readonly duplicates = new Counter({
    name: 'kaching_ingest_duplicates_total',
    help: 'Exact resends answered duplicate:true (dropped by the duplicate window)',
    labelNames: ['kind', 'path'] as const,
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'kaching_ingest_rejected_total',
    help: 'Events or requests refused, by error code',
    labelNames: ['code', 'path'] as const,
    registers: [this.registry],
  });
  readonly otlpRequests = new Counter({
    name: 'kaching_ingest_otlp_requests_total',
    help: 'POST /v1/traces requests by body encoding (json, protobuf) and Content-Encoding (gzip, identity)',
    labelNames: ['encoding', 'compression'] as const,
    registers: [this.registry],
  });
  readonly ackLatency = new Histogram({
    name: 'kaching_ingest_ack_latency_seconds',
    help: 'Time from receiving an event to its JetStream PubAck',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly natsConnected = new Gauge({
    name: 'kaching_ingest_nats_connected',
    help: '1 while the NATS connection is up',
    registers: [this.registry],
  });

  constructor(defaults = false) {
    if (defaults) collectProcessMetrics(this.registry, 'kaching_ingest_');
  }
}
