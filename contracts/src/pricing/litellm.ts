import { attoToMicroPerMillion, numberToPlainDecimal, usdPerTokenToAtto, type AttoPerToken } from './units.js';

/**
 * LiteLLM's `model_prices_and_context_window.json`: model name → spec with USD-per-token prices. Of its many
 * price fields the book keeps those that price tokens of a standard request: input, output, cache read,
 * cache write (creation), reasoning, and their `_above_<N>k_tokens` long-prompt tiers. (Priority, batch, flex,
 * audio, image and per-second prices are not part of a usage event.)
 */
export const LITELLM_FIELDS = ['input_cost_per_token', 'output_cost_per_token', 'cache_read_input_token_cost', 'cache_creation_input_token_cost', 'output_cost_per_reasoning_token'] as const;
const TIERED = new Set<string>(LITELLM_FIELDS.slice(0, 4));
const TIER_FIELD = /^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|cache_creation_input_token_cost)_above_(\d+)k_tokens$/;

export interface LiteLlmEntry {
  provider: string;
  model: string;
  /** The tracked fields as the file wrote them (USD per token, decimal string). */
  fields: Record<string, string>;
}

/** The entries of a LiteLLM price file that price tokens (an input or output price per token), in file order. */
export function parseLiteLlm(json: unknown): LiteLlmEntry[] {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new TypeError('a LiteLLM price file is a JSON object of model name → spec');
  const out: LiteLlmEntry[] = [];
  for (const [model, spec] of Object.entries(json as Record<string, unknown>)) {
    if (model === 'sample_spec' || typeof spec !== 'object' || spec === null) continue;
    const s = spec as Record<string, unknown>;
    if (typeof s.input_cost_per_token !== 'number' && typeof s.output_cost_per_token !== 'number') continue;
    const provider = typeof s.litellm_provider === 'string' ? s.litellm_provider.toLowerCase() : 'unknown';
    const fields: Record<string, string> = {};
    for (const [k, v] of Object.entries(s)) {
      if (typeof v !== 'number') continue;
      if ((LITELLM_FIELDS as readonly string[]).includes(k) || TIER_FIELD.test(k)) fields[k] = numberToPlainDecimal(v);
    }
    out.push({ provider, model, fields });
  }
  return out;
}

/** A price version's prices from an entry's fields (atto-USD per token; tiers as stored: micro-USD per 1M tokens). */
export function entryPrices(fields: Record<string, string>): {
  input: AttoPerToken;
  output: AttoPerToken;
  cacheRead: AttoPerToken | null;
  cacheWrite: AttoPerToken | null;
  reasoning: AttoPerToken | null;
  tiers: { above_input_tokens: number; input?: string; output?: string; cache_read?: string; cache_write?: string }[];
} {
  const p = (k: string) => (fields[k] === undefined ? null : usdPerTokenToAtto(fields[k]!));
  const tiers = new Map<number, Record<string, string>>();
  const name: Record<string, string> = {
    input_cost_per_token: 'input', output_cost_per_token: 'output', cache_read_input_token_cost: 'cache_read', cache_creation_input_token_cost: 'cache_write',
  };
  for (const [k, v] of Object.entries(fields)) {
    const m = TIER_FIELD.exec(k);
    if (!m || !TIERED.has(m[1]!)) continue;
    const above = Number(m[2]) * 1000;
    tiers.set(above, { ...tiers.get(above), [name[m[1]!]!]: attoToMicroPerMillion(usdPerTokenToAtto(v)) });
  }
  return {
    input: p('input_cost_per_token') ?? 0n,
    output: p('output_cost_per_token') ?? 0n,
    cacheRead: p('cache_read_input_token_cost'),
    cacheWrite: p('cache_creation_input_token_cost'),
    reasoning: p('output_cost_per_reasoning_token'),
    tiers: [...tiers.entries()].sort((a, b) => a[0] - b[0]).map(([above, t]) => ({ above_input_tokens: above, ...t })),
  };
}
