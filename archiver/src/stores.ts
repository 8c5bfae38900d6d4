import type { ArchiverConfig } from './config.js';
import { S3Store } from './s3.js';
import { LocalStore, type ArchiveStore } from './store.js';

/** The configured archive: S3 when KACHING_ARCHIVE_URL is set, else the local directory. */
export function openStore(config: Pick<ArchiverConfig, 'archiveDir' | 's3'>): ArchiveStore {
  return config.s3 ? new S3Store(config.s3) : new LocalStore(config.archiveDir);
}
