import { join } from 'node:path';
import type { ArchiverConfig } from './config.js';
import { S3Store } from './s3.js';
import { LocalStore, type ArchiveStore } from './store.js';

/**
 * The configured archive: S3 when KACHING_ARCHIVE_URL is set, else the local directory. Each installation
 * (KACHING_NAMESPACE) has its own root under it, so two never share a lane's manifest.
 */
export function openStore(config: Pick<ArchiverConfig, 'archiveDir' | 's3' | 'namespace'>): ArchiveStore {
  if (config.s3) return new S3Store({ ...config.s3, prefix: [config.s3.prefix, config.namespace].filter(Boolean).join('/') });
  return new LocalStore(join(config.archiveDir, config.namespace));
}
