// The KACHING wire protocol, with no dependencies: event types, RFC 8785 canonical JSON, RFC 9162 Merkle trees.
export * from './events.js';
export * from './canonicalize.js';
export * from './merkle.js';
