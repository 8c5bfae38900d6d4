import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { generateSigningKeyPair, issueIngestToken, registerAgentKey } from '@kaching/contracts';

export interface BenchDeployment {
  orgId: string;
  deploymentId: string;
  /** Ingest token with scope ingest:usage. */
  token: string;
  keyId: string;
  secretKey: Uint8Array;
}

/** An org, a deployment, an ingest token and a registered agent key for a benchmark (needs cryptoReady()). */
export async function seedBenchDeployment(pool: pg.Pool): Promise<BenchDeployment> {
  const orgId = randomUUID();
  const deploymentId = randomUUID();
  await pool.query('insert into org (org_id, name) values ($1, $2)', [orgId, 'bench']);
  await pool.query('insert into deployment (deployment_id, org_id, name) values ($1, $2, $3)', [deploymentId, orgId, 'bench']);
  const t = await issueIngestToken(pool, { deploymentId, scopes: ['ingest:usage'], label: 'bench' });
  const kp = generateSigningKeyPair();
  await registerAgentKey(pool, {
    deploymentId,
    keyId: 'bench',
    publicKey: Buffer.from(kp.publicKey).toString('base64'),
    validFrom: new Date(Date.now() - 3600_000),
  });
  return { orgId, deploymentId, token: t.token, keyId: 'bench', secretKey: kp.secretKey };
}
