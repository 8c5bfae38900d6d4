import { randomUUID } from 'node:crypto';
import { createPool, cryptoReady, generateSigningKeyPair, migrate } from '@kaching/contracts';
import type { IngestConfig } from '../config.js';
import { issueIngestToken } from '../routines/issueIngestToken.js';
import { registerAgentKey } from '../routines/registerAgentKey.js';
import { start } from '../service.js';
import { benchIngest, type BenchIngestOptions, type BenchIngestReport } from './benchIngest.js';

/**
 * Self-contained ingest benchmark: migrates the namespace, seeds a bench org/deployment/token/key,
 * starts an ingest service on a free port (rate limit off) and runs `benchIngest` against it.
 */
export async function selfBenchIngest(
  config: IngestConfig,
  opts: Omit<BenchIngestOptions, 'ingestUrl' | 'natsUrl' | 'namespace' | 'deploymentId' | 'token' | 'keyId' | 'secretKey'> = {},
): Promise<BenchIngestReport & { verifyWorkers: number }> {
  await migrate({ databaseUrl: config.databaseUrl, namespace: config.namespace });
  await cryptoReady();
  const pool = createPool({ databaseUrl: config.databaseUrl, namespace: config.namespace, max: 2 });
  const svc = await start({ ...config, port: 0, host: '127.0.0.1', rateLimitPerSec: 0 });
  try {
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
    const report = await benchIngest({
      ...opts,
      ingestUrl: svc.url,
      natsUrl: config.natsUrl,
      namespace: config.namespace,
      deploymentId,
      token: t.token,
      keyId: 'bench',
      secretKey: kp.secretKey,
    });
    return { ...report, verifyWorkers: config.verifyWorkers };
  } finally {
    await svc.close();
    await pool.end();
  }
}
