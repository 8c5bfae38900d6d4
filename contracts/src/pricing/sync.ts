import { createHash } from 'node:crypto';
import type pg from 'pg';
import { InputError } from '../errors/errors.js';
import { entryPrices, parseLiteLlm, type LiteLlmEntry } from './litellm.js';
import { bumpPriceRevision, PRICE_BOOK_LOCK } from './revision.js';
import { attoToMicroPerMillion } from './units.js';

export interface PriceChange {
  change_id: string;
  sync_id: string | null;
  provider: string;
  model: string;
  kind: 'added' | 'removed' | 'changed';
  /** The source's own field name (LiteLLM's), for `changed`. */
  field: string | null;
  /** USD per token as the source wrote it; null where the field (or the model) was absent. */
  old_value: string | null;
  new_value: string | null;
  effective_at: string;
  recorded_at: string;
}

export interface SyncReport {
  sync_id: string;
  source: string;
  sha256: string;
  effective_at: string;
  models: number;
  added: number;
  removed: number;
  changed: number;
  /** Models whose newest version was set by hand: a sync leaves them alone. */
  skipped_manual: number;
  changes: Omit<PriceChange, 'change_id' | 'sync_id' | 'recorded_at'>[];
}

interface Current {
  provider: string;
  model_name: string;
  source: string;
  source_fields: Record<string, string> | null;
  effective_from: Date;
  effective_to: Date | null;
}

const keyOf = (provider: string, model: string) => `${provider}\u0000${model}`;

/** Parses a LiteLLM price file's bytes; a clear 400 when it is not one. */
export function readLiteLlmFile(bytes: Buffer | string): { entries: LiteLlmEntry[]; sha256: string } {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  let json: unknown;
  try {
    json = JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new InputError('PRICE_FILE_INVALID', { field: 'from', rule: 'json', message: `The price file is not JSON: ${(e as Error).message}` });
  }
  try {
    return { entries: parseLiteLlm(json), sha256: createHash('sha256').update(buf).digest('hex') };
  } catch (e) {
    throw new InputError('PRICE_FILE_INVALID', { field: 'from', rule: 'litellm', message: (e as Error).message });
  }
}

/**
 * Brings the book in line with a LiteLLM price file, as of `effectiveAt`: a model new to the book (or back
 * after a removal) gets a version, a model whose tracked fields differ gets a new version, a model the file
 * no longer lists is closed (effective_to) — and each of these is written to the change log with the
 * source's field names and old/new values. Models whose newest version was set by hand are left alone.
 * Syncing the same file again changes and records nothing. One transaction; consumers see the new
 * revision at once.
 */
