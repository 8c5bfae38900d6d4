import avro from 'avsc';
import type { StreamRecord } from '../types/usage.js';
import { STREAM_RECORD_AVRO_SCHEMA } from './stream.avsc.js';
import { STREAM_RECORD_AVRO_SCHEMA_V1 } from './stream.v1.avsc.js';

type AvroResolver = ReturnType<avro.Type['createResolver']>;

/** NATS header carrying the Avro schema fingerprint of the payload. */
export const SCHEMA_FINGERPRINT_HEADER = 'Kaching-Schema';

// Compiled once: encoding and decoding sit on the hot path.
const streamType = avro.Type.forSchema(STREAM_RECORD_AVRO_SCHEMA as unknown as avro.Schema, { omitRecordMethods: true });

/** Hex SHA-256 of the schema's Parsing Canonical Form. */
export const STREAM_SCHEMA_FINGERPRINT: string = streamType.fingerprint('sha256').toString('hex');

/**
 * How to read each stream schema this build knows, by fingerprint: the current one directly, older ones
 * (writer schemas) through a resolver into the current (reader) schema, so every consumer sees one shape.
 */
interface Reader {
  resolver?: AvroResolver;
}
const readers = new Map<string, Reader>([[STREAM_SCHEMA_FINGERPRINT, {}]]);
for (const writerSchema of [STREAM_RECORD_AVRO_SCHEMA_V1]) {
  const writer = avro.Type.forSchema(writerSchema as unknown as avro.Schema, { omitRecordMethods: true });
  readers.set(writer.fingerprint('sha256').toString('hex'), { resolver: streamType.createResolver(writer) });
}

/** Fingerprints of every stream schema this build reads, oldest first, current last. */
export const KNOWN_STREAM_SCHEMA_FINGERPRINTS: readonly string[] = [...readers.keys()].slice(1).concat(STREAM_SCHEMA_FINGERPRINT);

export class UnknownSchemaError extends Error {
  constructor(readonly fingerprint: string) {
    super(
      `Stream message uses Avro schema ${fingerprint}, unknown to this build (knows ${[...readers.keys()].join(', ')}); upgrade the consumer`,
    );
    this.name = 'UnknownSchemaError';
  }
}

export function encodeStreamRecord(rec: StreamRecord): Uint8Array {
  const other = rec.kind === 'usage' ? 'job_status' : 'usage';
  if ((rec as unknown as Record<string, unknown>)[other] !== undefined) {
    throw new TypeError(`StreamRecord of kind ${rec.kind} must not carry ${other}`);
  }
  if ((rec as unknown as Record<string, unknown>)[rec.kind] === undefined) {
    throw new TypeError(`StreamRecord of kind ${rec.kind} lacks its ${rec.kind} member`);
  }
  return streamType.toBuffer(rec);
}

export interface DecodeOptions {
  /**
   * Leave absent optional members as Avro's null instead of dropping them: skips a deep copy of every
   * record, for hot-path readers that read each member with `??` / `?.` (the projector).
   */
  keepNulls?: boolean;
}

export function decodeStreamRecord(bytes: Uint8Array, fingerprint?: string, opts: DecodeOptions = {}): StreamRecord {
  let resolver: AvroResolver | undefined;
  if (fingerprint !== undefined && fingerprint !== STREAM_SCHEMA_FINGERPRINT) {
    const r = readers.get(fingerprint);
    if (!r) throw new UnknownSchemaError(fingerprint);
    resolver = r.resolver;
  }
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const value: unknown = streamType.fromBuffer(buf, resolver);
  return (opts.keepNulls ? value : plain(value)) as StreamRecord;
}

/** Avro nulls stand for absent optional members: drop them so the JSON shape comes back exactly. */
function plain(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(plain);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const x = (v as Record<string, unknown>)[k];
    if (x !== null) out[k] = plain(x);
  }
  return out;
}
