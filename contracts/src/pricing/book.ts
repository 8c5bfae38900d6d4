import type pg from 'pg';
import type { LlmUsage } from '../types/usage.js';
import { priceRequest, type PriceTier, type PriceVersion } from './price.js';
import { microPerMillionToAtto } from './units.js';
import { lockPriceRevision } from './revision.js';

/**
 * OpenTelemetry's `gen_ai.provider.name` values (and a few common spellings) → the provider names of the price
 * book (LiteLLM's `litellm_provider`). Anything not listed is used lower-cased as is.
 */
export const PROVIDER_NAMES: Readonly<Record<string, string>> = {
  'aws.bedrock': 'bedrock',
  'azure.ai.openai': 'azure',
  'azure.ai.inference': 'azure_ai',
  'gcp.vertex_ai': 'vertex_ai-language-models',
  'gcp.gemini': 'gemini',
  'gcp.gen_ai': 'gemini',
  'google': 'gemini',
  'mistral_ai': 'mistral',
  'x_ai': 'xai',
};

export function bookProvider(provider: string): string {
  const p = provider.trim().toLowerCase();
  return PROVIDER_NAMES[p] ?? p;
}

export interface PriceAlias {
  /** A model name, or a pattern where * stands for any characters. */
  alias: string;
  provider: string;
  model: string;
}

export interface PricedCost {
  microUsd: bigint;
  /** The version used, for the record: a replay with the same book gives the same cost. */
  version: number;
  /** The book entry used, when an alias or pattern led there. */
  pricedAs?: { provider: string; model: string };
}

interface Row {
  provider: string;
  model_name: string;
  version: number;
  from_ms: string;
  to_ms: string | null;
  input_per_1m_micro_usd: string;
  output_per_1m_micro_usd: string;
  cached_input_per_1m_micro_usd: string | null;
  cache_write_per_1m_micro_usd: string | null;
  reasoning_per_1m_micro_usd: string | null;
  gpu_second_micro_usd: string;
  cpu_second_micro_usd: string;
  source: string;
  tiers: { above_input_tokens: number; input?: string; output?: string; cache_read?: string; cache_write?: string; reasoning?: string }[];
}

const atto = (v: string | null | undefined): bigint | null => (v === null || v === undefined ? null : microPerMillionToAtto(v));

/**
 * The price book in memory: every version of every model and the aliases, loaded from Postgres and reloaded
 * when `price_book_state.revision` moves (sync, price set, alias change). One pricing function for the
 * projector, the enforcer and the API.
 */
export class PriceBook {
  private byModel = new Map<string, PriceVersion[]>();
  private exactAliases = new Map<string, PriceAlias>();
  private patterns: { re: RegExp; alias: PriceAlias }[] = [];
  revision = -1;

  /** Loads the book (a new snapshot replaces the old at once). */
  async load(db: pg.Pool | pg.PoolClient): Promise<this> {
    // one after another: `db` may be a client inside a batch transaction, which runs one query at a time
    const rev = await db.query<{ revision: string }>('select revision from price_book_state');
    const prices = await db.query<Row>(
        `select provider, model_name, version, (extract(epoch from effective_from) * 1000)::bigint::text as from_ms,
           (extract(epoch from effective_to) * 1000)::bigint::text as to_ms, input_per_1m_micro_usd::text, output_per_1m_micro_usd::text,
           cached_input_per_1m_micro_usd::text, cache_write_per_1m_micro_usd::text, reasoning_per_1m_micro_usd::text,
           gpu_second_micro_usd::text, cpu_second_micro_usd::text, source, tiers
         from model_price order by provider, model_name, effective_from, version`,
    );
    const aliases = await db.query<{ alias: string; provider: string; model_name: string }>('select alias, provider, model_name from price_alias order by alias');
    const m = new Map<string, PriceVersion[]>();
    for (const x of prices.rows) {
      const key = keyOf(x.provider, x.model_name);
      const v: PriceVersion = {
        provider: x.provider, model: x.model_name, version: Number(x.version), effectiveFrom: Number(x.from_ms), effectiveTo: x.to_ms === null ? null : Number(x.to_ms), source: x.source,
        input: microPerMillionToAtto(x.input_per_1m_micro_usd), output: microPerMillionToAtto(x.output_per_1m_micro_usd),
        cacheRead: atto(x.cached_input_per_1m_micro_usd), cacheWrite: atto(x.cache_write_per_1m_micro_usd), reasoning: atto(x.reasoning_per_1m_micro_usd),
        gpuSecond: BigInt(x.gpu_second_micro_usd), cpuSecond: BigInt(x.cpu_second_micro_usd),
        tiers: (x.tiers ?? []).map((t): PriceTier => ({
          aboveInputTokens: t.above_input_tokens,
          ...(t.input !== undefined ? { input: microPerMillionToAtto(t.input) } : {}),
          ...(t.output !== undefined ? { output: microPerMillionToAtto(t.output) } : {}),
          ...(t.cache_read !== undefined ? { cacheRead: microPerMillionToAtto(t.cache_read) } : {}),
          ...(t.cache_write !== undefined ? { cacheWrite: microPerMillionToAtto(t.cache_write) } : {}),
          ...(t.reasoning !== undefined ? { reasoning: microPerMillionToAtto(t.reasoning) } : {}),
        })),
      };
      m.set(key, [...(m.get(key) ?? []), v]);
    }
    return this.install([...m.values()].flat(), aliases.rows.map((a) => ({ alias: a.alias, provider: a.provider, model: a.model_name })), Number(rev.rows[0]?.revision ?? 0));
  }

