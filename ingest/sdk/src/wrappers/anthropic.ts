import type { KachingAgent } from '../agent.js';
import { fromAnthropic, type AnthropicUsage } from './usage.js';
import { observeStream, patch, recordCall, watch, type Create, type WrapOptions } from './record.js';

/**
 * Meters an official `@anthropic-ai/sdk` client: every `messages.create` — plain, streaming, and the
 * `messages.stream()` helper, which is built on it — records its token usage through `agent`. Anthropic reports
 * cache reads and cache writes apart from `input_tokens`; the event counts them in `tokens_in` and names them
 * (`tokens_cached_in`, `tokens_cache_write`), so each token is priced once. The client is patched in place.
 */
export function wrapAnthropic<C extends object>(client: C, agent: KachingAgent, opts: WrapOptions = {}): C {
  const c = client as { messages?: { create?: Create } };
  const provider = opts.provider ?? 'anthropic';
  patch(c.messages, (orig) =>
    function (this: unknown, params, options) {
      const startedAt = new Date();
      const streaming = params?.stream === true;
      const result = orig.call(this, params, options);
      const model = String(params?.model ?? '');
      watch(result, (value) => {
        if (!streaming) {
          const m = value as { model?: string; usage?: AnthropicUsage };
          if (m?.usage) recordCall(agent, opts, { llm: fromAnthropic(m.model ?? model, provider, m.usage), startedAt, ok: true });
          return;
        }
        // message_start carries the input side; message_delta the (cumulative) output, and in newer API versions
        // the input counts again: the last value of each field wins
        const usage: AnthropicUsage = {};
        let seenModel = model;
        observeStream<{ type?: string; message?: { model?: string; usage?: AnthropicUsage }; usage?: AnthropicUsage }>(
          value as object,
          (ev) => {
            const u = ev.type === 'message_start' ? ev.message?.usage : ev.type === 'message_delta' ? ev.usage : undefined;
            if (ev.type === 'message_start' && ev.message?.model) seenModel = ev.message.model;
            if (u) for (const [k, v] of Object.entries(u)) if (typeof v === 'number') (usage as Record<string, number>)[k] = v;
          },
          (ok) => Object.keys(usage).length && recordCall(agent, opts, { llm: fromAnthropic(seenModel, provider, usage), startedAt, ok }),
        );
      });
      return result;
    },
  );
  return client;
}
