import type pg from 'pg';
import type { LlmUsage } from '@kaching/contracts';
import { toMicro } from './decimal.js';

export interface ModelPrice {
  provider: string;
  model_name: string;
  version: number;
  effective_from: string;
  input_per_1m_micro_usd: number;
  output_per_1m_micro_usd: number;
  cached_input_per_1m_micro_usd: number;
  reasoning_per_1m_micro_usd: number;
  gpu_second_micro_usd: number;
  cpu_second_micro_usd: number;
}

export type PriceInput = Omit<ModelPrice, 'version' | 'effective_from' | 'input_per_1m_micro_usd' | 'output_per_1m_micro_usd' | 'cached_input_per_1m_micro_usd' | 'reasoning_per_1m_micro_usd' | 'gpu_second_micro_usd' | 'cpu_second_micro_usd'> &
  Partial<Omit<ModelPrice, 'provider' | 'model_name' | 'version'>>;

/** Adds the next version of a model's price (versions are never edited: past costs keep theirs). */
export async function setModelPrice(pool: pg.Pool | pg.PoolClient, p: PriceInput): Promise<ModelPrice> {
  const r = await pool.query<ModelPrice>(
    `insert into model_price (provider, model_name, version, effective_from, input_per_1m_micro_usd, output_per_1m_micro_usd,
       cached_input_per_1m_micro_usd, reasoning_per_1m_micro_usd, gpu_second_micro_usd, cpu_second_micro_usd)
     select $1, $2, coalesce(max(version), 0) + 1, coalesce($3::timestamptz, now()), $4, $5, $6, $7, $8, $9
       from model_price where provider = $1 and model_name = $2
     returning provider, model_name, version, effective_from, input_per_1m_micro_usd::float8 as input_per_1m_micro_usd,
       output_per_1m_micro_usd::float8 as output_per_1m_micro_usd, cached_input_per_1m_micro_usd::float8 as cached_input_per_1m_micro_usd,
       reasoning_per_1m_micro_usd::float8 as reasoning_per_1m_micro_usd, gpu_second_micro_usd::float8 as gpu_second_micro_usd,
       cpu_second_micro_usd::float8 as cpu_second_micro_usd`,
    [p.provider, p.model_name, p.effective_from ?? null, p.input_per_1m_micro_usd ?? 0, p.output_per_1m_micro_usd ?? 0,
      p.cached_input_per_1m_micro_usd ?? 0, p.reasoning_per_1m_micro_usd ?? 0, p.gpu_second_micro_usd ?? 0, p.cpu_second_micro_usd ?? 0],
  );
  return r.rows[0]!;
}

interface PriceRow {
  version: number;
  from: number;
  input: bigint;
  output: bigint;
  cached: bigint;
  reasoning: bigint;
  gpu: bigint;
  cpu: bigint;
}

/** In-memory price table (reloaded on a 'price' config change); versions newest first per model. */
export class PriceBook {
  private byModel = new Map<string, PriceRow[]>();

  async load(pool: pg.Pool): Promise<void> {
    const r = await pool.query<Record<string, string>>(
      `select provider, model_name, version, extract(epoch from effective_from) * 1000 as from_ms, input_per_1m_micro_usd, output_per_1m_micro_usd,
         cached_input_per_1m_micro_usd, reasoning_per_1m_micro_usd, gpu_second_micro_usd, cpu_second_micro_usd
       from model_price order by version desc`,
    );
    const m = new Map<string, PriceRow[]>();
    for (const x of r.rows) {
      const key = `${x.provider}\u0000${x.model_name}`;
      const list = m.get(key) ?? [];
      list.push({
        version: Number(x.version), from: Number(x.from_ms), input: BigInt(x.input_per_1m_micro_usd!), output: BigInt(x.output_per_1m_micro_usd!),
        cached: BigInt(x.cached_input_per_1m_micro_usd!), reasoning: BigInt(x.reasoning_per_1m_micro_usd!), gpu: BigInt(x.gpu_second_micro_usd!),
        cpu: BigInt(x.cpu_second_micro_usd!),
      });
      m.set(key, list);
    }
    this.byModel = m;
  }

  /** Cost of one event in integer micro-USD with the price version used; null when no price is known. */
  cost(llm: LlmUsage, at: number, compute: { gpu_seconds: number; cpu_seconds: number }): { microUsd: bigint; version: number } | null {
    const list = this.byModel.get(`${llm.provider}\u0000${llm.model_name}`);
    const p = list?.find((x) => x.from <= at) ?? list?.[list.length - 1];
    if (!p) return null;
    return { microUsd: computeCost(p, llm, compute), version: p.version };
  }
}

/** Rounds half up from micro-USD·tokens/1M; reasoning tokens are part of tokens_out, priced apart when they have a price. */
export function computeCost(p: Omit<PriceRow, 'version' | 'from'>, llm: LlmUsage, compute: { gpu_seconds: number; cpu_seconds: number }): bigint {
  const tin = BigInt(Math.max(0, Math.trunc(llm.tokens_in)));
  const tout = BigInt(Math.max(0, Math.trunc(llm.tokens_out)));
  const cached = min(BigInt(Math.max(0, Math.trunc(llm.tokens_cached_in ?? 0))), tin);
  const reasoning = min(BigInt(Math.max(0, Math.trunc(llm.tokens_reasoning ?? 0))), tout);
  const reasoningPrice = p.reasoning > 0n ? p.reasoning : p.output;
  const tokenPart = (tin - cached) * p.input + cached * p.cached + (tout - reasoning) * p.output + reasoning * reasoningPrice; // µUSD per 1M tokens
  // compute: µUSD per second × seconds (seconds in micro-units)
  const computePart = toMicro(compute.gpu_seconds) * p.gpu + toMicro(compute.cpu_seconds) * p.cpu; // µUSD·1e6
  const total = tokenPart + computePart; // both are µUSD × 1e6
  return (total + 500_000n) / 1_000_000n;
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);
