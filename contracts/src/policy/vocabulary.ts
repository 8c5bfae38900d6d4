// The policy vocabulary shared by the API (which validates limits) and the enforcer (which measures them).
// Decision codes, actions, period kinds and enforcement modes are in types/decision.ts.

/** Metrics a quota or budget may name: only what the enforcer can measure (a typo would be a limit that never fires). */
export const LIMITABLE_METRICS = [
  'cpu_seconds', 'gpu_seconds', 'context_bytes_written', 'context_bytes_read', 'context_reads', 'context_writes',
  'model_tokens_in', 'model_tokens_out', 'cost_usd', 'jobs', 'nodes_active', 'seats_active', 'concurrency',
] as const;
export type LimitableMetric = (typeof LIMITABLE_METRICS)[number];
/** Summed per local day; the others are counted (distinct nodes/agents in the window, jobs running now). */
export const SUMMED_METRICS: readonly string[] = LIMITABLE_METRICS.filter((m) => !['nodes_active', 'seats_active', 'concurrency'].includes(m));