export async function syncPriceBook(
  pool: pg.Pool,
  input: { entries: LiteLlmEntry[]; source: string; sha256: string; effectiveAt: Date },
): Promise<SyncReport> {
  const at = input.effectiveAt;
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query('select pg_advisory_xact_lock($1)', [PRICE_BOOK_LOCK]);
    const cur = await client.query<Current>(
      `select distinct on (provider, model_name) provider, model_name, source, source_fields, effective_from, effective_to
         from model_price order by provider, model_name, effective_from desc, version desc`,
    );
    const latest = cur.rows.reduce((m, r) => (r.source === 'litellm' && r.effective_from > m ? r.effective_from : m), new Date(0));
    if (at < latest) {
      throw new InputError('PRICE_SYNC_OUT_OF_ORDER', {
        field: 'effective_at', rule: `>=${latest.toISOString()}`,
        message: `effective_at ${at.toISOString()} is before the book's latest synced version (${latest.toISOString()}); a sync only moves the book forward`,
      });
    }
    const book = new Map(cur.rows.map((r) => [keyOf(r.provider, r.model_name), r]));
    const seen = new Set<string>();
    const versions: Record<string, unknown>[] = [];
    const changes: SyncReport['changes'] = [];
    let skippedManual = 0;
    const effective_at = at.toISOString();
    for (const e of input.entries) {
      const k = keyOf(e.provider, e.model);
      if (seen.has(k)) continue;
      seen.add(k);
      const now = book.get(k);
      if (now && now.source !== 'litellm') {
        skippedManual++;
        continue;
      }
      const live = now && now.effective_to === null;
      const diff = live ? fieldDiff(now.source_fields ?? {}, e.fields) : [];
      if (live && diff.length === 0) continue;
      if (!live) changes.push({ provider: e.provider, model: e.model, kind: 'added', field: null, old_value: null, new_value: null, effective_at });
      for (const [field, oldV, newV] of diff) changes.push({ provider: e.provider, model: e.model, kind: 'changed', field, old_value: oldV, new_value: newV, effective_at });
      const p = entryPrices(e.fields);
      versions.push({
        provider: e.provider, model_name: e.model, input: attoToMicroPerMillion(p.input), output: attoToMicroPerMillion(p.output),
        cache_read: p.cacheRead === null ? null : attoToMicroPerMillion(p.cacheRead), cache_write: p.cacheWrite === null ? null : attoToMicroPerMillion(p.cacheWrite),
        reasoning: p.reasoning === null ? null : attoToMicroPerMillion(p.reasoning), tiers: p.tiers, source_fields: e.fields,
      });
    }
    const closed: { provider: string; model_name: string }[] = [];
    for (const r of cur.rows) {
      if (r.source !== 'litellm' || r.effective_to !== null || seen.has(keyOf(r.provider, r.model_name))) continue;
      closed.push({ provider: r.provider, model_name: r.model_name });
      changes.push({ provider: r.provider, model: r.model_name, kind: 'removed', field: null, old_value: null, new_value: null, effective_at });
    }
    const count = (kind: string) => new Set(changes.filter((c) => c.kind === kind).map((c) => keyOf(c.provider, c.model))).size;
    const sync = await client.query<{ sync_id: string }>(
      `insert into price_sync (source, sha256, effective_at, added, removed, changed) values ($1, $2, $3, $4, $5, $6) returning sync_id::text`,
      [input.source, input.sha256, at, count('added'), count('removed'), count('changed')],
    );
    const syncId = sync.rows[0]!.sync_id;
    if (versions.length) {
      // the previous open version of a changed model ends where the new one starts
      await client.query(
        `update model_price m set effective_to = $2 from jsonb_to_recordset($1::jsonb) as x(provider text, model_name text)
          where m.provider = x.provider and m.model_name = x.model_name and m.effective_to is null`,
        [JSON.stringify(versions.map((v) => ({ provider: v.provider, model_name: v.model_name }))), at],
      );
      await client.query(
        `insert into model_price (provider, model_name, version, effective_from, input_per_1m_micro_usd, output_per_1m_micro_usd,
           cached_input_per_1m_micro_usd, cache_write_per_1m_micro_usd, reasoning_per_1m_micro_usd, tiers, source, source_fields)
         select x.provider, x.model_name, coalesce((select max(version) from model_price m where m.provider = x.provider and m.model_name = x.model_name), 0) + 1,
                $2, x.input, x.output, x.cache_read, x.cache_write, x.reasoning, x.tiers, 'litellm', x.source_fields
           from jsonb_to_recordset($1::jsonb) as x(provider text, model_name text, input numeric, output numeric, cache_read numeric, cache_write numeric,
                reasoning numeric, tiers jsonb, source_fields jsonb)`,
        [JSON.stringify(versions), at],
      );
    }
    if (closed.length) {
      await client.query(
        `update model_price m set effective_to = $2 from jsonb_to_recordset($1::jsonb) as x(provider text, model_name text)
          where m.provider = x.provider and m.model_name = x.model_name and m.effective_to is null`,
        [JSON.stringify(closed), at],
      );
    }
    if (changes.length) {
      await client.query(
        `insert into price_change (sync_id, provider, model_name, kind, field, old_value, new_value, effective_at)
         select $2, x.provider, x.model, x.kind, x.field, x.old_value, x.new_value, $3
           from rows from (jsonb_to_recordset($1::jsonb) as (provider text, model text, kind text, field text, old_value text, new_value text))
                with ordinality as x(provider, model, kind, field, old_value, new_value, ord)
          order by ord`,
        [JSON.stringify(changes), syncId, at],
      );
      await bumpPriceRevision(client, at, `sync ${syncId} from ${input.source}`);
    }
    await client.query('commit');
    return {
      sync_id: syncId, source: input.source, sha256: input.sha256, effective_at, models: seen.size,
      added: count('added'), removed: count('removed'), changed: count('changed'), skipped_manual: skippedManual, changes,
    };
  } catch (e) {
    await client.query('rollback').catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
}

/** The tracked fields that differ, sorted by name: [field, old, new] with null for an absent field. */
function fieldDiff(oldF: Record<string, string>, newF: Record<string, string>): [string, string | null, string | null][] {
  const names = [...new Set([...Object.keys(oldF), ...Object.keys(newF)])].sort();
  return names.filter((f) => oldF[f] !== newF[f]).map((f) => [f, oldF[f] ?? null, newF[f] ?? null]);
}

/** Reads a price file from a path or an http(s) URL. */
export async function fetchPriceFile(from: string, o: { signal?: AbortSignal } = {}): Promise<Buffer> {
  if (/^https?:\/\//i.test(from)) {
    const res = await fetch(from, o.signal ? { signal: o.signal } : {});
    if (!res.ok) throw new InputError('PRICE_FILE_INVALID', { field: 'from', rule: 'http', message: `GET ${from} answered ${res.status}` });
    return Buffer.from(await res.arrayBuffer());
  }
  const { readFile } = await import('node:fs/promises');
  try {
    return await readFile(from);
  } catch (e) {
    throw new InputError('PRICE_FILE_INVALID', { field: 'from', rule: 'readable', message: `cannot read ${from}: ${(e as Error).message}` });
  }
}
