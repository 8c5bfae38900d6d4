import { createHmac } from 'node:crypto';

/**
 * The HQ redaction policy: the complete list of what leaves an installation when it pushes its
 * daily rollups to HQ. Anything not listed here is never sent — names, hostnames, node and agent
 * ids, agent types, models, ucxl addresses, correlation ids, time zones, licenses, prices.
 * Deployment and org ids are replaced by HMAC-SHA-256 pseudonyms keyed with the installation's
 * secret salt, so HQ can tell rows of one deployment apart from another's but cannot recover the ids
 * or correlate them across installations.
 */
export const HQ_POLICY = 'kaching.hq.rollup_daily.v1';

/** Columns of usage_rollup_daily sent as they are (decimal strings), in this order. */
export const HQ_METRIC_FIELDS = [
  'cpu_seconds',
  'gpu_seconds',
  'disk_io_mb',
  'net_in_mb',
  'net_out_mb',
  'context_reads',
  'context_writes',
  'context_bytes_read',
  'context_bytes_written',
  'model_tokens_in',
  'model_tokens_out',
  'jobs',
  'jobs_succeeded',
  'jobs_failed',
  'seats_active',
  'nodes_active',
  'orchestration_peak_concurrency',
] as const;
export type HqMetricField = (typeof HQ_METRIC_FIELDS)[number];

/** Every field of a pushed row. */
export const HQ_ROW_FIELDS = ['deployment', 'org', 'day', 'revision', 'deleted', ...HQ_METRIC_FIELDS] as const;

export type HqRollupRow = {
  /** hqPseudonym(salt, 'deployment', deployment_id) */
  deployment: string;
  /** hqPseudonym(salt, 'org', org_id) */
  org: string;
  /** The rollup's day as usage_rollup_daily keys it (YYYY-MM-DD). */
  day: string;
  /** Grows whenever the row changes at the installation; HQ keeps the highest it saw. */
  revision: number;
  /** The row no longer exists at the installation (its metrics are all "0"). */
  deleted: boolean;
} & Record<HqMetricField, string>;

export interface HqPushBody {
  policy: typeof HQ_POLICY;
  installation_id: string;
  rows: HqRollupRow[];
}

export interface HqPushAnswer {
  received: number;
  applied: number;
  /** Same or older revision than HQ already holds: nothing changed. */
  ignored: number;
}

/** HMAC-SHA-256 (hex) of `<kind>:<id>` under the installation's salt. */
export function hqPseudonym(salt: Buffer, kind: 'deployment' | 'org', id: string): string {
  return createHmac('sha256', salt).update(`${kind}:${id}`, 'utf8').digest('hex');
}

export const HQ_ROWS_PER_PUSH_MAX = 1000;

const decimal = { type: 'string', pattern: '^-?[0-9]{1,19}(\\.[0-9]{1,6})?$', maxLength: 27 } as const;
const pseudonym = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;

/** JSON Schema of the push body; HQ refuses anything else (additional fields included). */
export const HQ_PUSH_SCHEMA = {
  type: 'object',
  required: ['policy', 'installation_id', 'rows'],
  additionalProperties: false,
  properties: {
    policy: { type: 'string', enum: [HQ_POLICY] },
    installation_id: { type: 'string', format: 'uuid' },
    rows: {
      type: 'array',
      minItems: 1,
      maxItems: HQ_ROWS_PER_PUSH_MAX,
      items: {
        type: 'object',
        required: [...HQ_ROW_FIELDS],
        additionalProperties: false,
        properties: {
          deployment: pseudonym,
          org: pseudonym,
          day: { type: 'string', format: 'date' },
          revision: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
          deleted: { type: 'boolean' },
          ...Object.fromEntries(HQ_METRIC_FIELDS.map((f) => [f, decimal])),
        },
      },
    },
  },
} as const;
