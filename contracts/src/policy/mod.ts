// Policy: the limit vocabulary, licenses (verify/issue/activate), and effective limits read from Postgres.
// The enforcer decides with these; the API validates and serves them without loading the enforcer.
export * from './tagScope.js';
export * from './vocabulary.js';
export { toMicro, fromMicro, ratio1 } from './decimal.js';
export * from './license.js';
export * from './limits.js';
