import type pg from 'pg';
import { HQ_POLICY, installationIdentity, names, type InstallationIdentity, type Logger } from '@kaching/contracts';
import type { SyncConfig } from '../config.js';
import { postRollups } from './client.js';
import { markPushed, pending, stage } from './outbox.js';

export interface PushResult {
  /** Another pusher of this installation held the lock; this one did nothing. */
  skipped: boolean;
  staged: number;
  pushed: number;
  applied: number;
}

export interface Pusher {
  /** One cycle now: stage the outbox, push everything pending. Throws when HQ does not take it. */
  pushNow(): Promise<PushResult>;
  close(): Promise<void>;
}

/**
 * Pushes the outbox to HQ every intervalMs; a failed cycle is retried after retryMinMs, doubling up
 * to the interval. It runs on its own timer with its own pool: ingest and the projections never wait
 * for it, and an unreachable HQ only delays the push. Several pushers of one installation take turns
 * (advisory lock); pushes are idempotent at HQ anyway.
 */
export function startPusher(opts: { pool: pg.Pool; config: SyncConfig; namespace: string; log: Logger; clock?: () => number }): Pusher {
  const { pool, config, log } = opts;
  const now = () => new Date((opts.clock ?? Date.now)());
  const lockKey = `kaching.hq.push.${names(opts.namespace).dbSchema}`;
  let identity: InstallationIdentity | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let running: Promise<PushResult> | undefined;
  let failures = 0;
  const abort = new AbortController();

  async function record(ok: boolean, error: string | null, pushed: number): Promise<void> {
    const t = now();
    await pool.query(
      `insert into hq_sync_state as s (singleton, last_attempt_at, last_success_at, last_error, consecutive_failures, rows_pushed)
       values (true, $1::timestamptz, case when $2::boolean then $1::timestamptz end, $3::text, case when $2::boolean then 0 else 1 end, $4::bigint)
       on conflict (singleton) do update set
         last_attempt_at = $1,
         last_success_at = case when $2 then $1 else s.last_success_at end,
         last_error = $3,
         consecutive_failures = case when $2 then 0 else s.consecutive_failures + 1 end,
         rows_pushed = s.rows_pushed + $4`,
      [t, ok, error, pushed],
    );
  }

  async function cycle(): Promise<PushResult> {
    const lock = await pool.connect();
    try {
      const got = await lock.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [lockKey]);
      if (!got.rows[0]!.ok) return { skipped: true, staged: 0, pushed: 0, applied: 0 };
      try {
        identity ??= await installationIdentity(pool);
        const staged = await stage(pool, identity, now());
        let pushed = 0;
        let applied = 0;
        try {
          for (;;) {
            const rows = await pending(pool, config.batchRows);
            if (rows.length === 0) break;
            const answer = await postRollups(config, { policy: HQ_POLICY, installation_id: identity.installationId, rows: rows.map((r) => r.payload) }, abort.signal);
            await markPushed(pool, rows, now());
            pushed += rows.length;
            applied += answer.applied;
            if (rows.length < config.batchRows) break;
          }
        } catch (e) {
          await record(false, (e as Error).message.slice(0, 500), pushed).catch(() => undefined);
          throw e;
        }
        await record(true, null, pushed);
        return { skipped: false, staged, pushed, applied };
      } finally {
        await lock.query('select pg_advisory_unlock(hashtext($1))', [lockKey]).catch(() => undefined);
      }
    } finally {
      lock.release();
    }
  }

  function pushNow(): Promise<PushResult> {
    running ??= cycle().finally(() => (running = undefined));
    return running;
  }

  function schedule(delayMs: number): void {
    if (closed) return;
    timer = setTimeout(() => {
      pushNow().then(
        (r) => {
          failures = 0;
          if (r.pushed > 0) log.info({ pushed: r.pushed, applied: r.applied, staged: r.staged }, 'hq sync: pushed');
          schedule(config.intervalMs);
        },
        (e: unknown) => {
          failures++;
          const retry = Math.min(config.intervalMs, config.retryMinMs * 2 ** Math.min(failures - 1, 30));
          log.warn({ err: (e as Error).message, retryInMs: retry, failures }, 'hq sync: push failed; will retry');
          schedule(retry);
        },
      );
    }, delayMs);
  }

  schedule(0);
  return {
    pushNow,
    async close() {
      closed = true;
      clearTimeout(timer);
      abort.abort();
      await running?.catch(() => undefined);
    },
  };
}
