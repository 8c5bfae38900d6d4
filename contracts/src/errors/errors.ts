import { ERROR_CATALOGUE, type ErrorCode } from './catalogue.js';

/** The JSON body of every 4xx/5xx answer. */
export interface ErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    /** JSON pointer-ish path of the offending field, e.g. `metrics.cpu_seconds`. */
    field?: string;
    /** The rule that failed, e.g. `maximum:31536000`, `format:uuid`. */
    rule?: string;
    retry_after_s?: number;
  };
}

/** Base of every error KACHING raises on purpose; carries the facts a caller needs. */
export class KachingError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly field: string | undefined;
  readonly rule: string | undefined;
  readonly retryAfterS: number | undefined;

  constructor(code: ErrorCode, opts: { message?: string; field?: string; rule?: string; retryAfterS?: number; cause?: unknown } = {}) {
    const entry = ERROR_CATALOGUE[code];
    super(opts.message ?? entry.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = entry.status;
    this.field = opts.field;
    this.rule = opts.rule;
    this.retryAfterS = opts.retryAfterS;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { error: { code: this.code, message: this.message } };
    if (this.field !== undefined) body.error.field = this.field;
    if (this.rule !== undefined) body.error.rule = this.rule;
    if (this.retryAfterS !== undefined) body.error.retry_after_s = this.retryAfterS;
    return body;
  }
}

/** The input broke a rule (4xx): names the field and the rule. */
export class InputError extends KachingError {}
/** The caller is not who it needs to be, or may not do this (401/403). */
export class AuthError extends KachingError {}
/** A dependency (JetStream, Postgres) cannot take the request now (503). Safe to retry. */
export class UnavailableError extends KachingError {}
/** The caller must slow down (429). */
export class RateLimitError extends KachingError {}

export function isKachingError(e: unknown): e is KachingError {
  return e instanceof KachingError;
}
