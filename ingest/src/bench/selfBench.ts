import { createPool, cryptoReady, migrate } from '@kaching/contracts';
import type { IngestConfig } from '../config.js';
import { seedBenchDeployment } from './seed.js';
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
    const seeded = await seedBenchDeployment(pool);
    const report = await benchIngest({
      ...opts,
      ingestUrl: svc.url,
      natsUrl: config.natsUrl,
      namespace: config.namespace,
      deploymentId: seeded.deploymentId,
      token: seeded.token,
      keyId: seeded.keyId,
      secretKey: seeded.secretKey,
    });
    return { ...report, verifyWorkers: config.verifyWorkers };
  } finally {
    await svc.close();
    await pool.end();
  }
}
