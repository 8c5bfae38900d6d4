// @kaching/hq — HQ sync: an installation pushes redacted daily rollups to HQ over mTLS; HQ (KACHING_ROLE=hq) receives them.
export { loadConfig, HQ_DEFAULT_INTERVAL_MS, type HqConfig, type SyncConfig, type ReceiverConfig } from './config.js';
export { start, type HqHandle } from './service.js';
export { startPusher, type Pusher, type PushResult } from './sync/pusher.js';
export { postRollups, HqPushError, HQ_PUSH_PATH } from './sync/client.js';
export { stage, pending, markPushed, outboxCounts, redactRow } from './sync/outbox.js';
export { startReceiver, type Receiver } from './receive/server.js';
export { registerInstallation, listInstallations, revokeInstallation, certFingerprint, type HqInstallation } from './receive/installations.js';
export { applyRows } from './receive/store.js';
export { commands } from './cli/commands.js';
