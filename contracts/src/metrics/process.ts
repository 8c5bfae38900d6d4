import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * prom-client's default process and Node.js metrics, minus the three it exports as gauges named `…_total`
 * (`nodejs_active_handles_total`, `nodejs_active_requests_total`, `nodejs_active_resources_total`): Prometheus
 * reserves `_total` for counters and `promtool check metrics` rejects them. Each is the sum of the per-type gauge
 * of the same name without the suffix, so `sum(<prefix>nodejs_active_handles)` gives the same number.
 */
export function collectProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(`${prefix}${name}`);
  }
}
