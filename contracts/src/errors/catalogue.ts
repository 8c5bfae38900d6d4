/**
 * The one error catalogue. Codes are stable: clients and scripts match on them.
 * Adding a code is fine; renaming or re-numbering one is a breaking change.
 */
export const ERROR_CATALOGUE = {
  // request shape
  MALFORMED_JSON: { status: 400, message: 'The body is not valid JSON' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Send application/json' },
  OTLP_UNDECODABLE: { status: 400, message: 'The body is not an OTLP ExportTraceServiceRequest in the encoding its Content-Type names (protobuf or JSON), or its gzip is corrupt' },
  CONTENT_ENCODING_UNSUPPORTED: { status: 415, message: 'Content-Encoding must be gzip or identity' },
  SCHEMA_UNKNOWN: { status: 400, message: 'The `schema` field names no schema this endpoint accepts' },
  FIELD_REQUIRED: { status: 400, message: 'A required field is missing' },
  FIELD_UNKNOWN: { status: 400, message: 'A field is not part of the schema' },
  FIELD_TYPE: { status: 400, message: 'A field has the wrong type' },
  FIELD_FORMAT: { status: 400, message: 'A field does not match its format' },
  FIELD_RANGE: { status: 400, message: 'A number is negative, not finite or above its bound' },
  FIELD_LENGTH: { status: 400, message: 'A string or list is too long or too short' },
  FIELD_ENUM: { status: 400, message: 'A field has a value outside its allowed set' },
  CLOCK_SKEW_TOO_LARGE: { status: 400, message: 'ended_at is before started_at by more than the tolerated skew' },
  TIMESTAMP_IN_FUTURE: { status: 400, message: 'A timestamp lies too far in the future' },
  TIMESTAMP_TOO_OLD: { status: 400, message: 'A timestamp is older than the stream keeps events' },
  BAD_BASE64: { status: 400, message: 'A field that must be base64 is not' },
  BODY_TOO_LARGE: { status: 413, message: 'The body exceeds the size limit' },
  BATCH_TOO_LARGE: { status: 413, message: 'A batch holds more events than allowed' },
  BATCH_EMPTY: { status: 400, message: 'A batch must hold at least one event' },
  DEPLOYMENT_MISMATCH: { status: 403, message: 'The event names a deployment the credential does not belong to' },
  // ingest tokens
  TOKEN_MISSING: { status: 401, message: 'Authorization: Bearer <ingest token> is required' },
  TOKEN_INVALID: { status: 401, message: 'The ingest token is not known' },
  TOKEN_EXPIRED: { status: 401, message: 'The ingest token has expired' },
  TOKEN_REVOKED: { status: 401, message: 'The ingest token was revoked' },
  TOKEN_SCOPE: { status: 403, message: 'The ingest token lacks the scope this endpoint needs' },
  CLIENT_CERT_REQUIRED: { status: 401, message: 'This ingest requires a client certificate from its client CA (mTLS)' },
  CLIENT_CERT_NOT_BOUND: { status: 403, message: "The client certificate is not bound to the ingest token's deployment (kaching token bind-cert)" },
  // agent signatures
  SIGNATURE_INVALID: { status: 401, message: 'The Ed25519 signature does not verify over the canonical event' },
  SIGNATURE_ALGO: { status: 400, message: 'Only ed25519 signatures are accepted' },
  KEY_UNKNOWN: { status: 401, message: 'The key_id is not registered for this deployment' },
  KEY_REVOKED: { status: 401, message: 'The signing key was revoked for compromise, or superseded before the report was made' },
  KEY_EXPIRED: { status: 401, message: "The report was made after the signing key's valid_to" },
  KEY_NOT_YET_VALID: { status: 401, message: "The report was made before the signing key's valid_from" },
  // api
  API_KEY_MISSING: { status: 401, message: 'Authorization: Bearer <api key> is required' },
  API_KEY_INVALID: { status: 401, message: 'The API key is not known, expired or revoked' },
  API_KEY_SCOPE: { status: 403, message: 'The API key lacks the scope this endpoint needs' },
  NOT_FOUND: { status: 404, message: 'No such resource (or not visible to this organisation)' },
  CONFLICT: { status: 409, message: 'The change conflicts with the current state' },
  REPLAY_HISTORY_GAP: { status: 409, message: 'The stream no longer holds history a projection or the enforcer counts, and the archive does not hold all of it: a full replay would delete it' },
  BILLING_DELIVERY_NOT_DEAD: { status: 409, message: 'Only a dead-lettered billing record can be retried; this one is pending or sent' },
  LICENSE_INVALID: { status: 400, message: 'The license blob does not verify against the vendor key' },
  LICENSE_EXPIRED: { status: 400, message: 'The license is outside its validity window' },
  FEATURE_NOT_LICENSED: { status: 403, message: 'The license does not grant this feature; switching it on needs override: true and the operator scope' },
  FEATURE_OVERRIDE_SCOPE: { status: 403, message: 'Switching on a feature the license does not grant needs the operator scope' },
  BUDGET_DENIED: { status: 402, message: 'The job would exceed the remaining budget' },
  PRICE_UNKNOWN: { status: 422, message: 'No price is known for this model' },
  PRICE_FILE_INVALID: { status: 400, message: 'The price file cannot be read or is not in LiteLLM model_prices_and_context_window.json format' },
  PRICE_SYNC_OUT_OF_ORDER: { status: 409, message: 'A price sync takes effect before the latest synced version; a sync only moves the book forward' },
  // alert channels
  CHANNEL_URL_INVALID: { status: 400, message: 'The channel URL is not an absolute https URL without credentials (plain http only to localhost)' },
  CHANNEL_KIND_UNKNOWN: { status: 400, message: 'The channel kind is neither webhook nor slack' },
  CHANNEL_FILTER_INVALID: { status: 400, message: 'A channel filter names an unknown alert code or severity, or a deployment not in this organisation' },
  // people: sign-in, sessions, bearer JWTs
  SIGNIN_FAILED: { status: 401, message: 'The login or the password is wrong' },
  SIGNIN_THROTTLED: { status: 429, message: 'Too many sign-in attempts for this account or from this address; retry after the indicated delay' },
  SESSION_INVALID: { status: 401, message: 'The session is unknown, expired, revoked or signed out; sign in again' },
  CSRF_TOKEN_MISSING: { status: 403, message: 'A write authenticated by the session cookie must carry the X-CSRF-Token header' },
  CSRF_TOKEN_INVALID: { status: 403, message: 'The CSRF token does not belong to this session' },
  JWT_INVALID: { status: 401, message: 'The bearer JWT is malformed, not signed by this installation, or not meant for this API' },
  JWT_EXPIRED: { status: 401, message: 'The bearer JWT has expired; request a new one' },
  JWT_REVOKED: { status: 401, message: 'The session the bearer JWT was issued from was revoked or has ended' },
  ROLE_INSUFFICIENT: { status: 403, message: "The signed-in user's role does not allow this endpoint" },
  // HQ sync
  HQ_INSTALLATION_UNKNOWN: { status: 403, message: 'The client certificate belongs to no registered (unrevoked) installation' },
  HQ_INSTALLATION_MISMATCH: { status: 403, message: 'The payload names another installation than the one its client certificate is registered for' },
  // flow control
  RATE_LIMITED: { status: 429, message: 'Too many requests for this token; retry after the indicated delay' },
  STREAM_UNAVAILABLE: { status: 503, message: 'JetStream cannot take the event now; nothing was stored, retry' },
  DATABASE_UNAVAILABLE: { status: 503, message: 'Postgres is not reachable now; retry' },
  INTERNAL: { status: 500, message: 'Unexpected error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export function statusOf(code: ErrorCode): number {
  return ERROR_CATALOGUE[code].status;
}
