import type { FastifyInstance } from 'fastify';
import { listCurrentPrices, listPriceAliases, listPriceChanges, removePriceAlias, setModelPrice, setPriceAlias, KachingError, type PriceInput } from '@kaching/contracts';
import type { ApiContext } from '../context.js';
import { anyObject, dateTime, ok } from '../schemas.js';

const R = { auth: 'read', cache: true } as const;
const OP = { auth: 'operator' } as const;
const microUsd = { type: ['integer', 'string'], pattern: '^[0-9]{1,18}$', minimum: 0, description: 'integer micro-USD per 1M tokens (per second for compute)' } as const;
const optionalMicroUsd = { ...microUsd, type: ['integer', 'string', 'null'], description: 'null: no price of its own (cache tokens cost input, reasoning output)' } as const;
const modelName = { type: 'string', minLength: 1, maxLength: 200 } as const;
const provider = { type: 'string', minLength: 1, maxLength: 100 } as const;

/** The price book: installation-wide (every org reads it; operators write it). */
export function priceRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: { at?: string } }>(
    '/v1/prices',
    {
      config: R,
      schema: {
        summary: 'The price version of every model in force now, or at `at` (micro-USD per 1M tokens)', tags: ['prices'],
        querystring: { type: 'object', properties: { at: dateTime }, additionalProperties: false },
        response: ok({ type: 'object', properties: { items: { type: 'array' } } }),
      },
    },
    async (req) => ({ items: await listCurrentPrices(ctx.pool, req.query.at ? new Date(req.query.at) : ctx.now()) }),
  );

  app.post<{ Body: PriceInput }>(
    '/v1/prices',
    {
      config: OP,
      schema: {
        summary: 'Add a model price version by hand (installation-wide; operator scope)', tags: ['prices'],
        body: {
          type: 'object', required: ['provider', 'model_name'], additionalProperties: false,
          properties: {
            provider, model_name: modelName, effective_from: dateTime,
            input_per_1m_micro_usd: microUsd, output_per_1m_micro_usd: microUsd, cached_input_per_1m_micro_usd: optionalMicroUsd,
            cache_write_per_1m_micro_usd: optionalMicroUsd, reasoning_per_1m_micro_usd: optionalMicroUsd, gpu_second_micro_usd: microUsd, cpu_second_micro_usd: microUsd,
            tiers: {
              type: 'array', maxItems: 10,
              items: {
                type: 'object', required: ['above_input_tokens'], additionalProperties: false,
                properties: { above_input_tokens: { type: 'integer', minimum: 0 }, input: microUsd, output: microUsd, cache_read: microUsd, cache_write: microUsd },
              },
            },
          },
        },
        response: { 201: { description: 'Created', ...anyObject } },
      },
    },
    async (req, reply) => reply.code(201).send(await setModelPrice(ctx.pool, req.body, ctx.now())),
  );

  app.get<{ Querystring: { since?: string; until?: string; provider?: string; model?: string; after?: string; limit?: number } }>(
    '/v1/prices/changes',
    {
      config: R,
      schema: {
        summary: 'The price change log: models added and removed, each field changed with old and new value (USD per token, LiteLLM field names) and when it takes effect',
        tags: ['prices'],
        querystring: {
          type: 'object', additionalProperties: false,
          properties: {
            since: dateTime, until: dateTime, provider, model: modelName,
            after: { type: 'string', pattern: '^[0-9]{1,18}$', description: 'change_id of the last change of the previous page' },
            limit: { type: 'integer', minimum: 1, maximum: 10_000, default: 1000 },
          },
        },
        response: ok({ type: 'object', properties: { items: { type: 'array' }, next_after: { type: ['string', 'null'] } } }),
      },
    },
    async (req) => {
      const q = req.query;
      const limit = q.limit ?? 1000;
      const items = await listPriceChanges(ctx.pool, {
        ...(q.since ? { since: new Date(q.since) } : {}), ...(q.until ? { until: new Date(q.until) } : {}),
        ...(q.provider ? { provider: q.provider } : {}), ...(q.model ? { model: q.model } : {}), ...(q.after ? { after: q.after } : {}), limit,
      });
      return { items, next_after: items.length === limit ? items[items.length - 1]!.change_id : null };
    },
  );

  app.get(
    '/v1/prices/aliases',
    { config: R, schema: { summary: 'Explicit model aliases and patterns (* = any characters)', tags: ['prices'], response: ok({ type: 'object', properties: { items: { type: 'array' } } }) } },
    async () => ({ items: await listPriceAliases(ctx.pool) }),
  );

  app.put<{ Params: { alias: string }; Body: { provider: string; model_name: string } }>(
    '/v1/prices/aliases/:alias',
    {
      config: OP,
      schema: {
        summary: 'Price a model name, or names matching a pattern with *, as a priced model (operator scope)', tags: ['prices'],
        params: { type: 'object', required: ['alias'], properties: { alias: modelName }, additionalProperties: false },
        body: { type: 'object', required: ['provider', 'model_name'], properties: { provider, model_name: modelName }, additionalProperties: false },
        response: ok(anyObject),
      },
    },
    async (req) => setPriceAlias(ctx.pool, { alias: req.params.alias, ...req.body }),
  );

  app.delete<{ Params: { alias: string } }>(
    '/v1/prices/aliases/:alias',
    {
      config: OP,
      schema: {
        summary: 'Remove a model alias (operator scope)', tags: ['prices'],
        params: { type: 'object', required: ['alias'], properties: { alias: modelName }, additionalProperties: false },
        response: ok(anyObject),
      },
    },
    async (req) => {
      if (!(await removePriceAlias(ctx.pool, req.params.alias))) throw new KachingError('NOT_FOUND', { field: 'alias', message: `No alias ${req.params.alias}` });
      return { deleted: true, alias: req.params.alias };
    },
  );
}
