import type { LlmUsage } from '../protocol/mod.js';

/**
 * Model providers' usage blocks mapped onto the event's token fields, each token counted once: `tokens_in`
 * is every input token (cache reads and writes included), `tokens_out` every output token (reasoning included).
 */

type Count = number | null | undefined;
const n = (v: Count): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.trunc(v) : 0);

function withOptional(base: LlmUsage, extra: { cached?: number; cacheWrite?: number; reasoning?: number }): LlmUsage {
  if (extra.cached) base.tokens_cached_in = extra.cached;
  if (extra.cacheWrite) base.tokens_cache_write = extra.cacheWrite;
  if (extra.reasoning) base.tokens_reasoning = extra.reasoning;
  return base;
}

/** OpenAI Chat Completions: prompt_tokens already include cached_tokens; completion_tokens include reasoning. */
export interface OpenAIChatUsage {
  prompt_tokens?: Count;
  completion_tokens?: Count;
  prompt_tokens_details?: { cached_tokens?: Count } | null;
  completion_tokens_details?: { reasoning_tokens?: Count } | null;
}

export function fromOpenAIChat(model: string, provider: string, u: OpenAIChatUsage): LlmUsage {
  return withOptional(
    { model_name: model, provider, tokens_in: n(u.prompt_tokens), tokens_out: n(u.completion_tokens) },
    { cached: n(u.prompt_tokens_details?.cached_tokens), reasoning: n(u.completion_tokens_details?.reasoning_tokens) },
  );
}

/** OpenAI Responses: input_tokens include cached_tokens; output_tokens include reasoning_tokens. */
export interface OpenAIResponsesUsage {
  input_tokens?: Count;
  output_tokens?: Count;
  input_tokens_details?: { cached_tokens?: Count } | null;
  output_tokens_details?: { reasoning_tokens?: Count } | null;
}

export function fromOpenAIResponses(model: string, provider: string, u: OpenAIResponsesUsage): LlmUsage {
  return withOptional(
    { model_name: model, provider, tokens_in: n(u.input_tokens), tokens_out: n(u.output_tokens) },
    { cached: n(u.input_tokens_details?.cached_tokens), reasoning: n(u.output_tokens_details?.reasoning_tokens) },
  );
}

/** Anthropic Messages: input_tokens EXCLUDE cache reads and cache writes, which are reported apart — add them in. */
export interface AnthropicUsage {
  input_tokens?: Count;
  output_tokens?: Count;
  cache_read_input_tokens?: Count;
  cache_creation_input_tokens?: Count;
}

export function fromAnthropic(model: string, provider: string, u: AnthropicUsage): LlmUsage {
  const read = n(u.cache_read_input_tokens);
  const write = n(u.cache_creation_input_tokens);
  return withOptional(
    { model_name: model, provider, tokens_in: n(u.input_tokens) + read + write, tokens_out: n(u.output_tokens) },
    { cached: read, cacheWrite: write },
  );
}
