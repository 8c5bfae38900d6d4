import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { InputError } from '../errors/errors.js';
import type { ErrorCode } from '../errors/catalogue.js';
import type { JobStatusEvent, UsageEvent } from '../types/usage.js';
import type { PolicyDecision } from '../types/decision.js';
import usageSchemaJson from './usage.v1.json' with { type: 'json' };
import jobStatusSchemaJson from './job_status.v1.json' with { type: 'json' };
import policyDecisionSchemaJson from './policy_decision.v1.json' with { type: 'json' };

/** Raw JSON Schemas (draft 2020-12), e.g. for the API's OpenAPI document. Treat as read-only. */
export const usageSchema: Readonly<Record<string, unknown>> = usageSchemaJson;
export const jobStatusSchema: Readonly<Record<string, unknown>> = jobStatusSchemaJson;
export const policyDecisionSchema: Readonly<Record<string, unknown>> = policyDecisionSchemaJson;

/** Ids and names end up in NATS headers, logs and SQL: no control characters (CR/LF would split a header). */
const NO_CONTROL_CHARS = '^[^\\u0000-\\u001f\\u007f]+$';

/** Ids are identity (subjects, Nats-Msg-Id): one spelling only, the canonical lowercase form. */
const LOWER_UUID = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; error: InputError };

// ajv-formats is CJS; under NodeNext its default import may be the module namespace.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (
  ajv: Ajv2020,
  formats: string[],
) => Ajv2020;

// Compiled once at module load: validation sits on the ingest hot path.
// allErrors:false stops at the first failing keyword, so the reported error is deterministic.
const ajv = new Ajv2020({ allErrors: false, strict: true, strictRequired: false, strictNumbers: true, coerceTypes: false, useDefaults: false });
addFormats(ajv, ['date-time', 'uuid']);

const compiled = {
  usage: ajv.compile(structuredClone(usageSchemaJson)),
  job_status: ajv.compile(structuredClone(jobStatusSchemaJson)),
  policy_decision: ajv.compile(structuredClone(policyDecisionSchemaJson)),
};

export function validateUsage(x: unknown): ValidationResult<UsageEvent> {
  return run<UsageEvent>(x, 'kaching.v1.usage', compiled.usage);
}

export function validateJobStatus(x: unknown): ValidationResult<JobStatusEvent> {
  return run<JobStatusEvent>(x, 'kaching.v1.job_status', compiled.job_status);
}

export function validatePolicyDecision(x: unknown): ValidationResult<PolicyDecision> {
  return run<PolicyDecision>(x, 'kaching.v1.policy_decision', compiled.policy_decision);
}

function run<T>(x: unknown, schemaName: string, validate: ValidateFunction): ValidationResult<T> {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) {
    return { ok: false, error: new InputError('FIELD_TYPE', { message: 'The event must be a JSON object', rule: 'type:object' }) };
  }
  const schema = (x as { schema?: unknown }).schema;
  if (schema === undefined) return fail('FIELD_REQUIRED', '`schema` is required', 'schema', 'required');
  if (schema !== schemaName) {
    return fail('SCHEMA_UNKNOWN', `\`schema\` must be "${schemaName}" here`, 'schema', `const:${schemaName}`);
  }
  if (validate(x)) return { ok: true, value: x as T };
  return { ok: false, error: mapAjvError(validate.errors ?? [], x) };
}

function fail(code: ErrorCode, message: string, field: string, rule: string): { ok: false; error: InputError } {
  return { ok: false, error: new InputError(code, { message, field, rule }) };
}

/** `/job/meta/a~1b` → `job.meta.a/b` */
function dotted(pointer: string): string {
  if (pointer === '') return '';
  return pointer
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join('.');
}

