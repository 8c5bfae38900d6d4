import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { canonicalize } from '@kaching/sdk/protocol';
import { cryptoReady, decodeBase64Strict, encodeBase64, generateSigningKeyPair, signDetached, verifyDetached } from '../crypto/ed25519.js';
import { InputError, KachingError } from '../errors/errors.js';

/**
 * License blob = base64( JSON {format, payload, signature} ), signature = Ed25519 over the UTF-8 of
 * canonicalize(payload) (RFC 8785), by the vendor's key. Verified locally; nothing phones home.
 */
export const LICENSE_FORMAT = 'kaching.license.v1';

export interface LicensePayload {
  license_id: string;
  org_id: string;
  deployment_id?: string;
  plan_id: string;
  seats_limit: number | null;
  nodes_limit: number | null;
  features: Record<string, unknown>;
  valid_from: string;
  valid_to: string;
  issued_at: string;
}

export interface VerifiedLicense {
  payload: LicensePayload;
  status: 'valid' | 'expired' | 'not_yet_valid';
}

const enc = new TextEncoder();

export async function licenseKeygen(): Promise<{ publicKey: string; privateKey: string }> {
  await cryptoReady();
  const kp = generateSigningKeyPair();
  return { publicKey: encodeBase64(kp.publicKey), privateKey: encodeBase64(kp.secretKey) };
}

export async function issueLicense(
  input: Omit<LicensePayload, 'license_id' | 'issued_at' | 'features' | 'seats_limit' | 'nodes_limit'> &
    Partial<Pick<LicensePayload, 'license_id' | 'issued_at' | 'features' | 'seats_limit' | 'nodes_limit'>>,
  vendorSecretKey: Uint8Array | string,
): Promise<string> {
  await cryptoReady();
  const sk = typeof vendorSecretKey === 'string' ? decodeKey(vendorSecretKey, 64, 'private key') : vendorSecretKey;
  const payload: LicensePayload = {
    license_id: input.license_id ?? randomUUID(),
    org_id: input.org_id,
    ...(input.deployment_id ? { deployment_id: input.deployment_id } : {}),
    plan_id: input.plan_id,
    seats_limit: input.seats_limit ?? null,
    nodes_limit: input.nodes_limit ?? null,
    features: input.features ?? {},
    valid_from: new Date(input.valid_from).toISOString(),
    valid_to: new Date(input.valid_to).toISOString(),
    issued_at: input.issued_at ?? new Date().toISOString(),
  };
  checkPayload(payload);
  const signature = encodeBase64(signDetached(enc.encode(canonicalize(payload)), sk));
  return Buffer.from(JSON.stringify({ format: LICENSE_FORMAT, payload, signature })).toString('base64');
}

/** Verifies signature and shape; throws LICENSE_INVALID on any tampering. Validity is reported, not thrown. */
export async function verifyLicense(blob: string, vendorPublicKey: Uint8Array | string, now: Date = new Date()): Promise<VerifiedLicense> {
  await cryptoReady();
  const pk = typeof vendorPublicKey === 'string' ? decodeKey(vendorPublicKey, 32, 'public key') : vendorPublicKey;
  const invalid = (why: string) => new InputError('LICENSE_INVALID', { message: `License refused: ${why}`, field: 'blob' });
  const raw = decodeBase64Strict(blob.trim());
  if (!raw) throw invalid('not base64');
  let doc: { format?: unknown; payload?: unknown; signature?: unknown };
  try {
    doc = JSON.parse(Buffer.from(raw).toString('utf8'));
  } catch {
    throw invalid('not JSON');
  }
  if (doc?.format !== LICENSE_FORMAT || typeof doc.signature !== 'string' || typeof doc.payload !== 'object' || doc.payload === null) {
    throw invalid(`not a ${LICENSE_FORMAT} document`);
  }
  const sig = decodeBase64Strict(doc.signature);
  if (!sig || !verifyDetached(sig, enc.encode(canonicalize(doc.payload)), pk)) throw invalid('signature does not verify against the vendor key');
  const payload = doc.payload as LicensePayload;
  try {
    checkPayload(payload);
  } catch (e) {
    throw invalid((e as Error).message);
  }
  const t = now.getTime();
  const status = t < Date.parse(payload.valid_from) ? 'not_yet_valid' : t >= Date.parse(payload.valid_to) ? 'expired' : 'valid';
  return { payload, status };
}

