import type { KachingAgent } from '../agent.js';
import { fromOpenAIChat, fromOpenAIResponses, type OpenAIChatUsage, type OpenAIResponsesUsage } from './usage.js';
import { observeStream, patch, recordCall, watch, type Create, type WrapOptions } from './record.js';

/**
 * Meters an official `openai` client (v4+): every `chat.completions.create` and `responses.create` — plain
 * and streaming, and the SDK's own helpers built on them (`.stream()`, `.parse()`) — records its token usage
 * (cached input and reasoning tokens included) through `agent`. The client is patched in place and returned;
 * what the caller receives is unchanged, and a failing or unreachable KACHING never affects the call.
 *
 * Streaming chat completions report usage only when asked (`stream_options.include_usage`): the wrapper asks,
 * and hides the extra usage-only chunk (and the `usage` member) from a caller who did not.
 */
export function wrapOpenAI<C extends object>(client: C, agent: KachingAgent, opts: WrapOptions = {}): C {
  const c = client as { chat?: { completions?: { create?: Create } }; responses?: { create?: Create } };
  const provider = opts.provider ?? 'openai';
  patch(c.chat?.completions, (orig) =>
    function (this: unknown, params, options) {
      const startedAt = new Date();
      const streaming = params?.stream === true;
      const so = params?.stream_options as { include_usage?: boolean } | undefined;
      const inject = streaming && so?.include_usage !== true;
      const sent = inject ? { ...params, stream_options: { ...so, include_usage: true } } : params;
      const result = orig.call(this, sent, options);
      const model = String(params?.model ?? '');
      watch(result, (value) => {
        if (!streaming) {
          const r = value as { model?: string; usage?: OpenAIChatUsage };
          if (r?.usage) recordCall(agent, opts, { llm: fromOpenAIChat(r.model ?? model, provider, r.usage), startedAt, ok: true });
          return;
        }
        let usage: OpenAIChatUsage | undefined;
        let seenModel = model;
        observeStream<{ model?: string; usage?: OpenAIChatUsage | null; choices?: unknown[] }>(
          value as object,
          (chunk) => {
            if (chunk.model) seenModel = chunk.model;
            if (chunk.usage) usage = chunk.usage;
            if (inject && 'usage' in chunk && (chunk.choices?.length ?? 0) > 0) delete chunk.usage;
          },
          (ok) => usage && recordCall(agent, opts, { llm: fromOpenAIChat(seenModel, provider, usage), startedAt, ok }),
          (chunk) => inject && !!chunk.usage && (chunk.choices?.length ?? 0) === 0,
        );
      });
      return result;
    },
  );
  patch(c.responses, (orig) =>
    function (this: unknown, params, options) {
      const startedAt = new Date();
      const streaming = params?.stream === true;
      const result = orig.call(this, params, options);
      const model = String(params?.model ?? '');
      watch(result, (value) => {
        if (!streaming) {
          const r = value as { model?: string; usage?: OpenAIResponsesUsage };
          if (r?.usage) recordCall(agent, opts, { llm: fromOpenAIResponses(r.model ?? model, provider, r.usage), startedAt, ok: true });
          return;
        }
        let done: { model?: string; usage?: OpenAIResponsesUsage } | undefined;
        observeStream<{ type?: string; response?: { model?: string; usage?: OpenAIResponsesUsage } }>(
          value as object,
          (ev) => {
            if ((ev.type === 'response.completed' || ev.type === 'response.incomplete') && ev.response?.usage) done = ev.response;
          },
          (ok) => done?.usage && recordCall(agent, opts, { llm: fromOpenAIResponses(done.model ?? model, provider, done.usage), startedAt, ok }),
        );
      });
      return result;
    },
  );
  return client;
}
