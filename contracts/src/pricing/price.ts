import type { LlmUsage } from '../types/usage.js';
import type { AttoPerToken } from './units.js';

/** Per-token prices in atto-USD (units.ts); null = none of its own (cache tokens cost input, reasoning output). */
export interface TokenPrices {
  input: AttoPerToken;
  output: AttoPerToken;
  cacheRead: AttoPerToken | null;
  cacheWrite: AttoPerToken | null;
  reasoning: AttoPerToken | null;
}

/** Prices that apply when a request's input tokens exceed `aboveInputTokens` (long-context pricing). */
export interface PriceTier extends Partial<TokenPrices> {
  aboveInputTokens: number;
}

/** One dated version of a model's price. */
export interface PriceVersion extends TokenPrices {
  provider: string;
  model: string;
  version: number;
  /** ms since epoch */
  effectiveFrom: number;
  effectiveTo: number | null;
  /** 'litellm' (synced) or 'manual'. */
  source: string;
  tiers: PriceTier[];
  /** Compute, for models priced by the second (local models): integer micro-USD per second. */
  gpuSecond: bigint;
  cpuSecond: bigint;
}

const int = (v: number | undefined): bigint => BigInt(Math.max(0, Math.trunc(v ?? 0)));
const min = (a: bigint, b: bigint) => (a < b ? a : b);

/**
 * The cost of one request in integer micro-USD. Token rule (OpenTelemetry's, the event's): `tokens_in` holds
 * every input token, cache reads and writes included; `tokens_out` every output token, reasoning included — so
 * each token is priced exactly once: uncached input at the input price, cache reads and writes at theirs,
 * reasoning at its own price (or the output price), the rest of the output at the output price. A tier whose
 * threshold the input exceeds prices the whole request (as providers bill long prompts). Rounded half up,
 * once, from the exact atto-USD total.
 */
export function priceRequest(p: PriceVersion, llm: LlmUsage, compute: { gpu_seconds: number; cpu_seconds: number } = { gpu_seconds: 0, cpu_seconds: 0 }): bigint {
  const tin = int(llm.tokens_in);
  const tout = int(llm.tokens_out);
  const read = min(int(llm.tokens_cached_in), tin);
  const write = min(int(llm.tokens_cache_write), tin - read);
  const reasoning = min(int(llm.tokens_reasoning), tout);
  const tier = [...p.tiers].filter((t) => Number(tin) > t.aboveInputTokens).sort((a, b) => b.aboveInputTokens - a.aboveInputTokens)[0];
  const pick = <K extends keyof TokenPrices>(k: K): TokenPrices[K] => (tier && tier[k] !== undefined && tier[k] !== null ? (tier[k] as TokenPrices[K]) : p[k]);
  const input = pick('input');
  const output = pick('output');
  const attoTokens =
    (tin - read - write) * input +
    read * (pick('cacheRead') ?? input) +
    write * (pick('cacheWrite') ?? input) +
    (tout - reasoning) * output +
    reasoning * (pick('reasoning') ?? output);
  // compute: micro-USD per second × seconds in micro-units = pico-USD (exact for the schema's 6 decimals)
  const picoCompute = secondsMicro(compute.gpu_seconds) * p.gpuSecond + secondsMicro(compute.cpu_seconds) * p.cpuSecond;
  const atto = attoTokens + picoCompute * 1_000_000n;
  return (atto + 500_000_000_000n) / 1_000_000_000_000n;
}

function secondsMicro(s: number): bigint {
  if (!Number.isFinite(s) || s <= 0) return 0n;
  return BigInt(Math.round(s * 1e6));
}
