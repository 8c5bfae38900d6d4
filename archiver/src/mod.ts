// @kaching/archiver — every stream message into immutable Parquet segments with a hash-chained manifest.
export { loadConfig, parseArchiveUrl, type ArchiverConfig } from './config.js';
export { start, purgeArchived, type ArchiverHandle } from './service.js';
export { ArchiveWriter, ARCHIVER_HANDLER_VERSION } from './writer.js';
export { ParquetCodec, COLUMNS, rowOf, type ArchiveRow } from './segment.js';
export { LocalStore, type ArchiveStore } from './store.js';
export { S3Store, signV4 } from './s3.js';
export { openStore } from './stores.js';
export { checkChain, entryHash, readManifest, manifestKey, segmentKey, isSegmentOf, archivedLanes, GENESIS, type ManifestEntry, type ChainBreak } from './manifest.js';
export { verifyArchive, type VerifyReport } from './verify.js';
export { archiveStatus, type ArchiveStatus } from './status.js';
export { commands } from './cli/commands.js';
export { benchArchiveWrite, type BenchArchiveResult } from './bench.js';
export { ArchiveHistory, type ArchivedMessage, type ArchivedRecord, type HistoryCursor, type HistoryFilter } from './history.js';
export { refuseHistoryLoss, type HistoryCheck } from './gap.js';
