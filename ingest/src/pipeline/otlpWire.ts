import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';
import { InputError, type ErrorBody } from '@kaching/contracts';

/**
 * OTLP/HTTP wire formats for traces: the request body (binary protobuf or OTLP/JSON, optionally gzip),
 * the ExportTraceServiceResponse and the google.rpc.Status of a failure, each in the request's encoding.
 * Protobuf goes through protobufjs and the official .proto files vendored in ingest/proto (Apache-2.0).
 */
export type OtlpEncoding = 'json' | 'protobuf';

export const OTLP_CONTENT_TYPES: Record<OtlpEncoding, string> = { json: 'application/json', protobuf: 'application/x-protobuf' };

const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));
let types: { request: protobuf.Type; response: protobuf.Type; status: protobuf.Type } | undefined;

function wire() {
  if (types) return types;
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(PROTO_DIR, target);
  root.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto');
  // google.rpc.Status without `details` (always empty here): the two fields a client shows.
  const status = new protobuf.Type('Status').add(new protobuf.Field('code', 1, 'int32')).add(new protobuf.Field('message', 2, 'string'));
  new protobuf.Root().define('google.rpc').add(status);
  types = {
    request: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest'),
    response: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse'),
    status,
  };
  return types;
}

const undecodable = (encoding: OtlpEncoding, message: string) =>
  new InputError('OTLP_UNDECODABLE', { field: 'body', rule: `otlp-${encoding}:ExportTraceServiceRequest`, message });

/** Undoes `Content-Encoding` (gzip or none); the inflated size is held to the body limit too. */
export function inflate(raw: Buffer, contentEncoding: string | undefined, limitBytes: number, encoding: OtlpEncoding): Buffer {
  const ce = (contentEncoding ?? '').trim().toLowerCase();
  if (ce === '' || ce === 'identity') return raw;
  if (ce !== 'gzip') throw new InputError('CONTENT_ENCODING_UNSUPPORTED', { field: 'content-encoding', rule: 'enum:gzip,identity' });
  try {
    return gunzipSync(raw, { maxOutputLength: limitBytes });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw new InputError('BODY_TOO_LARGE', { field: 'body', rule: `inflated<=${limitBytes}` });
    throw undecodable(encoding, 'The body is not valid gzip');
  }
}

/**
 * The request in the OTLP/JSON shape (lowerCamelCase keys, trace and span ids as hex, 64-bit integers
 * as decimal strings), whatever the encoding it came in, so one mapper reads both.
 */
export function decodeTraceRequest(body: Buffer, encoding: OtlpEncoding): unknown {
  if (encoding === 'json') {
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      throw undecodable('json', 'The body is not valid JSON');
    }
  }
  const { request } = wire();
  let msg: protobuf.Message;
  try {
    msg = request.decode(body);
  } catch (err) {
    throw undecodable('protobuf', `The body is not a protobuf ExportTraceServiceRequest: ${(err as Error).message}`);
  }
  const obj = request.toObject(msg, { longs: String, enums: Number, bytes: String, arrays: true }) as {
    resourceSpans: { scopeSpans?: { spans?: { traceId?: string; spanId?: string; parentSpanId?: string }[] }[] }[];
  };
  const hex = (b64: string | undefined) => (b64 === undefined ? undefined : Buffer.from(b64, 'base64').toString('hex'));
  for (const rs of obj.resourceSpans) {
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        s.traceId = hex(s.traceId);
        s.spanId = hex(s.spanId);
        s.parentSpanId = hex(s.parentSpanId);
      }
    }
  }
  return obj;
}

export interface PartialSuccess {
  rejectedSpans: number;
  errorMessage: string;
}

/** ExportTraceServiceResponse; `partialSuccess` stays unset when every span was accepted (OTLP spec). */
export function encodeTraceResponse(partial: PartialSuccess | undefined, encoding: OtlpEncoding): Buffer | Record<string, unknown> {
  if (encoding === 'json') {
    // proto3 JSON: int64 as a decimal string.
    return partial ? { partialSuccess: { rejectedSpans: String(partial.rejectedSpans), errorMessage: partial.errorMessage } } : {};
  }
  const { response } = wire();
  return Buffer.from(response.encode(response.fromObject(partial ? { partialSuccess: partial } : {})).finish());
}

const GRPC_CODE: Record<number, number> = { 400: 3, 401: 16, 403: 7, 404: 5, 413: 8, 415: 3, 429: 8, 503: 14 };

/**
 * A failure as the OTLP spec wants it (a google.rpc.Status in the request's encoding). The JSON form
 * also keeps the catalogue body (`error.code`, `field`, `rule`), the protobuf form names the code first in
 * `message`.
 */
export function encodeFailure(status: number, body: ErrorBody, encoding: OtlpEncoding): Buffer | Record<string, unknown> {
  const e = body.error;
  const detail = [e.field && `field ${e.field}`, e.rule && `rule ${e.rule}`].filter(Boolean).join(', ');
  const message = `${e.code}: ${e.message}${detail ? ` (${detail})` : ''}`;
  const code = GRPC_CODE[status] ?? 13;
  if (encoding === 'json') return { code, message, ...body };
  const s = wire().status;
  return Buffer.from(s.encode(s.fromObject({ code, message })).finish());
}
