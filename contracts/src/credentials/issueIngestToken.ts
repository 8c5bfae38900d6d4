import type pg from 'pg';
import { InputError, KachingError } from '../errors/errors.js';
import { INGEST_SCOPES, newIngestToken } from './ingestToken.js';

export interface IssueIngestTokenInput {
  deploymentId: string;
  scopes?: string[];
  expiresAt?: Date | null;
  label?: string | null;
}

export interface IssuedIngestToken {
  tokenId: string;
  /** The only time the secret exists outside the caller: only its hash is stored. */
  token: string;
  deploymentId: string;
  orgId: string;
  scopes: string[];
  expiresAt: Date | null;
}

/** Creates an ingest token for a deployment; the org is taken from the deployment row. */
export async function issueIngestToken(pool: pg.Pool, input: IssueIngestTokenInput): Promise<IssuedIngestToken> {
  const scopes = input.scopes && input.scopes.length ? [...new Set(input.scopes)] : ['ingest:usage', 'ingest:jobs'];
  for (const s of scopes) {
    if (!(INGEST_SCOPES as readonly string[]).includes(s)) {
      throw new InputError('FIELD_ENUM', { field: 'scopes', rule: `enum:${INGEST_SCOPES.join('|')}`, message: `unknown scope "${s}"` });
    }
  }
  const dep = await pool.query<{ org_id: string }>('select org_id from deployment where deployment_id = $1', [input.deploymentId]);
  const orgId = dep.rows[0]?.org_id;
  if (!orgId) throw new KachingError('NOT_FOUND', { field: 'deployment_id', message: `deployment ${input.deploymentId} does not exist` });
  const t = newIngestToken();
  const expiresAt = input.expiresAt ?? null;
  await pool.query(
    `insert into ingest_token (token_id, deployment_id, org_id, token_hash, scopes, label, expires_at)
     values ($1, $2, $3, $4, $5, $6, $7)`,
    [t.tokenId, input.deploymentId, orgId, t.hash, scopes, input.label ?? null, expiresAt],
  );
  return { tokenId: t.tokenId, token: t.token, deploymentId: input.deploymentId, orgId, scopes, expiresAt };
}