  /** Replaces the book with these versions (in effective_from order per model) and aliases. */
  install(versions: readonly PriceVersion[], aliases: readonly PriceAlias[], revision: number): this {
    const m = new Map<string, PriceVersion[]>();
    for (const v of versions) m.set(keyOf(v.provider, v.model), [...(m.get(keyOf(v.provider, v.model)) ?? []), v]);
    this.byModel = m;
    this.exactAliases = new Map();
    this.patterns = [];
    for (const alias of aliases) {
      if (alias.alias.includes('*')) this.patterns.push({ re: globToRegExp(alias.alias), alias });
      else this.exactAliases.set(alias.alias, alias);
    }
    // longer patterns are more specific: they win
    this.patterns.sort((a, b) => b.alias.alias.length - a.alias.alias.length || a.alias.alias.localeCompare(b.alias.alias));
    this.revision = revision;
    return this;
  }

  /** Reloads when the stored revision moved (outside a batch: a timer, an announcement). */
  async refresh(db: pg.Pool | pg.PoolClient): Promise<boolean> {
    const r = await db.query<{ revision: string }>('select revision from price_book_state');
    if (Number(r.rows[0]?.revision ?? 0) === this.revision) return false;
    await this.load(db);
    return true;
  }

  /**
   * Inside a batch transaction, before pricing its events: takes the revision row `for share` (a price writer
   * then waits for this batch) and reloads when it moved. Costs stored by the batch are the book's at commit.
   */
  async lockForBatch(client: pg.PoolClient): Promise<number> {
    const rev = await lockPriceRevision(client);
    if (rev !== this.revision) await this.load(client);
    return this.revision;
  }

  /** The versions of the book entry an event's (provider, model) is priced by: exact, then alias, then pattern. */
  private resolve(provider: string, model: string): { versions: PriceVersion[]; via?: PriceAlias } | null {
    const p = bookProvider(provider);
    const exact = this.byModel.get(keyOf(p, model)) ?? this.byModel.get(keyOf(p, `${p}/${model}`));
    if (exact) return { versions: exact };
    const alias = this.exactAliases.get(model) ?? this.patterns.find((x) => x.re.test(model))?.alias;
    if (!alias) return null;
    const target = this.byModel.get(keyOf(bookProvider(alias.provider), alias.model));
    return target ? { versions: target, via: alias } : null;
  }

  /**
   * The version in force at `at` (ms): the latest that started at or before it. Before a model's first version
   * the first one applies (a price is taken to have held until its first recorded change).
   */
  versionAt(provider: string, model: string, at: number): { version: PriceVersion; via?: PriceAlias } | null {
    const r = this.resolve(provider, model);
    if (!r || !r.versions.length) return null;
    let v = r.versions[0]!;
    for (const x of r.versions) if (x.effectiveFrom <= at) v = x;
    return { version: v, ...(r.via ? { via: r.via } : {}) };
  }

  /** The cost of one request at its time, or null when no price is known for its model (PRICE_UNKNOWN). */
  cost(llm: LlmUsage, at: number, compute?: { gpu_seconds: number; cpu_seconds: number }): PricedCost | null {
    const r = this.versionAt(llm.provider, llm.model_name, at);
    if (!r) return null;
    return {
      microUsd: priceRequest(r.version, llm, compute),
      version: r.version.version,
      ...(r.via ? { pricedAs: { provider: r.version.provider, model: r.version.model } } : {}),
    };
  }

  /** Whether some provider's entry, or an alias, prices this model name. */
  pricesModel(model: string): boolean {
    if (this.exactAliases.has(model) || this.patterns.some((x) => x.re.test(model))) return true;
    for (const versions of this.byModel.values()) {
      const m = versions[0]!.model;
      if (m === model || m.endsWith(`/${model}`)) return true;
    }
    return false;
  }

  get size(): number {
    return this.byModel.size;
  }
}

const keyOf = (provider: string, model: string) => `${provider}\u0000${model}`;

export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/** The instant an event's cost is priced at: its attribution instant, coalesce(ended_at, started_at). */
export function attributionInstant(job: { started_at: string; ended_at?: string | null | undefined }): number {
  return Date.parse(job.ended_at ?? job.started_at);
}