function valueAt(data: unknown, pointer: string): unknown {
  if (pointer === '') return data;
  let cur = data;
  for (const raw of pointer.slice(1).split('/')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[raw.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return cur;
}

function join(base: string, child: string): string {
  return base === '' ? child : `${base}.${child}`;
}

/** Maps ajv's first error to a catalogue code, a dotted field path and a `keyword:limit` rule. */
export function mapAjvError(errors: ErrorObject[], data?: unknown): InputError {
  // propertyNames reports the inner failure first; `if` reports after the branch that failed.
  const e = errors.find((x) => x.keyword !== 'if' && x.keyword !== 'propertyNames') ?? errors[0];
  if (!e) return new InputError('FIELD_TYPE', { message: 'The event does not match its schema' });
  const params = e.params as Record<string, unknown>;
  let field = dotted(e.instancePath);
  const at = (f: string) => (f === '' ? 'the event' : `\`${f}\``);
  const propertyName = (e as { propertyName?: unknown }).propertyName;
  if (typeof propertyName === 'string') {
    field = join(field, propertyName);
    if (e.keyword === 'pattern') {
      return new InputError('FIELD_FORMAT', { message: `Key ${at(field)} is not allowed`, field, rule: 'propertyNames.pattern' });
    }
    const rule = `propertyNames.${e.keyword}:${String(params['limit'] ?? '')}`;
    return new InputError('FIELD_LENGTH', { message: `Key ${at(field)} has a bad length`, field, rule });
  }
  switch (e.keyword) {
    case 'required': {
      field = join(field, String(params['missingProperty']));
      return new InputError('FIELD_REQUIRED', { message: `${at(field)} is required`, field, rule: 'required' });
    }
    case 'additionalProperties': {
      field = join(field, String(params['additionalProperty']));
      return new InputError('FIELD_UNKNOWN', {
        message: `${at(field)} is not part of the schema`,
        field,
        rule: 'additionalProperties:false',
      });
    }
    case 'type': {
      const v = valueAt(data, e.instancePath);
      if (typeof v === 'number' && !Number.isFinite(v)) {
        return new InputError('FIELD_RANGE', { message: `${at(field)} must be a finite number`, field, rule: 'finite' });
      }
      return new InputError('FIELD_TYPE', {
        message: `${at(field)} must be of type ${String(params['type'])}`,
        field,
        rule: `type:${String(params['type'])}`,
      });
    }
    case 'format':
      return new InputError('FIELD_FORMAT', {
        message: `${at(field)} must be a valid ${String(params['format'])}`,
        field,
        rule: `format:${String(params['format'])}`,
      });
    case 'pattern':
      if (field === 'sig.signature') {
        return new InputError('BAD_BASE64', {
          message: '`sig.signature` must be the canonical base64 of a 64-byte Ed25519 signature',
          field,
          rule: 'base64:64',
        });
      }
      if (params['pattern'] === LOWER_UUID) {
        return new InputError('FIELD_FORMAT', { message: `${at(field)} must be a lowercase uuid`, field, rule: 'format:uuid' });
      }
      if (params['pattern'] === NO_CONTROL_CHARS) {
        return new InputError('FIELD_FORMAT', {
          message: `${at(field)} must not contain control characters`,
          field,
          rule: 'no-control-chars',
        });
      }
      return new InputError('FIELD_FORMAT', { message: `${at(field)} has a bad format`, field, rule: `pattern:${String(params['pattern'])}` });
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return new InputError('FIELD_RANGE', {
        message: `${at(field)} must be ${String(params['comparison'])} ${String(params['limit'])}`,
        field,
        rule: `${e.keyword}:${String(params['limit'])}`,
      });
    case 'minLength':
    case 'maxLength':
    case 'minProperties':
    case 'maxProperties':
    case 'minItems':
    case 'maxItems':
      return new InputError('FIELD_LENGTH', {
        message: `${at(field)} ${e.message ?? 'has a bad length'}`,
        field,
        rule: `${e.keyword}:${String(params['limit'])}`,
      });
    case 'enum':
      return new InputError('FIELD_ENUM', {
        message: `${at(field)} must be one of ${(params['allowedValues'] as unknown[]).join(', ')}`,
        field,
        rule: `enum:${(params['allowedValues'] as unknown[]).join('|')}`,
      });
    case 'const':
      return new InputError('FIELD_ENUM', {
        message: `${at(field)} must be ${JSON.stringify(params['allowedValue'])}`,
        field,
        rule: `const:${String(params['allowedValue'])}`,
      });
    default:
      return new InputError('FIELD_TYPE', {
        message: `${at(field)} ${e.message ?? 'does not match the schema'}`,
        field,
        rule: e.keyword,
      });
  }
}
