// JSON Schema fragments shared by the route definitions (they feed validation and /openapi.json).

export const uuid = { type: 'string', format: 'uuid' } as const;
export const dateTime = { type: 'string', format: 'date-time' } as const;
export const date = { type: 'string', format: 'date' } as const;
export const decimal = { type: 'string', description: 'Exact decimal as a string' } as const;
export const period = { type: 'string', enum: ['daily', 'weekly', 'monthly', 'rolling_30d'] } as const;

export const pageQuery = {
  limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100, description: 'Page size' },
  cursor: { type: 'string', maxLength: 500, description: 'next_cursor of the previous page' },
} as const;

export const anyObject = { type: 'object', additionalProperties: true } as const;

export function page(item: Record<string, unknown> = anyObject, extra: Record<string, unknown> = {}) {
  return {
    type: 'object',
    required: ['items', 'next_cursor'],
    properties: { ...extra, items: { type: 'array', items: item }, next_cursor: { type: ['string', 'null'] } },
  };
}

export const idParams = { type: 'object', required: ['id'], properties: { id: uuid }, additionalProperties: false } as const;

export function ok(schema: Record<string, unknown>, description = 'OK') {
  return { 200: { description, ...schema } };
}
