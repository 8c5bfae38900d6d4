import { describe, expect, it } from 'vitest';
import { genAiUsage, otlpToUsageEvents } from '../src/pipeline/otlp.js';

const attrs = (o: Record<string, string | number>) => new Map<string, string | number | boolean>(Object.entries(o));
const kv = (o: Record<string, string | number>) =>
  Object.entries(o).map(([key, v]) => ({ key, value: typeof v === 'string' ? { stringValue: v } : Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v } }));

describe('GenAI attributes → event tokens', () => {
  it('current names: cache reads/writes stay inside tokens_in, reasoning inside tokens_out; the response model wins', () => {
    expect(
      genAiUsage(
        attrs({
          'gen_ai.provider.name': 'aws.bedrock',
          'gen_ai.request.model': 'req',
          'gen_ai.response.model': 'resp',
          'gen_ai.usage.input_tokens': 1000,
          'gen_ai.usage.cache_read.input_tokens': 600,
          'gen_ai.usage.cache_creation.input_tokens': 100,
          'gen_ai.usage.output_tokens': 50,
          'gen_ai.usage.reasoning.output_tokens': 20,
        }),
      ),
    ).toEqual({ model_name: 'resp', provider: 'aws.bedrock', tokens_in: 1000, tokens_out: 50, tokens_cached_in: 600, tokens_cache_write: 100, tokens_reasoning: 20 });
  });

  it('deprecated and in-the-wild names; renamed gen_ai.system values map to the current provider names', () => {
    expect(
      genAiUsage(
        attrs({
          'gen_ai.system': 'az.ai.openai',
          'gen_ai.request.model': 'gpt-4o',
          'gen_ai.usage.prompt_tokens': '300',
          'gen_ai.usage.completion_tokens': 40,
          'gen_ai.usage.cache_read_input_tokens': 100,
          'gen_ai.usage.cache_creation_input_tokens': 50,
          'gen_ai.usage.reasoning_tokens': 10,
        }),
      ),
    ).toEqual({ model_name: 'gpt-4o', provider: 'azure.ai.openai', tokens_in: 300, tokens_out: 40, tokens_cached_in: 100, tokens_cache_write: 50, tokens_reasoning: 10 });
    expect(genAiUsage(attrs({ 'gen_ai.system': 'vertex_ai', 'gen_ai.usage.output_tokens': 1 }))?.provider).toBe('gcp.vertex_ai');
    // The current name wins over the deprecated one when both are sent.
    expect(genAiUsage(attrs({ 'gen_ai.usage.input_tokens': 7, 'gen_ai.usage.prompt_tokens': 9 }))?.tokens_in).toBe(7);
  });

  it('parts larger than the total were counted outside it (raw Anthropic usage): they are added, so each token is priced once', () => {
    expect(
      genAiUsage(attrs({ 'gen_ai.usage.input_tokens': 20, 'gen_ai.usage.cache_read_input_tokens': 500, 'gen_ai.usage.cache_creation_input_tokens': 80, 'gen_ai.usage.output_tokens': 5, 'gen_ai.usage.reasoning_tokens': 9 })),
    ).toMatchObject({ tokens_in: 600, tokens_cached_in: 500, tokens_cache_write: 80, tokens_out: 14, tokens_reasoning: 9 });
  });

  it('a token count that is not a non-negative integer names the attribute', () => {
    expect(() => genAiUsage(attrs({ 'gen_ai.usage.input_tokens': 1.5 }))).toThrow(expect.objectContaining({ code: 'FIELD_TYPE', field: 'gen_ai.usage.input_tokens' }));
    expect(() => genAiUsage(attrs({ 'gen_ai.usage.output_tokens': 'many' }))).toThrow(expect.objectContaining({ field: 'gen_ai.usage.output_tokens' }));
    expect(genAiUsage(attrs({ 'gen_ai.request.model': 'x' }))).toBeUndefined();
  });
});

describe('spans → events', () => {
  const ns = String(BigInt(Date.parse('2026-12-01T10:00:00Z')) * 1_000_000n);
  const span = (spanId: string, a: Record<string, string | number>, kind = 3) => ({ traceId: '5b8efff798038103d269b633813fc60c', spanId, kind, startTimeUnixNano: ns, attributes: kv(a) });

  it('maps GenAI spans, ignores other and in-process agent spans, and rejects bad ones with the span named', () => {
    const body = {
      resourceSpans: [
        {
          resource: { attributes: kv({ 'service.name': 'coder' }) },
          scopeSpans: [
            {
              spans: [
                span('00000000000000a1', { 'gen_ai.usage.input_tokens': 10 }),
                span('00000000000000a2', { 'http.route': '/x' }),
                span('00000000000000a3', { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.usage.input_tokens': 10 }, 1),
                span('00000000000000a4', { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.usage.input_tokens': 10 }, 3),
                span('00000000000000a5', { 'gen_ai.usage.input_tokens': -1 }),
                { ...span('0000000000000000', { 'gen_ai.usage.input_tokens': 1 }) },
              ],
            },
          ],
        },
      ],
    };
    const m = otlpToUsageEvents(body, 'dep');
    expect(m.events.map((e) => e.span)).toEqual(['5b8efff798038103d269b633813fc60c/00000000000000a1', '5b8efff798038103d269b633813fc60c/00000000000000a4']);
    expect(m.events[0]!.event).toMatchObject({ agent: { agent_type: 'coder' }, job: { started_at: '2026-12-01T10:00:00.000Z', correlation_id: 'otlp:5b8efff798038103d269b633813fc60c:00000000000000a1' } });
    expect(m.ignoredSpans).toBe(2);
    expect(m.rejected.map((r) => [r.span.slice(-2), r.error.code, r.error.field])).toEqual([
      ['a5', 'FIELD_TYPE', 'gen_ai.usage.input_tokens'],
      ['00', 'FIELD_FORMAT', 'resourceSpans[0].scopeSpans[0].spans[5].spanId'],
    ]);
  });

  it('a request whose structure is not OTLP is refused as a whole', () => {
    expect(() => otlpToUsageEvents({ resourceSpans: {} }, 'dep')).toThrow(expect.objectContaining({ code: 'FIELD_TYPE', field: 'resourceSpans' }));
    expect(() => otlpToUsageEvents([], 'dep')).toThrow(expect.objectContaining({ code: 'FIELD_TYPE', field: 'body' }));
    expect(otlpToUsageEvents({}, 'dep')).toEqual({ events: [], rejected: [], ignoredSpans: 0 });
  });
});
