import type pg from 'pg';
import { InputError, KachingError } from '../errors/errors.js';
import { DEFAULT_REPORT_MAX_AGE_MS } from '../nats/streams.js';

export interface RegisterAgentKeyInput {
  deploymentId: string;
  keyId: string;
  /** Raw 32-byte Ed25519 public key, base64. */
  publicKey: string;
  /** Absent: `now − inFlightMs` (see below). */
  validFrom?: Date | null;
  validTo?: Date | null;
  /**
   * How far back a key registered without valid_from reaches: ingest's INGEST_MAX_AGE_MS (default the
   * stream's max age). Reports older than that are refused as TIMESTAMP_TOO_OLD anyway, so this is exactly
   * the oldest report ingest would still take: events an agent signed and queued before the operator got
   * round to registering its key are accepted, and nothing older than ingest's own limit is opened up.
   */
  inFlightMs?: number;
}

export interface RegisteredAgentKey {
  deploymentId: string;
  keyId: string;
  orgId: string;
  validFrom: Date;
  validTo: Date | null;
}

/** ingest's default INGEST_MAX_AGE_MS. */
export const DEFAULT_IN_FLIGHT_MS = DEFAULT_REPORT_MAX_AGE_MS;

const KEY_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** Registers an agent signing key. Re-registering the same key id with the same public key only updates its window. */
export async function registerAgentKey(pool: pg.Pool, input: RegisterAgentKeyInput): Promise<RegisteredAgentKey> {
  if (!KEY_ID_RE.test(input.keyId)) {
    throw new InputError('FIELD_FORMAT', { field: 'key_id', rule: `pattern:${KEY_ID_RE.source}` });
  }
  const pk = decodePublicKey(input.publicKey);
  const inFlightMs = input.inFlightMs ?? DEFAULT_IN_FLIGHT_MS;
  if (input.validFrom && input.validTo && input.validTo <= input.validFrom) {
    throw new InputError('FIELD_RANGE', { field: 'valid_to', rule: 'after:valid_from', message: 'valid_to must be after valid_from' });
  }
  const dep = await pool.query<{ org_id: string }>('select org_id from deployment where deployment_id = $1', [input.deploymentId]);
  const orgId = dep.rows[0]?.org_id;
  if (!orgId) throw new KachingError('NOT_FOUND', { field: 'deployment_id', message: `deployment ${input.deploymentId} does not exist` });
  const r = await pool.query<{ valid_from: Date; valid_to: Date | null }>(
    `insert into agent_key (deployment_id, key_id, org_id, public_key, valid_from, valid_to)
     values ($1, $2, $3, $4, coalesce($5, now() - make_interval(secs => $7::double precision / 1000)), $6)
     on conflict (deployment_id, key_id) do update
       set valid_from = coalesce($5, agent_key.valid_from), valid_to = excluded.valid_to
       where agent_key.public_key = excluded.public_key and agent_key.revoked_at is null
     returning valid_from, valid_to`,
    [input.deploymentId, input.keyId, orgId, pk, input.validFrom ?? null, input.validTo ?? null, inFlightMs],
  );
  const row = r.rows[0];
  if (!row) {
    // A key id is never rebound to another public key, nor revived: old events must stay verifiable.
    throw new KachingError('CONFLICT', { field: 'key_id', message: `key ${input.keyId} exists with another public key or is revoked` });
  }
  return { deploymentId: input.deploymentId, keyId: input.keyId, orgId, validFrom: row.valid_from, validTo: row.valid_to };
}

function decodePublicKey(b64: string): Buffer {
  const buf = Buffer.from(b64, 'base64');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || buf.toString('base64') !== b64) {
    throw new InputError('BAD_BASE64', { field: 'public_key', rule: 'base64' });
  }
  if (buf.length !== 32) throw new InputError('FIELD_LENGTH', { field: 'public_key', rule: 'bytes:32', message: 'an Ed25519 public key is 32 raw bytes' });
  return buf;
}
