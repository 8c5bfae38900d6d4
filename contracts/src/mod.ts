// @kaching/contracts — the shared language of every KACHING package.
export * from './types/usage.js';
export * from './types/decision.js';
export * from './names/names.js';
export * from './config/base.js';
export * from './errors/catalogue.js';
export * from './errors/errors.js';
export * from './db/pool.js';
export * from './db/migrate.js';
export * from './cli/command.js';
export { commands } from './cli/commands.js';
export * from './nats/streams.js';
export * from './nats/messages.js';
export * from './logging/logger.js';
