export * from './channel.js';
export * from './signer.js';
export * from './secrets.js';
export * from './message.js';
export * from './delivery.js';
export * from './store.js';
export { channelCommands } from './commands.js';
