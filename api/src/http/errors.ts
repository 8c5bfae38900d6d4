import type { FastifyError, FastifyInstance } from 'fastify';
import { KachingError, isKachingError, type ErrorCode } from '@kaching/contracts';

const KEYWORD_CODES: Record<string, ErrorCode> = {
  required: 'FIELD_REQUIRED',
  additionalProperties: 'FIELD_UNKNOWN',
  type: 'FIELD_TYPE',
  format: 'FIELD_FORMAT',
  pattern: 'FIELD_FORMAT',
  enum: 'FIELD_ENUM',
  const: 'FIELD_ENUM',
  minimum: 'FIELD_RANGE',
  maximum: 'FIELD_RANGE',
  exclusiveMinimum: 'FIELD_RANGE',
  exclusiveMaximum: 'FIELD_RANGE',
  minLength: 'FIELD_LENGTH',
  maxLength: 'FIELD_LENGTH',
  minItems: 'FIELD_LENGTH',
  maxItems: 'FIELD_LENGTH',
  minProperties: 'FIELD_LENGTH',
  maxProperties: 'FIELD_LENGTH',
};

interface AjvIssue {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/** Turns Fastify's schema-validation error into the catalogue's shape: code, field, rule. */
export function fromValidation(issues: AjvIssue[]): KachingError {
  const v = issues[0]!;
  const code = KEYWORD_CODES[v.keyword] ?? 'FIELD_FORMAT';
  const path = v.instancePath.replace(/^\//, '').split('/').filter(Boolean);
  if (v.keyword === 'required') path.push(String(v.params.missingProperty));
  if (v.keyword === 'additionalProperties') path.push(String(v.params.additionalProperty));
  const ruleParam = v.params.format ?? v.params.limit ?? v.params.type ?? v.params.pattern ?? (v.params.allowedValues as unknown[] | undefined)?.join('|');
  const rule = ruleParam === undefined ? v.keyword : `${v.keyword}:${String(ruleParam)}`;
  const field = path.join('.') || undefined;
  return new KachingError(code, { ...(field ? { field } : {}), rule, message: `${field ?? 'request'} ${v.message ?? 'is invalid'}` });
}

/** Maps anything thrown in a handler (ours, Fastify's, Postgres') to a catalogue error. */
export function toKachingError(err: unknown): KachingError {
  if (isKachingError(err)) return err;
  const e = err as FastifyError & { validation?: AjvIssue[]; code?: string; statusCode?: number };
  if (e?.validation?.length) return fromValidation(e.validation);
  switch (e?.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new KachingError('UNSUPPORTED_MEDIA_TYPE');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new KachingError('BODY_TOO_LARGE');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new KachingError('MALFORMED_JSON');
    // Postgres: a row-level-security check failing means "not yours" — answer as if it did not exist
    case '42501':
      return new KachingError('NOT_FOUND');
    case '23505':
      return new KachingError('CONFLICT');
    case '23503':
      return new KachingError('NOT_FOUND', { message: 'A referenced resource does not exist (or is not visible to this organisation)' });
    case '23514':
      return new KachingError('FIELD_RANGE', { message: 'A value breaks a constraint' });
    case '22P02':
    case '22007':
    case '22008':
      return new KachingError('FIELD_FORMAT', { message: 'A value has the wrong format' });
    case '22003':
      return new KachingError('FIELD_RANGE');
    case 'ECONNREFUSED':
    case '57P01':
    case '53300':
      return new KachingError('DATABASE_UNAVAILABLE');
  }
  if (e instanceof SyntaxError && e.statusCode === 400) return new KachingError('MALFORMED_JSON');
  return new KachingError('INTERNAL', { cause: err });
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const k = toKachingError(err);
    if (k.status === 503) req.log.warn({ code: k.code, cause: (k.cause as Error | undefined)?.message }, k.message);
    else if (k.status >= 500) req.log.error({ err }, 'request failed');
    if (k.retryAfterS !== undefined) reply.header('retry-after', String(k.retryAfterS));
    void reply.code(k.status).header('cache-control', 'no-store').send(k.toBody());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(new KachingError('NOT_FOUND', { message: `No route ${req.method} ${req.url.split('?')[0]}` }).toBody());
  });
}