/**
 * Verifies and stores a license for its deployment (or the one given). An expired license is refused
 * with LICENSE_EXPIRED unless allowExpired (then the enforcer raises the LICENSE_EXPIRED decision).
 */
export async function activateLicense(
  pool: pg.Pool,
  blob: string,
  vendorPublicKey: Uint8Array | string,
  opts: { deploymentId?: string; now?: Date; allowExpired?: boolean } = {},
): Promise<{ license_id: string; org_id: string; deployment_id: string | null; plan_id: string; status: VerifiedLicense['status']; valid_to: string }> {
  const v = await verifyLicense(blob, vendorPublicKey, opts.now);
  const p = v.payload;
  if (v.status === 'expired' && !opts.allowExpired) throw new InputError('LICENSE_EXPIRED', { message: `License expired at ${p.valid_to}`, field: 'valid_to' });
  if (opts.deploymentId && p.deployment_id && opts.deploymentId !== p.deployment_id) {
    throw new InputError('LICENSE_INVALID', { message: 'The license is bound to another deployment', field: 'deployment_id' });
  }
  const deploymentId = opts.deploymentId ?? p.deployment_id ?? null;
  if (deploymentId) {
    const d = await pool.query('select org_id from deployment where deployment_id = $1', [deploymentId]);
    if (!d.rows[0]) throw new KachingError('NOT_FOUND', { message: `No deployment ${deploymentId}`, field: 'deployment_id' });
    if (d.rows[0].org_id !== p.org_id) throw new InputError('LICENSE_INVALID', { message: 'The license belongs to another organisation', field: 'org_id' });
  }
  const plan = await pool.query('select 1 from pricing_plan where plan_id = $1', [p.plan_id]);
  if (!plan.rows[0]) throw new KachingError('CONFLICT', { message: `Unknown plan ${p.plan_id}: add it to pricing_plan first`, field: 'plan_id' });
  await pool.query(
    `insert into license (license_id, org_id, deployment_id, plan_id, seats_limit, nodes_limit, features, valid_from, valid_to, signed_blob)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     on conflict (license_id) do update set deployment_id = excluded.deployment_id, activated_at = now()`,
    [p.license_id, p.org_id, deploymentId, p.plan_id, p.seats_limit, p.nodes_limit, p.features, p.valid_from, p.valid_to, Buffer.from(blob.trim())],
  );
  return { license_id: p.license_id, org_id: p.org_id, deployment_id: deploymentId, plan_id: p.plan_id, status: v.status, valid_to: p.valid_to };
}

function checkPayload(p: LicensePayload): void {
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  if (!uuid.test(String(p.license_id))) throw new Error('license_id must be a uuid');
  if (!uuid.test(String(p.org_id))) throw new Error('org_id must be a uuid');
  if (p.deployment_id !== undefined && !uuid.test(String(p.deployment_id))) throw new Error('deployment_id must be a uuid');
  if (typeof p.plan_id !== 'string' || !p.plan_id) throw new Error('plan_id is required');
  for (const k of ['seats_limit', 'nodes_limit'] as const) {
    const v = p[k];
    if (v !== null && (!Number.isInteger(v) || v < 0)) throw new Error(`${k} must be a non-negative integer or null`);
  }
  if (typeof p.features !== 'object' || p.features === null || Array.isArray(p.features)) throw new Error('features must be an object');
  const from = Date.parse(p.valid_from);
  const to = Date.parse(p.valid_to);
  if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from) throw new Error('valid_from/valid_to must be timestamps with valid_from < valid_to');
}

function decodeKey(b64: string, len: number, what: string): Uint8Array {
  const k = decodeBase64Strict(b64.trim());
  if (!k || k.length !== len) throw new InputError('BAD_BASE64', { message: `The ${what} must be base64 of ${len} bytes`, field: what.replace(' ', '_') });
  return k;
}
