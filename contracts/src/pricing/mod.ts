/** The price book: one pricing function for the projector, the enforcer, the API and the reports. */
export * from './units.js';
export * from './price.js';
export * from './book.js';
export * from './litellm.js';
export * from './sync.js';
export * from './changes.js';
export * from './aliases.js';
export * from './setPrice.js';
export { bumpPriceRevision, lockPriceRevision } from './revision.js';
