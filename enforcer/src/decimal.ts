// Moved to contracts (the API's upsell view suggests plans too); kept so enforcer imports stay short.
export { toMicro, fromMicro, ratio1 } from '@kaching/contracts';
