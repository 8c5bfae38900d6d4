import type { ProjectionName } from '@kaching/contracts';

/** Physical tables a projection writes. Replay points the same SQL at `<table>__shadow` copies. */
export interface Tables {
  job: string;
  usageSample: string;
  hourly: string;
  daily: string;
  modelDaily: string;
  concurrency: string;
  rollupJob: string;
  rollupMember: string;
  concurrencyJob: string;
  /** Shadow usage_sample partitions are named `<usageSample>_<yyyymmdd>` like the live ones. */
  shadow: boolean;
}

export const LIVE: Tables = {
  job: 'job',
  usageSample: 'usage_sample',
  hourly: 'usage_rollup_hourly',
  daily: 'usage_rollup_daily',
  modelDaily: 'usage_rollup_model_daily',
  concurrency: 'concurrency_minute',
  rollupJob: 'projector_rollup_job',
  rollupMember: 'projector_rollup_member',
  concurrencyJob: 'projector_concurrency_job',
  shadow: false,
};

export const SHADOW_SUFFIX = '__shadow';

export function shadowTables(): Tables {
  const t = { ...LIVE, shadow: true };
  for (const k of Object.keys(LIVE) as (keyof Tables)[]) {
    if (k !== 'shadow') (t as Record<string, unknown>)[k] = `${LIVE[k]}${SHADOW_SUFFIX}`;
  }
  return t;
}

/** The tables each projection owns (rebuilt and swapped by replay). */
export const OWNED: Record<ProjectionName, (keyof Omit<Tables, 'shadow'>)[]> = {
  raw: ['job', 'usageSample'],
  rollups: ['hourly', 'daily', 'modelDaily', 'rollupJob', 'rollupMember'],
  concurrency: ['concurrency', 'concurrencyJob'],
};

/** Tables that org-scoped readers see through RLS (a swapped-in copy needs the same policy). */
export const ORG_READABLE = new Set(['job', 'usage_sample', 'usage_rollup_hourly', 'usage_rollup_daily', 'usage_rollup_model_daily', 'concurrency_minute']);
